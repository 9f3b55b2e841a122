// A decoder-only language model assembled from the shared blocks. It never knows which weight
// format its linear layers hold; it knows only the ModelConfig flags that say how blocks compose:
// pre-norm (gpt2, llama family, opt-125m), post-norm (opt-350m), parallel attention+MLP (phi).
#pragma once

#include <ATen/Tensor.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "quantbench/io/model_config.h"
#include "quantbench/model/blocks.h"
#include "quantbench/model/kv_cache.h"

namespace qb::model {

struct DecoderLayer {
  Norm attn_norm;
  std::unique_ptr<Attention> attention;
  Norm mlp_norm;  // undefined for parallel blocks
  std::unique_ptr<Mlp> mlp;
};

// Bytes held on the device, by what they are; and bytes one decode step must read.
struct ModelFootprint {
  int64_t linear_bytes = 0;      // every linear layer, lm_head included
  int64_t lm_head_bytes = 0;
  int64_t embedding_bytes = 0;   // token (+ position) tables, when not shared with lm_head
  int64_t norm_bytes = 0;
  std::map<std::string, int64_t> linear_bytes_by_format;
  int64_t total_bytes() const { return linear_bytes + embedding_bytes + norm_bytes; }
};

struct CausalLMParts {
  ModelConfig config;
  at::ScalarType dtype = at::kFloat;
  c10::Device device = c10::Device(c10::kCPU);
  at::Tensor token_embedding;                  // [V, E]
  std::optional<at::Tensor> position_embedding;  // [P + offset, hidden]
  quant::LinearPtr project_in;                 // opt-350m only
  quant::LinearPtr project_out;
  std::vector<DecoderLayer> layers;
  Norm final_norm;
  quant::LinearPtr lm_head;
  bool lm_head_shares_embedding = false;       // tied dense head viewing the embedding table
};

class CausalLM {
 public:
  explicit CausalLM(CausalLMParts parts);

  // input_ids [B, T] int64 on the model's device. Prefill (where.decode false) processes positions
  // [0, T) and fills the cache when given; decode processes one token per sequence (T == 1) at
  // where.position. Returns logits [B, T, V] (or [B, 1, V] with last_only) in the compute dtype.
  at::Tensor forward(const at::Tensor& input_ids, KvCache* cache, const StepPositions& where, bool last_only) const;

  const ModelConfig& config() const { return parts_.config; }
  at::ScalarType dtype() const { return parts_.dtype; }
  c10::Device device() const { return parts_.device; }
  ModelFootprint footprint() const;
  // Bytes one decode step reads for `batch` sequences, KV cache excluded: every linear layer's
  // bytes_read_per_token, the norms, and one token (+ position) embedding row per sequence.
  int64_t decode_weight_bytes_per_step(int64_t batch) const;
  std::string lm_head_format() const { return parts_.lm_head->format_name(); }
  // Largest number of positions the model accepts (learned position tables bound it).
  int64_t max_positions() const;
  // Whether a prefill asks each next layer's projections to prepare beside the down projection (Linear::prepare).
  // Default: on, unless QB_PREFILL_PREPARE=0. The output is the same either way (tests compare the two).
  void set_prefill_prepare(bool on) { prefill_prepare_ = on; }

 private:
  at::Tensor embed(const at::Tensor& input_ids, const StepPositions& where) const;
  CausalLMParts parts_;
  RotaryTable rope_;
  bool prefill_prepare_ = true;
};

}  // namespace qb::model
