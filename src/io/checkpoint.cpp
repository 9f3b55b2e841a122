#include "quantbench/io/checkpoint.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "quantbench/core/error.h"

namespace qb::io {
namespace fs = std::filesystem;

namespace {

nlohmann::json read_index(const std::string& index_path) {
  std::ifstream in(index_path);
  QB_CHECK(in.good(), kNotFound, "{}: cannot open", index_path);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    fail(ErrorKind::kInvalidInput, "{}: not valid JSON: {}", index_path, e.what());
  }
}

}  // namespace

Checkpoint Checkpoint::open(const std::string& dir) {
  QB_CHECK(fs::is_directory(dir), kNotFound, "{}: checkpoint directory does not exist", dir);
  Checkpoint checkpoint;
  checkpoint.dir_ = dir;
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  std::map<std::string, size_t> file_slot;
  auto add_file = [&](const std::string& file_name) -> size_t {
    auto it = file_slot.find(file_name);
    if (it != file_slot.end()) return it->second;
    QB_CHECK(file_name.find("..") == std::string::npos && file_name.find('/') == std::string::npos, kInvalidInput,
             "{}: shard name '{}' leaves the checkpoint directory", index_path.string(), file_name);
    const fs::path shard = fs::path(dir) / file_name;
    QB_CHECK(fs::exists(shard), kNotFound, "{}: names shard '{}', which is missing from {}",
             index_path.string(), file_name, dir);
    checkpoint.files_.push_back(std::make_shared<SafetensorsFile>(SafetensorsFile::open(shard.string())));
    file_slot[file_name] = checkpoint.files_.size() - 1;
    return checkpoint.files_.size() - 1;
  };

  if (fs::exists(index_path)) {
    const nlohmann::json index = read_index(index_path.string());
    QB_CHECK(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(), kInvalidInput,
             "{}: has no 'weight_map' object", index_path.string());
    for (const auto& [tensor_name, file_name] : index["weight_map"].items()) {
      QB_CHECK(file_name.is_string(), kInvalidInput, "{}: weight_map['{}'] is not a file name",
               index_path.string(), tensor_name);
      const size_t slot = add_file(file_name.get<std::string>());
      QB_CHECK(checkpoint.files_[slot]->find(tensor_name) != nullptr, kInvalidInput,
               "{}: maps tensor '{}' to {}, which does not hold it", index_path.string(), tensor_name,
               file_name.get<std::string>());
      checkpoint.where_[tensor_name] = slot;
    }
  } else {
    // transformers reads model.safetensors when there is no index; other *.safetensors files beside
    // it (adapters, references) are not part of the model. Without either, every file is a shard.
    std::vector<std::string> shards;
    if (fs::exists(fs::path(dir) / "model.safetensors")) {
      shards.push_back("model.safetensors");
    } else {
      for (const auto& entry : fs::directory_iterator(dir)) {
        if (entry.is_regular_file() && entry.path().extension() == ".safetensors") {
          shards.push_back(entry.path().filename().string());
        }
      }
      std::sort(shards.begin(), shards.end());
    }
    QB_CHECK(!shards.empty(), kNotFound, "{}: no *.safetensors files and no model.safetensors.index.json", dir);
    for (const auto& shard : shards) {
      const size_t slot = add_file(shard);
      for (const auto& info : checkpoint.files_[slot]->tensors()) {
        QB_CHECK(checkpoint.where_.count(info.name) == 0, kInvalidInput,
                 "{}: tensor '{}' appears in more than one shard", dir, info.name);
        checkpoint.where_[info.name] = slot;
      }
    }
  }
  return checkpoint;
}

const SafetensorsFile& Checkpoint::file_of(const std::string& name) const {
  auto it = where_.find(name);
  QB_CHECK(it != where_.end(), kNotFound, "{}: checkpoint has no tensor '{}'", dir_, name);
  return *files_[it->second];
}

const TensorInfo& Checkpoint::info(const std::string& name) const { return *file_of(name).find(name); }
at::Tensor Checkpoint::get(const std::string& name) const { return file_of(name).tensor(name); }
std::pair<const uint8_t*, size_t> Checkpoint::raw_bytes(const std::string& name) const {
  return file_of(name).raw_bytes(name);
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> result;
  for (const auto& [name, slot] : where_) result.push_back(name);
  return result;
}

uint64_t Checkpoint::total_bytes() const {
  uint64_t total = 0;
  for (const auto& [name, slot] : where_) total += info(name).end - info(name).begin;
  return total;
}

}  // namespace qb::io
