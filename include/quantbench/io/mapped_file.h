// A read-only view of a whole file through mmap. Tensors made from a safetensors file point into
// this mapping and hold a shared_ptr to it, so the mapping lives as long as any tensor does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace qb::io {

class MappedFile {
 public:
  // Throws qb::Error (kNotFound / kInvalidInput) naming the path.
  static std::shared_ptr<const MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size_bytes() const { return size_bytes_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  uint8_t* data_ = nullptr;
  size_t size_bytes_ = 0;
};

}  // namespace qb::io
