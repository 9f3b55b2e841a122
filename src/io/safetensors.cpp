#include "quantbench/io/safetensors.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>

#include "quantbench/core/error.h"

namespace qb::io {
namespace {

struct DtypeEntry {
  const char* name;
  StDtype dtype;
  size_t size_bytes;
};

constexpr DtypeEntry kDtypes[] = {
    {"BOOL", StDtype::kBool, 1}, {"U8", StDtype::kU8, 1},   {"I8", StDtype::kI8, 1},
    {"I16", StDtype::kI16, 2},   {"U16", StDtype::kU16, 2}, {"F16", StDtype::kF16, 2},
    {"BF16", StDtype::kBF16, 2}, {"I32", StDtype::kI32, 4}, {"U32", StDtype::kU32, 4},
    {"F32", StDtype::kF32, 4},   {"F64", StDtype::kF64, 8}, {"I64", StDtype::kI64, 8},
    {"U64", StDtype::kU64, 8},   {"F8_E4M3", StDtype::kF8E4M3, 1}, {"F8_E5M2", StDtype::kF8E5M2, 1},
};

const DtypeEntry& entry_of(StDtype dtype) {
  for (const auto& e : kDtypes) {
    if (e.dtype == dtype) return e;
  }
  fail(ErrorKind::kInternal, "unknown safetensors dtype enum {}", static_cast<int>(dtype));
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

TensorInfo parse_entry(const std::string& path, const std::string& name, const nlohmann::json& value) {
  QB_CHECK(value.is_object(), kInvalidInput, "{}: tensor '{}': header entry is not a JSON object", path, name);
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    QB_CHECK(value.contains(key), kInvalidInput, "{}: tensor '{}': header entry has no '{}'", path, name, key);
  }
  TensorInfo info;
  info.name = name;
  const auto& dtype = value.at("dtype");
  QB_CHECK(dtype.is_string(), kInvalidInput, "{}: tensor '{}': dtype is not a string", path, name);
  auto parsed = parse_st_dtype(dtype.get<std::string>());
  QB_CHECK(parsed.has_value(), kUnsupported, "{}: tensor '{}': unknown dtype '{}'", path, name,
           dtype.get<std::string>());
  info.dtype = *parsed;

  const auto& shape = value.at("shape");
  QB_CHECK(shape.is_array(), kInvalidInput, "{}: tensor '{}': shape is not an array", path, name);
  for (const auto& dim : shape) {
    QB_CHECK(dim.is_number_unsigned(), kInvalidInput,
             "{}: tensor '{}': shape entry {} is not a non-negative integer", path, name, dim.dump());
    info.shape.push_back(static_cast<int64_t>(dim.get<uint64_t>()));
  }
  const auto& offsets = value.at("data_offsets");
  QB_CHECK(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() &&
               offsets[1].is_number_unsigned(),
           kInvalidInput, "{}: tensor '{}': data_offsets must be two non-negative integers, got {}", path, name,
           offsets.dump());
  info.begin = offsets[0].get<uint64_t>();
  info.end = offsets[1].get<uint64_t>();
  QB_CHECK(info.begin <= info.end, kInvalidInput, "{}: tensor '{}': data_offsets [{}, {}] end before they begin",
           path, name, info.begin, info.end);

  // dtype x shape must equal the byte span; overflow in the product is itself an error.
  uint64_t expected = st_dtype_size_bytes(info.dtype);
  for (int64_t dim : info.shape) {
    QB_CHECK(!__builtin_mul_overflow(expected, static_cast<uint64_t>(dim), &expected), kInvalidInput,
             "{}: tensor '{}': shape {} overflows 64 bits", path, name, shape.dump());
  }
  QB_CHECK(expected == info.end - info.begin, kInvalidInput,
           "{}: tensor '{}': dtype {} x shape {} is {} bytes but data_offsets [{}, {}] hold {}", path, name,
           st_dtype_name(info.dtype), shape.dump(), expected, info.begin, info.end, info.end - info.begin);
  return info;
}

}  // namespace

std::optional<StDtype> parse_st_dtype(const std::string& name) {
  for (const auto& e : kDtypes) {
    if (name == e.name) return e.dtype;
  }
  return std::nullopt;
}

const char* st_dtype_name(StDtype dtype) { return entry_of(dtype).name; }
size_t st_dtype_size_bytes(StDtype dtype) { return entry_of(dtype).size_bytes; }

c10::ScalarType st_dtype_to_scalar(StDtype dtype) {
  switch (dtype) {
    case StDtype::kBool: return at::kBool;
    case StDtype::kU8: return at::kByte;
    case StDtype::kI8: return at::kChar;
    case StDtype::kI16: return at::kShort;
    case StDtype::kU16: return at::kUInt16;
    case StDtype::kF16: return at::kHalf;
    case StDtype::kBF16: return at::kBFloat16;
    case StDtype::kI32: return at::kInt;
    case StDtype::kU32: return at::kUInt32;
    case StDtype::kF32: return at::kFloat;
    case StDtype::kF64: return at::kDouble;
    case StDtype::kI64: return at::kLong;
    case StDtype::kU64: return at::kUInt64;
    case StDtype::kF8E4M3: return at::kFloat8_e4m3fn;
    case StDtype::kF8E5M2: return at::kFloat8_e5m2;
  }
  fail(ErrorKind::kInternal, "unmapped safetensors dtype");
}

StDtype scalar_to_st_dtype(c10::ScalarType type) {
  for (const auto& e : kDtypes) {
    if (st_dtype_to_scalar(e.dtype) == type) return e.dtype;
  }
  fail(ErrorKind::kUnsupported, "tensor dtype {} has no safetensors equivalent", c10::toString(type));
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) { return from_mapping(MappedFile::open(path)); }

SafetensorsFile SafetensorsFile::from_mapping(std::shared_ptr<const MappedFile> file) {
  const std::string& path = file->path();
  const size_t file_bytes = file->size_bytes();
  QB_CHECK(file_bytes >= 8, kInvalidInput, "{}: file is {} bytes, shorter than the 8-byte header length",
           path, file_bytes);
  const uint64_t header_bytes = read_u64_le(file->data());
  QB_CHECK(header_bytes <= kMaxHeaderBytes, kInvalidInput, "{}: header length {} exceeds the {}-byte limit",
           path, header_bytes, kMaxHeaderBytes);
  QB_CHECK(header_bytes <= file_bytes - 8, kInvalidInput,
           "{}: header length {} runs past the end of the {}-byte file", path, header_bytes, file_bytes);
  const char* header_begin = reinterpret_cast<const char*>(file->data() + 8);
  QB_CHECK(header_bytes > 0 && header_begin[0] == '{', kInvalidInput,
           "{}: header does not start with '{{' (not a safetensors file?)", path);

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(header_begin, header_begin + header_bytes);
  } catch (const nlohmann::json::parse_error& e) {
    fail(ErrorKind::kInvalidInput, "{}: header is not valid JSON: {}", path, e.what());
  }
  QB_CHECK(header.is_object(), kInvalidInput, "{}: header is not a JSON object", path);

