#include "quantbench/io/model_config.h"

#include <fstream>

#include "quantbench/core/error.h"

namespace qb {
namespace {

// Reads config[key] as T, or `fallback` when absent or null; a wrong type names the key.
template <typename T>
T get_or(const nlohmann::json& config, const char* key, T fallback, const std::string& source) {
  if (!config.contains(key) || config[key].is_null()) return fallback;
  try {
    return config[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    fail(ErrorKind::kInvalidInput, "{}: '{}' has the wrong type ({})", source, key, config[key].dump());
  }
}

template <typename T>
T require(const nlohmann::json& config, const char* key, const std::string& source) {
  QB_CHECK(config.contains(key) && !config[key].is_null(), kInvalidInput, "{}: missing required key '{}'", source,
           key);
  return get_or<T>(config, key, T{}, source);
}

Activation parse_activation(const std::string& name, const std::string& source) {
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") return Activation::kGeluTanh;
  if (name == "gelu") return Activation::kGeluErf;
  if (name == "silu" || name == "swish") return Activation::kSilu;
  if (name == "relu") return Activation::kRelu;
  fail(ErrorKind::kUnsupported, "{}: activation '{}' is not supported (gelu_new, gelu, silu, relu)", source, name);
}

// transformers 5 keeps rope settings in `rope_parameters`; 4.x in `rope_theta` + `rope_scaling`.
void parse_rope(const nlohmann::json& config, const std::string& source, RopeConfig& rope) {
  nlohmann::json params = nlohmann::json::object();
  if (config.contains("rope_scaling") && config["rope_scaling"].is_object()) params = config["rope_scaling"];
  if (config.contains("rope_parameters") && config["rope_parameters"].is_object()) {
    params.update(config["rope_parameters"]);
  }
  rope.theta = get_or<double>(params, "rope_theta", get_or<double>(config, "rope_theta", 10000.0, source), source);
  rope.type = get_or<std::string>(params, "rope_type", get_or<std::string>(params, "type", "default", source), source);
  rope.partial_rotary_factor = get_or<double>(
      params, "partial_rotary_factor", get_or<double>(config, "partial_rotary_factor", 1.0, source), source);
  if (rope.type == "default") return;
  if (rope.type == "linear") {
    rope.factor = require<double>(params, "factor", source + " rope_scaling");
    return;
  }
  if (rope.type == "llama3") {
    const std::string where = source + " rope_scaling";
    rope.factor = require<double>(params, "factor", where);
    rope.low_freq_factor = require<double>(params, "low_freq_factor", where);
    rope.high_freq_factor = require<double>(params, "high_freq_factor", where);
    rope.original_max_positions = require<int64_t>(params, "original_max_position_embeddings", where);
    return;
  }
  fail(ErrorKind::kUnsupported, "{}: rope type '{}' is not supported (default, linear, llama3)", source, rope.type);
}

void parse_token_ids(const nlohmann::json& config, const std::string& source, ModelConfig& out) {
  if (config.contains("bos_token_id") && config["bos_token_id"].is_number_integer()) {
    out.bos_token_id = config["bos_token_id"].get<int64_t>();
  }
  if (config.contains("eos_token_id")) {
    const auto& eos = config["eos_token_id"];
    if (eos.is_number_integer()) out.eos_token_ids.push_back(eos.get<int64_t>());
    if (eos.is_array()) {
      for (const auto& id : eos) {
        QB_CHECK(id.is_number_integer(), kInvalidInput, "{}: eos_token_id holds a non-integer", source);
        out.eos_token_ids.push_back(id.get<int64_t>());
      }
    }
  }
}

void parse_gpt2(const nlohmann::json& c, const std::string& s, ModelConfig& m) {
  m.arch = Arch::kGpt2;
  m.hidden_size = require<int64_t>(c, "n_embd", s);
  m.num_layers = require<int64_t>(c, "n_layer", s);
  m.num_heads = require<int64_t>(c, "n_head", s);
  m.num_kv_heads = m.num_heads;
  m.max_positions = require<int64_t>(c, "n_positions", s);
  m.intermediate_size = get_or<int64_t>(c, "n_inner", 4 * m.hidden_size, s);
  m.norm_eps = get_or<double>(c, "layer_norm_epsilon", 1e-5, s);
  m.norm = NormKind::kLayerNorm;
  m.activation = parse_activation(get_or<std::string>(c, "activation_function", "gelu_new", s), s);
  m.gated_mlp = false;
  m.qkv_bias = m.o_bias = m.mlp_bias = true;
  m.tie_word_embeddings = get_or<bool>(c, "tie_word_embeddings", true, s);
  m.use_rope = false;
  m.learned_positions = true;
  QB_CHECK(!get_or<bool>(c, "scale_attn_by_inverse_layer_idx", false, s), kUnsupported,
           "{}: scale_attn_by_inverse_layer_idx=true is not supported", s);
  QB_CHECK(get_or<bool>(c, "scale_attn_weights", true, s), kUnsupported, "{}: scale_attn_weights=false is not supported", s);
}

// llama, mistral and qwen2 share HF's LlamaConfig key names.
void parse_llama_family(const nlohmann::json& c, const std::string& s, ModelConfig& m) {
  m.hidden_size = require<int64_t>(c, "hidden_size", s);
  m.num_layers = require<int64_t>(c, "num_hidden_layers", s);
  m.num_heads = require<int64_t>(c, "num_attention_heads", s);
  m.num_kv_heads = get_or<int64_t>(c, "num_key_value_heads", m.num_heads, s);
  m.head_dim = get_or<int64_t>(c, "head_dim", m.hidden_size / m.num_heads, s);
  m.intermediate_size = require<int64_t>(c, "intermediate_size", s);
  m.max_positions = get_or<int64_t>(c, "max_position_embeddings", 2048, s);
  m.norm_eps = get_or<double>(c, "rms_norm_eps", 1e-6, s);
  m.norm = NormKind::kRmsNorm;
  m.activation = parse_activation(get_or<std::string>(c, "hidden_act", "silu", s), s);
  m.gated_mlp = true;
  const bool attention_bias = get_or<bool>(c, "attention_bias", false, s);
  m.qkv_bias = attention_bias;
  m.o_bias = attention_bias;
  m.mlp_bias = get_or<bool>(c, "mlp_bias", false, s);
  m.tie_word_embeddings = get_or<bool>(c, "tie_word_embeddings", false, s);
  parse_rope(c, s, m.rope);
}

void parse_opt(const nlohmann::json& c, const std::string& s, ModelConfig& m) {
  m.arch = Arch::kOpt;
  m.hidden_size = require<int64_t>(c, "hidden_size", s);
  m.num_layers = require<int64_t>(c, "num_hidden_layers", s);
  m.num_heads = require<int64_t>(c, "num_attention_heads", s);
  m.num_kv_heads = m.num_heads;
  m.intermediate_size = require<int64_t>(c, "ffn_dim", s);
  m.max_positions = require<int64_t>(c, "max_position_embeddings", s);
  m.norm = NormKind::kLayerNorm;
  m.norm_eps = 1e-5;
  m.activation = parse_activation(get_or<std::string>(c, "activation_function", "relu", s), s);
  m.gated_mlp = false;
  const bool bias = get_or<bool>(c, "enable_bias", true, s);
  m.qkv_bias = m.o_bias = m.mlp_bias = bias;
  m.tie_word_embeddings = get_or<bool>(c, "tie_word_embeddings", true, s);
  m.use_rope = false;
  m.learned_positions = true;
  m.position_offset = 2;
  const bool norm_before = get_or<bool>(c, "do_layer_norm_before", true, s);
  m.post_norm = !norm_before;
  m.final_norm = norm_before && !get_or<bool>(c, "_remove_final_layer_norm", false, s);
  const int64_t proj = get_or<int64_t>(c, "word_embed_proj_dim", m.hidden_size, s);
  m.word_embed_proj_dim = proj == m.hidden_size ? 0 : proj;
  QB_CHECK(get_or<bool>(c, "layer_norm_elementwise_affine", true, s), kUnsupported,
           "{}: layer_norm_elementwise_affine=false is not supported", s);
}

void parse_phi(const nlohmann::json& c, const std::string& s, ModelConfig& m) {
  m.arch = Arch::kPhi;
  m.hidden_size = require<int64_t>(c, "hidden_size", s);
  m.num_layers = require<int64_t>(c, "num_hidden_layers", s);
  m.num_heads = require<int64_t>(c, "num_attention_heads", s);
  m.num_kv_heads = get_or<int64_t>(c, "num_key_value_heads", m.num_heads, s);
  m.head_dim = m.hidden_size / m.num_heads;
  m.intermediate_size = require<int64_t>(c, "intermediate_size", s);
  m.max_positions = get_or<int64_t>(c, "max_position_embeddings", 2048, s);
  m.norm = NormKind::kLayerNorm;
  m.norm_eps = get_or<double>(c, "layer_norm_eps", 1e-5, s);
  m.activation = parse_activation(get_or<std::string>(c, "hidden_act", "gelu_new", s), s);
  m.gated_mlp = false;
  m.qkv_bias = m.o_bias = m.mlp_bias = true;
  m.lm_head_bias = true;
  m.tie_word_embeddings = get_or<bool>(c, "tie_word_embeddings", false, s);
  m.parallel_residual = true;
  QB_CHECK(!get_or<bool>(c, "qk_layernorm", false, s), kUnsupported, "{}: qk_layernorm=true is not supported", s);
  parse_rope(c, s, m.rope);
}

}  // namespace

const char* arch_name(Arch arch) {
  switch (arch) {
    case Arch::kGpt2: return "gpt2";
    case Arch::kLlama: return "llama";
    case Arch::kMistral: return "mistral";
    case Arch::kQwen2: return "qwen2";
    case Arch::kOpt: return "opt";
    case Arch::kPhi: return "phi";
  }
  return "unknown";
}

std::string supported_model_types() { return "gpt2, llama, mistral, qwen2, opt, phi"; }

int64_t ModelConfig::rotary_dim() const {
  if (!use_rope) return 0;
  int64_t dim = static_cast<int64_t>(static_cast<double>(head_dim) * rope.partial_rotary_factor);
  return dim - dim % 2;
}

int64_t ModelConfig::parameter_count() const {
  const int64_t embed_dim = word_embed_proj_dim > 0 ? word_embed_proj_dim : hidden_size;
  int64_t total = vocab_size * embed_dim;
  if (learned_positions) total += (max_positions + position_offset) * hidden_size;
  if (word_embed_proj_dim > 0) total += 2 * embed_dim * hidden_size;
  const int64_t norm_params = norm == NormKind::kLayerNorm ? 2 * hidden_size : hidden_size;
  int64_t layer = hidden_size * (q_size() + 2 * kv_size()) + q_size() * hidden_size;
  if (qkv_bias) layer += q_size() + 2 * kv_size();
  if (o_bias) layer += hidden_size;
  layer += (gated_mlp ? 3 : 2) * hidden_size * intermediate_size;
  if (mlp_bias) layer += (gated_mlp ? 2 : 1) * intermediate_size + hidden_size;
  layer += (parallel_residual ? 1 : 2) * norm_params;
  total += num_layers * layer;
  if (final_norm) total += norm_params;
  if (!tie_word_embeddings) total += vocab_size * embed_dim + (lm_head_bias ? vocab_size : 0);
  return total;
}

ModelConfig parse_model_config(const nlohmann::json& config, const std::string& source) {
  QB_CHECK(config.is_object(), kInvalidInput, "{}: config is not a JSON object", source);
  QB_CHECK(config.contains("model_type") && config["model_type"].is_string(), kInvalidInput,
           "{}: has no 'model_type' (supported: {})", source, supported_model_types());
  ModelConfig m;
  m.model_type = config["model_type"].get<std::string>();
  if (m.model_type == "gpt2") {
    parse_gpt2(config, source, m);
  } else if (m.model_type == "llama" || m.model_type == "mistral" || m.model_type == "qwen2") {
    parse_llama_family(config, source, m);
    m.arch = m.model_type == "llama" ? Arch::kLlama : m.model_type == "mistral" ? Arch::kMistral : Arch::kQwen2;
    if (m.arch == Arch::kQwen2) {
      m.qkv_bias = true;  // Qwen2 always has q/k/v biases and no o_proj bias
      m.o_bias = false;
      if (get_or<bool>(config, "use_sliding_window", false, source)) {
        m.sliding_window = get_or<int64_t>(config, "sliding_window", 4096, source);
      }
    }
    if (m.arch == Arch::kMistral) {
      m.sliding_window = get_or<int64_t>(config, "sliding_window", 0, source);
      if (*m.sliding_window == 0) m.sliding_window.reset();
    }
  } else if (m.model_type == "opt") {
    parse_opt(config, source, m);
  } else if (m.model_type == "phi") {
    parse_phi(config, source, m);
  } else {
    fail(ErrorKind::kUnsupported, "{}: model_type '{}' is not supported (supported: {})", source, m.model_type,
         supported_model_types());
  }
  if (m.head_dim == 0) m.head_dim = m.hidden_size / m.num_heads;
  m.vocab_size = require<int64_t>(config, "vocab_size", source);
  QB_CHECK(m.hidden_size > 0 && m.num_layers > 0 && m.num_heads > 0 && m.vocab_size > 0 && m.intermediate_size > 0,
           kInvalidInput, "{}: sizes must be positive", source);
  QB_CHECK(m.num_kv_heads > 0 && m.num_heads % m.num_kv_heads == 0, kInvalidInput,
           "{}: {} attention heads do not divide into {} key/value heads", source, m.num_heads, m.num_kv_heads);
  QB_CHECK(m.arch == Arch::kLlama || m.arch == Arch::kMistral || m.arch == Arch::kQwen2 ||
               m.head_dim * m.num_heads == m.hidden_size,
           kInvalidInput, "{}: hidden size {} is not heads {} x head_dim {}", source, m.hidden_size, m.num_heads,
           m.head_dim);
  parse_token_ids(config, source, m);
  m.torch_dtype = get_or<std::string>(config, "torch_dtype", get_or<std::string>(config, "dtype", "float32", source), source);
  if (config.contains("quantization_config")) m.quantization_config = config["quantization_config"];
  return m;
}

nlohmann::json load_json_file(const std::string& path) {
  std::ifstream in(path);
  QB_CHECK(in.good(), kNotFound, "{}: cannot open", path);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    fail(ErrorKind::kInvalidInput, "{}: not valid JSON: {}", path, e.what());
  }
}

}  // namespace qb
