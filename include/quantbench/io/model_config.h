// config.json, parsed into one typed description that every architecture shares. The model code
// reads only this struct; the HF key names of each model_type live in model_config.cpp alone.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qb {

enum class Arch { kGpt2, kLlama, kMistral, kQwen2, kOpt, kPhi };
enum class NormKind { kLayerNorm, kRmsNorm };
enum class Activation { kGeluTanh, kGeluErf, kSilu, kRelu };

const char* arch_name(Arch arch);
// The model_type values we accept, comma-separated, for error messages.
std::string supported_model_types();

struct RopeConfig {
  double theta = 10000.0;
  std::string type = "default";  // "default" | "linear" | "llama3"
  double factor = 1.0;           // linear and llama3
  double low_freq_factor = 1.0;  // llama3
  double high_freq_factor = 4.0;
  int64_t original_max_positions = 8192;
  double partial_rotary_factor = 1.0;  // fraction of head_dim rotated (phi-2: 0.4)
};

struct ModelConfig {
  Arch arch = Arch::kLlama;
  std::string model_type;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t intermediate_size = 0;
  int64_t max_positions = 0;
  double norm_eps = 1e-5;
  NormKind norm = NormKind::kRmsNorm;
  Activation activation = Activation::kSilu;
  bool gated_mlp = true;          // SwiGLU: down(act(gate(x)) * up(x))
  bool qkv_bias = false;
  bool o_bias = false;
  bool mlp_bias = false;
  bool lm_head_bias = false;      // phi
  bool tie_word_embeddings = false;
  bool parallel_residual = false; // phi: x + attn(ln(x)) + mlp(ln(x))
  bool use_rope = true;
  bool learned_positions = false; // gpt2, opt
  int64_t position_offset = 0;    // opt: learned positions are indexed from 2
  int64_t word_embed_proj_dim = 0;// opt-350m projects embeddings; 0 = no projection
  bool final_norm = true;
  bool post_norm = false;         // opt-350m (do_layer_norm_before=false): norm after each residual add
  RopeConfig rope;
  std::optional<int64_t> sliding_window;
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;
  std::string torch_dtype = "float32";  // the checkpoint's own dtype
  nlohmann::json quantization_config;   // null when dense

  int64_t q_size() const { return num_heads * head_dim; }
  int64_t kv_size() const { return num_kv_heads * head_dim; }
  int64_t rotary_dim() const;
  // Parameters a dense checkpoint of this config holds (embeddings counted once when tied).
  int64_t parameter_count() const;
};

// `source` names the file (or preset) for error messages.
ModelConfig parse_model_config(const nlohmann::json& config, const std::string& source);
nlohmann::json load_json_file(const std::string& path);

}  // namespace qb
