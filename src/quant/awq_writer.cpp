#include "quantbench/quant/awq_writer.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>

#include "quantbench/core/error.h"
#include "quantbench/io/safetensors.h"

namespace qb::quant {
namespace {

namespace fs = std::filesystem;

// Files beside a checkpoint that describe its tokenizer and generation defaults.
constexpr const char* kSideFiles[] = {"tokenizer.json",     "tokenizer_config.json", "generation_config.json",
                                      "special_tokens_map.json", "vocab.json",        "merges.txt",
                                      "tokenizer.model",    "added_tokens.json"};

const char* dtype_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    default: return "float32";
  }
}

void prepare_dir(const std::string& out_dir, const std::string& source_dir, bool overwrite) {
  QB_CHECK(!out_dir.empty(), kInvalidInput, "the output directory is empty");
  fs::create_directories(out_dir);
  QB_CHECK(!fs::equivalent(out_dir, source_dir), kInvalidInput,
           "{}: the output directory is the source checkpoint; write elsewhere", out_dir);
  for (const auto& entry : fs::directory_iterator(out_dir)) {
    const std::string name = entry.path().filename().string();
    const bool checkpoint_file = entry.path().extension() == ".safetensors" || name == "model.safetensors.index.json";
    if (!checkpoint_file) continue;
    QB_CHECK(overwrite && name == "model.safetensors", kInvalidInput,
             "{}: already holds {}{}", out_dir, name,
             name == "model.safetensors" ? " (pass --overwrite to replace it)"
                                         : ", which a loader would read beside the new file; choose an empty directory");
  }
}

CheckpointWriteSummary finish(const DenseModel& m, const std::string& out_dir, nlohmann::json config,
                              const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  const std::string file = (fs::path(out_dir) / "model.safetensors").string();
  io::write_safetensors(file, tensors, {{"format", "pt"}});
  std::ofstream(fs::path(out_dir) / "config.json", std::ios::trunc) << config.dump(2) << "\n";
  CheckpointWriteSummary summary;
  summary.dir = out_dir;
  summary.tensors = static_cast<int64_t>(tensors.size());
  summary.file_bytes = static_cast<int64_t>(fs::file_size(file));
  for (const char* name : kSideFiles) {
    const fs::path from = fs::path(m.dir) / name;
    if (!fs::exists(from)) continue;
    fs::copy_file(from, fs::path(out_dir) / name, fs::copy_options::overwrite_existing);
    summary.copied.push_back(name);
  }
  return summary;
}

// The dtype the model's dense tensors are written in, in both spellings transformers reads.
nlohmann::json with_dtype(nlohmann::json config, at::ScalarType dtype) {
  config["torch_dtype"] = dtype_name(dtype);
  if (config.contains("dtype")) config["dtype"] = dtype_name(dtype);
  return config;
}

// A dense tensor as the checkpoint stores it: Conv1D weights back to [in, out], floats in `dtype`.
at::Tensor stored_form(const DenseModel& m, const std::string& name, const at::Tensor& t, at::ScalarType dtype) {
  at::Tensor out = m.transposed.count(name) != 0 ? t.t().contiguous() : t;
  return at::isFloatingType(out.scalar_type()) ? out.to(dtype).contiguous() : out;
}

}  // namespace

nlohmann::json awq_quantization_config(const AwqQuantizeOptions& options) {
  nlohmann::json modules = nullptr;
  if (!options.modules_to_not_convert.empty()) modules = options.modules_to_not_convert;
  return {{"quant_method", "awq"}, {"bits", 4},           {"group_size", options.group_size},
          {"zero_point", true},    {"version", "gemm"},   {"modules_to_not_convert", modules}};
}

CheckpointWriteSummary write_awq_checkpoint(const AwqQuantizedModel& q, const std::string& out_dir, bool overwrite) {
  const DenseModel& m = q.model;
  prepare_dir(out_dir, m.dir, overwrite);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& [name, tensor] : m.tensors) {
    const size_t dot = name.rfind('.');
    const std::string prefix = name.substr(0, dot);
    if (q.quantized.count(prefix) != 0 && name.substr(dot + 1) == "weight") continue;  // replaced by its codes
    tensors.emplace_back(name, stored_form(m, name, tensor, at::kHalf));
  }
  for (const auto& [prefix, unpacked] : q.quantized) {
    const AwqPacked packed = awq_pack(unpacked.int_weight, unpacked.zeros, unpacked.scales);
    tensors.emplace_back(prefix + ".qweight", packed.qweight);
    tensors.emplace_back(prefix + ".qzeros", packed.qzeros);
    tensors.emplace_back(prefix + ".scales", packed.scales);
  }
  nlohmann::json config = with_dtype(m.config_json, at::kHalf);
  config["quantization_config"] = awq_quantization_config(q.options);
  return finish(m, out_dir, config, tensors);
}

CheckpointWriteSummary write_dense_checkpoint(const DenseModel& m, const std::string& out_dir, at::ScalarType dtype,
                                              bool overwrite) {
  prepare_dir(out_dir, m.dir, overwrite);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& [name, tensor] : m.tensors) tensors.emplace_back(name, stored_form(m, name, tensor, dtype));
  return finish(m, out_dir, with_dtype(m.config_json, dtype), tensors);
}

}  // namespace qb::quant