  SafetensorsFile result;
  result.file_ = file;
  result.data_start_ = 8 + header_bytes;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      QB_CHECK(value.is_object(), kInvalidInput, "{}: __metadata__ is not a JSON object", path);
      for (const auto& [key, text] : value.items()) {
        QB_CHECK(text.is_string(), kInvalidInput, "{}: __metadata__['{}'] is not a string", path, key);
        result.metadata_[key] = text.get<std::string>();
      }
      continue;
    }
    result.tensors_.push_back(parse_entry(path, name, value));
  }

  // The data buffer must be tiled exactly: no holes, no overlaps, nothing past its end.
  std::sort(result.tensors_.begin(), result.tensors_.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  const uint64_t data_bytes = file_bytes - result.data_start_;
  uint64_t cursor = 0;
  const TensorInfo* previous = nullptr;
  for (const auto& info : result.tensors_) {
    QB_CHECK(info.begin >= cursor, kInvalidInput, "{}: tensor '{}' [{}, {}) overlaps tensor '{}' [{}, {})", path,
             info.name, info.begin, info.end, previous->name, previous->begin, previous->end);
    QB_CHECK(info.begin == cursor, kInvalidInput, "{}: tensor '{}' starts at {} leaving a hole after offset {}",
             path, info.name, info.begin, cursor);
    QB_CHECK(info.end <= data_bytes, kInvalidInput,
             "{}: tensor '{}' data_offsets [{}, {}] run past the {}-byte data buffer (file truncated?)", path,
             info.name, info.begin, info.end, data_bytes);
    cursor = info.end;
    previous = &info;
  }
  QB_CHECK(cursor == data_bytes, kInvalidInput,
           "{}: tensors cover {} bytes but the data buffer holds {} (trailing or missing bytes)", path, cursor,
           data_bytes);
  for (size_t i = 0; i < result.tensors_.size(); ++i) result.index_[result.tensors_[i].name] = i;
  return result;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

std::pair<const uint8_t*, size_t> SafetensorsFile::raw_bytes(const std::string& name) const {
  const TensorInfo* info = find(name);
  QB_CHECK(info != nullptr, kNotFound, "{}: no tensor named '{}'", path(), name);
  return {file_->data() + data_start_ + info->begin, static_cast<size_t>(info->end - info->begin)};
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const TensorInfo* info = find(name);
  QB_CHECK(info != nullptr, kNotFound, "{}: no tensor named '{}'", path(), name);
  const auto options = at::TensorOptions().dtype(st_dtype_to_scalar(info->dtype)).device(at::kCPU);
  const uint8_t* bytes = file_->data() + data_start_ + info->begin;
  const size_t element_bytes = st_dtype_size_bytes(info->dtype);
  if (info->numel() == 0) return at::empty(info->shape, options);
  if (reinterpret_cast<uintptr_t>(bytes) % element_bytes != 0) {
    at::Tensor copy = at::empty(info->shape, options);
    std::memcpy(copy.data_ptr(), bytes, info->end - info->begin);
    return copy;
  }
  auto keep_alive = file_;
  return at::from_blob(const_cast<uint8_t*>(bytes), info->shape, [keep_alive](void*) {}, options);
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> contiguous;
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    QB_CHECK(name != "__metadata__" && seen.insert(name).second, kInvalidInput,
             "{}: tensor name '{}' is reserved or repeated", path, name);
    at::Tensor cpu = tensor.contiguous().to(at::kCPU);
    const uint64_t nbytes = static_cast<uint64_t>(cpu.nbytes());
    header[name] = {{"dtype", st_dtype_name(scalar_to_st_dtype(cpu.scalar_type()))},
                    {"shape", cpu.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    contiguous.push_back(cpu);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  QB_CHECK(out.good(), kInvalidInput, "{}: cannot open for writing", path);
  uint8_t length_le[8];
  uint64_t length = text.size();
  for (int i = 0; i < 8; ++i) length_le[i] = static_cast<uint8_t>(length >> (8 * i));
  out.write(reinterpret_cast<const char*>(length_le), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& cpu : contiguous) {
    out.write(static_cast<const char*>(cpu.data_ptr()), static_cast<std::streamsize>(cpu.nbytes()));
  }
  QB_CHECK(out.good(), kInvalidInput, "{}: write failed (disk full?)", path);
}

}  // namespace qb::io
