// safetensors: bytes 0..8 little-endian u64 N; bytes 8..8+N a JSON header
// {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}};
// the data buffer follows, offsets relative to it, row-major, little-endian.
// The header is untrusted input: every check below names the file and the tensor at fault.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "quantbench/io/mapped_file.h"

namespace qb::io {

enum class StDtype { kBool, kU8, kI8, kI16, kU16, kF16, kBF16, kI32, kU32, kF32, kF64, kI64, kU64, kF8E4M3, kF8E5M2 };

std::optional<StDtype> parse_st_dtype(const std::string& name);
const char* st_dtype_name(StDtype dtype);
size_t st_dtype_size_bytes(StDtype dtype);
c10::ScalarType st_dtype_to_scalar(StDtype dtype);
StDtype scalar_to_st_dtype(c10::ScalarType type);  // throws kUnsupported

struct TensorInfo {
  std::string name;
  StDtype dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // offsets into the data buffer
  uint64_t end = 0;
  int64_t numel() const;
};

// The reference implementation's limit; a larger header is treated as hostile.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::string& path);
  static SafetensorsFile from_mapping(std::shared_ptr<const MappedFile> file);

  const std::string& path() const { return file_->path(); }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // A CPU tensor viewing the mapped bytes (zero-copy when the data is aligned for its dtype;
  // copied otherwise). Throws kNotFound naming the file when the tensor is absent.
  at::Tensor tensor(const std::string& name) const;
  // Raw bytes of one tensor, for formats that store JSON or packed data in U8 tensors.
  std::pair<const uint8_t*, size_t> raw_bytes(const std::string& name) const;

 private:
  std::shared_ptr<const MappedFile> file_;
  uint64_t data_start_ = 0;
  std::vector<TensorInfo> tensors_;  // sorted by begin offset
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors (any device, made contiguous) with the header padded by spaces so that the data
// buffer starts 8-byte aligned. Names must be unique and not "__metadata__".
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace qb::io
