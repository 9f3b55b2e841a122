// How each architecture names its tensors in a HuggingFace checkpoint, as data. The blocks are
// shared; an architecture is this description plus its ModelConfig flags. Names are prefixes of
// linear/norm modules ("model.layers.3.self_attn.q_proj"); ".weight"/".bias" are appended.
#pragma once

#include <string>
#include <vector>

#include "quantbench/io/model_config.h"

namespace qb::model {

struct LayerLayout {
  std::string attn_norm;              // input norm (the only norm for phi's parallel block)
  std::vector<std::string> qkv;       // one fused module (gpt2 c_attn) or q, k, v
  std::string attn_out;
  std::string mlp_norm;               // empty for parallel-residual blocks
  std::vector<std::string> mlp_in;    // gate, up (gated MLP) or fc1
  std::string mlp_out;
};

struct ArchLayout {
  std::string token_embedding;
  std::string position_embedding;     // learned positions; empty otherwise
  std::string project_in;             // opt-350m: word_embed_proj_dim -> hidden; empty otherwise
  std::string project_out;
  std::string final_norm;             // empty when the config has none
  std::string lm_head;                // used when embeddings are not tied
  bool conv1d_weights = false;        // gpt2: Linear weights stored [in, out]
  std::vector<LayerLayout> layers;
  // Checkpoint buffers that are not parameters (gpt2's attn.bias causal masks) and may be ignored.
  std::vector<std::string> ignored_suffixes;
};

// `has_tensor` tells which spelling a checkpoint uses (gpt2 files come with and without the
// "transformer." prefix); pass a function returning false for synthetic weights.
template <typename HasTensor>
ArchLayout make_arch_layout(const ModelConfig& config, const HasTensor& has_tensor);

ArchLayout make_arch_layout_with_prefix(const ModelConfig& config, bool gpt2_transformer_prefix);

template <typename HasTensor>
ArchLayout make_arch_layout(const ModelConfig& config, const HasTensor& has_tensor) {
  const bool prefixed = config.arch == Arch::kGpt2 && has_tensor("transformer.wte.weight");
  return make_arch_layout_with_prefix(config, prefixed);
}

}  // namespace qb::model
