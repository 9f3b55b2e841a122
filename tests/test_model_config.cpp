// config.json parsing: every fixture and preset parses into the shape transformers builds;
// unknown or malformed configs give errors naming the file and the key.
#include <gtest/gtest.h>

#include <filesystem>

#include "quantbench/core/error.h"
#include "quantbench/io/model_config.h"
#include "quantbench/io/model_resolver.h"
#include "test_support.h"

namespace qb {
namespace {

ModelConfig parse_text(const std::string& text) { return parse_model_config(nlohmann::json::parse(text), "test.json"); }

TEST(ModelConfig, EveryPresetParsesAndCountsItsParameters) {
  // Published parameter counts (embeddings included once when tied), to 1%.
  const std::map<std::string, double> published = {
      {"gpt2", 124.4e6}, {"dialogpt-small", 124.4e6}, {"opt-125m", 125.2e6}, {"qwen2.5-0.5b", 494.0e6},
      {"tinyllama-1.1b", 1100.0e6}, {"llama-3.2-1b", 1235.8e6}, {"phi-2", 2779.7e6}, {"qwen2-7b", 7615.6e6},
      {"llama-3-8b", 8030.3e6}, {"mistral-7b", 7241.7e6}};
  for (const auto& preset : io::list_presets()) {
    SCOPED_TRACE(preset);
    const auto resolved = io::resolve_model("synthetic:" + preset);
    const ModelConfig config = parse_model_config(resolved.config, resolved.config_path);
    ASSERT_TRUE(published.count(preset)) << "add the published size of " << preset;
    EXPECT_NEAR(config.parameter_count(), published.at(preset), published.at(preset) * 0.01);
  }
}

TEST(ModelConfig, Qwen2HasQkvBiasAndGqa) {
  const auto resolved = io::resolve_model("synthetic:qwen2-7b");
  const ModelConfig c = parse_model_config(resolved.config, "qwen2-7b");
  EXPECT_EQ(c.arch, Arch::kQwen2);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_DOUBLE_EQ(c.rope.theta, 1e6);
  EXPECT_FALSE(c.sliding_window.has_value());
}

TEST(ModelConfig, Llama3RopeScalingFromBothKeySpellings) {
  const ModelConfig v4 = parse_text(R"({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 1,
      "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 10, "rope_theta": 500000.0,
      "rope_scaling": {"rope_type": "llama3", "factor": 32, "low_freq_factor": 1, "high_freq_factor": 4,
      "original_max_position_embeddings": 8192}})");
  EXPECT_EQ(v4.rope.type, "llama3");
  EXPECT_DOUBLE_EQ(v4.rope.theta, 500000.0);
  EXPECT_DOUBLE_EQ(v4.rope.factor, 32);
  const ModelConfig v5 = parse_text(R"({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 1,
      "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 10,
      "rope_parameters": {"rope_theta": 1234.0, "rope_type": "default"}})");
  EXPECT_DOUBLE_EQ(v5.rope.theta, 1234.0);
  EXPECT_EQ(v5.rope.type, "default");
}

TEST(ModelConfig, PhiPartialRotaryAndOptProjection) {
  const auto phi = io::resolve_model("synthetic:phi-2");
  const ModelConfig p = parse_model_config(phi.config, "phi-2");
  EXPECT_TRUE(p.parallel_residual);
  EXPECT_EQ(p.rotary_dim(), 32);  // 0.4 x 80
  EXPECT_TRUE(p.lm_head_bias);
  const ModelConfig opt = parse_text(R"({"model_type": "opt", "hidden_size": 1024, "ffn_dim": 4096,
      "num_hidden_layers": 24, "num_attention_heads": 16, "max_position_embeddings": 2048, "vocab_size": 50272,
      "word_embed_proj_dim": 512, "do_layer_norm_before": false})");
  EXPECT_EQ(opt.word_embed_proj_dim, 512);
  EXPECT_TRUE(opt.post_norm);
  EXPECT_FALSE(opt.final_norm);
  EXPECT_EQ(opt.position_offset, 2);
}

TEST(ModelConfig, UnknownModelTypeListsTheSupportedOnes) {
  try {
    parse_text(R"({"model_type": "mamba", "vocab_size": 10})");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    const std::string message = e.what();
    EXPECT_NE(message.find("mamba"), std::string::npos);
    EXPECT_NE(message.find("gpt2, llama, mistral, qwen2, opt, phi"), std::string::npos) << message;
  }
}

TEST(ModelConfig, MissingAndMistypedKeysAreNamed) {
  try {
    parse_text(R"({"model_type": "llama", "hidden_size": 64})");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("num_hidden_layers"), std::string::npos) << e.what();
  }
  try {
    parse_text(R"({"model_type": "gpt2", "n_embd": "wide", "n_layer": 1, "n_head": 1, "n_positions": 8, "vocab_size": 4})");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'n_embd' has the wrong type"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_text(R"({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 1,
      "num_attention_heads": 4, "num_key_value_heads": 3, "intermediate_size": 8, "vocab_size": 10})"), Error);
  EXPECT_THROW(parse_text(R"({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 1,
      "num_attention_heads": 4, "intermediate_size": 8, "vocab_size": 10,
      "rope_scaling": {"rope_type": "yarn", "factor": 4}})"), Error);
}

}  // namespace
}  // namespace qb
