// A HuggingFace checkpoint directory: one model.safetensors, or shards listed by
// model.safetensors.index.json = {"metadata": {...}, "weight_map": {tensor: file}}.
// Lookups name the directory and the tensor when something is missing.
#pragma once

#include <ATen/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "quantbench/io/safetensors.h"

namespace qb::io {

class Checkpoint {
 public:
  // Reads the index when present, else model.safetensors, else every *.safetensors file.
  static Checkpoint open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  bool has(const std::string& name) const { return where_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  at::Tensor get(const std::string& name) const;  // CPU, zero-copy where aligned
  std::pair<const uint8_t*, size_t> raw_bytes(const std::string& name) const;
  std::vector<std::string> names() const;
  uint64_t total_bytes() const;

 private:
  const SafetensorsFile& file_of(const std::string& name) const;
  std::string dir_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index into files_
};

}  // namespace qb::io
