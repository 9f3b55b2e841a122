#include "quantbench/model/arch_layout.h"

#include <fmt/format.h>

#include "quantbench/core/error.h"

namespace qb::model {
namespace {

ArchLayout gpt2_layout(const ModelConfig& config, bool prefixed) {
  const std::string p = prefixed ? "transformer." : "";
  ArchLayout layout;
  layout.token_embedding = p + "wte";
  layout.position_embedding = p + "wpe";
  layout.final_norm = p + "ln_f";
  layout.lm_head = "lm_head";
  layout.conv1d_weights = true;
  layout.ignored_suffixes = {".attn.bias", ".attn.masked_bias"};
  for (int64_t i = 0; i < config.num_layers; ++i) {
    const std::string h = fmt::format("{}h.{}.", p, i);
    layout.layers.push_back({h + "ln_1", {h + "attn.c_attn"}, h + "attn.c_proj", h + "ln_2", {h + "mlp.c_fc"},
                             h + "mlp.c_proj"});
  }
  return layout;
}

ArchLayout llama_layout(const ModelConfig& config) {
  ArchLayout layout;
  layout.token_embedding = "model.embed_tokens";
  layout.final_norm = "model.norm";
  layout.lm_head = "lm_head";
  for (int64_t i = 0; i < config.num_layers; ++i) {
    const std::string l = fmt::format("model.layers.{}.", i);
    layout.layers.push_back({l + "input_layernorm",
                             {l + "self_attn.q_proj", l + "self_attn.k_proj", l + "self_attn.v_proj"},
                             l + "self_attn.o_proj",
                             l + "post_attention_layernorm",
                             {l + "mlp.gate_proj", l + "mlp.up_proj"},
                             l + "mlp.down_proj"});
  }
  layout.ignored_suffixes = {".rotary_emb.inv_freq"};
  return layout;
}

ArchLayout opt_layout(const ModelConfig& config) {
  ArchLayout layout;
  layout.token_embedding = "model.decoder.embed_tokens";
  layout.position_embedding = "model.decoder.embed_positions";
  if (config.word_embed_proj_dim > 0) {
    layout.project_in = "model.decoder.project_in";
    layout.project_out = "model.decoder.project_out";
  }
  if (config.final_norm) layout.final_norm = "model.decoder.final_layer_norm";
  layout.lm_head = "lm_head";
  for (int64_t i = 0; i < config.num_layers; ++i) {
    const std::string l = fmt::format("model.decoder.layers.{}.", i);
    layout.layers.push_back({l + "self_attn_layer_norm",
                             {l + "self_attn.q_proj", l + "self_attn.k_proj", l + "self_attn.v_proj"},
                             l + "self_attn.out_proj",
                             l + "final_layer_norm",
                             {l + "fc1"},
                             l + "fc2"});
  }
  return layout;
}

ArchLayout phi_layout(const ModelConfig& config) {
  ArchLayout layout;
  layout.token_embedding = "model.embed_tokens";
  layout.final_norm = "model.final_layernorm";
  layout.lm_head = "lm_head";
  for (int64_t i = 0; i < config.num_layers; ++i) {
    const std::string l = fmt::format("model.layers.{}.", i);
    layout.layers.push_back({l + "input_layernorm",
                             {l + "self_attn.q_proj", l + "self_attn.k_proj", l + "self_attn.v_proj"},
                             l + "self_attn.dense",
                             "",
                             {l + "mlp.fc1"},
                             l + "mlp.fc2"});
  }
  return layout;
}

}  // namespace

ArchLayout make_arch_layout_with_prefix(const ModelConfig& config, bool gpt2_transformer_prefix) {
  switch (config.arch) {
    case Arch::kGpt2: return gpt2_layout(config, gpt2_transformer_prefix);
    case Arch::kLlama:
    case Arch::kMistral:
    case Arch::kQwen2: return llama_layout(config);
    case Arch::kOpt: return opt_layout(config);
    case Arch::kPhi: return phi_layout(config);
  }
  fail(ErrorKind::kInternal, "no tensor layout for architecture {}", arch_name(config.arch));
}

}  // namespace qb::model
