// The builder: formats applied per linear layer, the LM head's format (and its dense fallback when
// the head's shape does not fit the format), synthetic weights, and pre-quantized checkpoints.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "quantbench/core/error.h"
#include "quantbench/io/model_resolver.h"
#include "quantbench/io/safetensors.h"
#include "quantbench/model/builder.h"
#include "test_support.h"

namespace qb::model {
namespace {

// A synthetic preset in a temporary QB_CONFIG_DIR.
class SyntheticPreset {
 public:
  explicit SyntheticPreset(const std::string& json) {
    std::filesystem::create_directories(dir_.path() + "/models");
    std::ofstream(dir_.path() + "/models/tiny.json") << json;
    ::setenv("QB_CONFIG_DIR", dir_.path().c_str(), 1);
  }
  ~SyntheticPreset() { ::unsetenv("QB_CONFIG_DIR"); }

 private:
  test::TempDir dir_;
};

BuildOptions cpu_options(const std::string& precision) {
  BuildOptions options;
  options.precision = precision;
  options.format.group_size = 32;
  return options;
}

TEST(Builder, HeadTakesTheFormatUnlessAskedNotTo) {
  // An odd vocabulary (GPT-2's is 50257) still takes awq: its groups run along the hidden size.
  SyntheticPreset preset(R"({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 1,
      "num_attention_heads": 4, "intermediate_size": 64, "vocab_size": 321, "tie_word_embeddings": false})");
  BuildReport report;
  const auto lm = build_causal_lm(io::resolve_model("synthetic:tiny"), cpu_options("awq"), &report);
  EXPECT_EQ(report.lm_head_format, "awq");
  EXPECT_EQ(report.weights, "synthetic");
  const auto footprint = lm->footprint();
  EXPECT_GT(footprint.linear_bytes_by_format.at("awq"), 0);
  EXPECT_EQ(footprint.linear_bytes_by_format.count("fp32"), 0u);
  // --dense-lm-head keeps it dense on request.
  BuildOptions dense_head = cpu_options("awq");
  dense_head.quantize_lm_head = false;
  build_causal_lm(io::resolve_model("synthetic:tiny"), dense_head, &report);
  EXPECT_EQ(report.lm_head_format, "fp32");
}

TEST(Builder, TiedDenseHeadSharesTheEmbeddingTable) {
  BuildReport report;
  const auto lm = build_causal_lm(io::resolve_model(test::fixtures_dir() + "/models/gpt2"), cpu_options("fp32"), &report);
  const auto footprint = lm->footprint();
  EXPECT_EQ(footprint.embedding_bytes, 64 * 32 * 4);  // only the position table; wte is counted as the head
  EXPECT_EQ(footprint.lm_head_bytes, 320 * 32 * 4);
  EXPECT_EQ(report.checkpoint_tensors_unused, 0);
}

TEST(Builder, PrequantizedCheckpointMustRunInItsOwnFormat) {
  test::TempDir dir;
  nlohmann::json config = load_json_file(test::fixtures_dir() + "/models/llama/config.json");
  config["quantization_config"] = {{"quant_method", "awq"}, {"bits", 4}, {"group_size", 128}, {"version", "gemm"}};
  std::ofstream(dir.file("config.json")) << config.dump();
  std::filesystem::copy_file(test::fixtures_dir() + "/models/llama/model.safetensors", dir.file("model.safetensors"));
  try {
    build_causal_lm(io::resolve_model(dir.path()), cpu_options("fp16"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--precision awq"), std::string::npos) << e.what();
  }
}

TEST(Builder, MissingTensorNamesTheCheckpointAndTheTensor) {
  test::TempDir dir;
  const std::string source = test::fixtures_dir() + "/models/llama";
  for (const char* file : {"config.json", "tokenizer.json"}) {
    std::filesystem::copy_file(source + "/" + file, dir.file(file));
  }
  // Drop one tensor from the checkpoint.
  const auto original = io::SafetensorsFile::open(source + "/model.safetensors");
  std::vector<std::pair<std::string, at::Tensor>> kept;
  for (const auto& info : original.tensors()) {
    if (info.name != "model.layers.1.mlp.down_proj.weight") kept.emplace_back(info.name, original.tensor(info.name));
  }
  io::write_safetensors(dir.file("model.safetensors"), kept);
  try {
    build_causal_lm(io::resolve_model(dir.path()), cpu_options("fp32"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNotFound);
    EXPECT_NE(std::string(e.what()).find("model.layers.1.mlp.down_proj.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(dir.path()), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qb::model
