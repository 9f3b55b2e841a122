#include "quantbench/model/causal_lm.h"

#include <ATen/ATen.h>

#include <functional>

#include "kernel_bridge.h"
#include "quantbench/core/env_switch.h"
#include "quantbench/core/error.h"

namespace qb::model {

CausalLM::CausalLM(CausalLMParts parts)
    : parts_(std::move(parts)), prefill_prepare_(env_on_unless_zero("QB_PREFILL_PREPARE")) {  // =0: off (A/B runs)
  if (parts_.config.use_rope) {
    // The table bounds the positions a run may use: the config's context, capped at 32768 (a
    // 128k-context table would cost tens of MB for positions no benchmark here reaches).
    rope_ = RotaryTable(parts_.config, std::min<int64_t>(parts_.config.max_positions, 32768), parts_.device);
  }
}

int64_t CausalLM::max_positions() const {
  return parts_.config.learned_positions ? parts_.config.max_positions : rope_.cos().size(0);
}

at::Tensor CausalLM::embed(const at::Tensor& input_ids, const StepPositions& where) const {
  const ModelConfig& c = parts_.config;
  const int64_t batch = input_ids.size(0), tokens = input_ids.size(1);
#ifdef QB_HAVE_CUDA
  if (where.decode && input_ids.is_cuda()) {
    const int64_t width = parts_.token_embedding.size(1);
    at::Tensor out = at::empty({batch, 1, width}, parts_.token_embedding.options());
    const bool add_positions = parts_.position_embedding.has_value() && parts_.project_in == nullptr;
    kernels::embed_tokens(input_ids.data_ptr<int64_t>(), where.position.data_ptr<int64_t>(),
                          parts_.token_embedding.data_ptr(),
                          add_positions ? parts_.position_embedding->data_ptr() : nullptr, c.position_offset,
                          out.data_ptr(), batch, width, kernel_dtype(out.scalar_type()), current_stream());
    if (parts_.project_in != nullptr) {
      out = parts_.project_in->forward(out);
      if (parts_.position_embedding.has_value()) {
        out = out + parts_.position_embedding->index_select(0, where.position + c.position_offset);
      }
    }
    return out.contiguous();
  }
#endif
  at::Tensor h = at::embedding(parts_.token_embedding, input_ids);
  if (parts_.project_in != nullptr) h = parts_.project_in->forward(h);
  if (parts_.position_embedding.has_value()) {
    const at::Tensor positions =
        where.decode ? where.position + c.position_offset
                     : at::arange(c.position_offset, c.position_offset + tokens, input_ids.options());
    h = h + parts_.position_embedding->index_select(0, positions);
  }
  return h.contiguous();
}

at::Tensor CausalLM::forward(const at::Tensor& input_ids, KvCache* cache, const StepPositions& where,
                             bool last_only) const {
  const ModelConfig& c = parts_.config;
  QB_CHECK(input_ids.dim() == 2 && input_ids.scalar_type() == at::kLong, kInvalidInput,
           "input_ids must be [batch, tokens] int64");
  QB_CHECK(!where.decode || input_ids.size(1) == 1, kInvalidInput, "a decode step takes one token per sequence");
  QB_CHECK(where.decode || input_ids.size(1) <= max_positions(), kInvalidInput,
           "{} tokens exceed the model's {} positions", input_ids.size(1), max_positions());
  at::Tensor residual = embed(input_ids, where);
  at::Tensor delta;  // the last block's output, added into the residual by the next norm
  for (size_t i = 0; i < parts_.layers.size(); ++i) {
    const DecoderLayer& layer = parts_.layers[i];
    const int64_t index = static_cast<int64_t>(i);
    // A prefill's next-layer projections prepare as this layer's down projection starts (Linear::prepare): a format
    // that dequantizes before its GEMM does that beside the MLP instead of before the next layer's GEMMs.
    std::function<void()> prepare_next;
    if (prefill_prepare_ && !where.decode && input_ids.is_cuda() && i + 1 < parts_.layers.size()) {
      const DecoderLayer& next = parts_.layers[i + 1];
      const int64_t rows = input_ids.numel();
      prepare_next = [&next, rows] {
        next.attention->qkv().prepare(rows);
        next.attention->out().prepare(rows);
      };
    }
    if (c.parallel_residual) {
      const at::Tensor normed = layer.attn_norm.add_forward(residual, delta);
      const at::Tensor attn = layer.attention->forward(normed, cache, index, where, rope_);
      delta = attn + layer.mlp->forward(normed, prepare_next);
    } else if (c.post_norm) {
      const at::Tensor attn = layer.attention->forward(residual, cache, index, where, rope_);
      residual = layer.attn_norm.add_forward(residual, attn);
      const at::Tensor mlp = layer.mlp->forward(residual, prepare_next);
      residual = layer.mlp_norm.add_forward(residual, mlp);
    } else {
      const at::Tensor normed = layer.attn_norm.add_forward(residual, delta);
      const at::Tensor attn = layer.attention->forward(normed, cache, index, where, rope_);
      const at::Tensor normed2 = layer.mlp_norm.add_forward(residual, attn);
      delta = layer.mlp->forward(normed2, prepare_next);
    }
  }
  if (last_only && residual.size(1) > 1) {
    const int64_t last = residual.size(1) - 1;
    residual = residual.narrow(1, last, 1).contiguous();
    if (delta.defined()) delta = delta.narrow(1, last, 1).contiguous();
  }
  at::Tensor h;
  if (parts_.final_norm.defined()) {
    h = parts_.final_norm.add_forward(residual, delta);
  } else {
    h = delta.defined() ? residual + delta : residual;
  }
  if (parts_.project_out != nullptr) h = parts_.project_out->forward(h);
  return parts_.lm_head->forward(h);
}

ModelFootprint CausalLM::footprint() const {
  ModelFootprint f;
  auto add_linear = [&f](const quant::Linear& linear) {
    f.linear_bytes += linear.weight_bytes();
    f.linear_bytes_by_format[linear.format_name()] += linear.weight_bytes();
  };
  for (const auto& layer : parts_.layers) {
    add_linear(layer.attention->qkv());
    add_linear(layer.attention->out());
    add_linear(layer.mlp->in());
    add_linear(layer.mlp->out());
    f.norm_bytes += layer.attn_norm.bytes() + (layer.mlp_norm.defined() ? layer.mlp_norm.bytes() : 0);
  }
  if (parts_.project_in != nullptr) add_linear(*parts_.project_in);
  if (parts_.project_out != nullptr) add_linear(*parts_.project_out);
  if (parts_.final_norm.defined()) f.norm_bytes += parts_.final_norm.bytes();
  f.lm_head_bytes = parts_.lm_head->weight_bytes();
  if (parts_.lm_head_shares_embedding) {
    // One table serves both: count it once, as the head (it is read in full every step).
    f.linear_bytes += f.lm_head_bytes;
    f.linear_bytes_by_format[parts_.lm_head->format_name()] += f.lm_head_bytes;
  } else {
    add_linear(*parts_.lm_head);
    f.embedding_bytes += static_cast<int64_t>(parts_.token_embedding.nbytes());
  }
  if (parts_.position_embedding.has_value()) f.embedding_bytes += static_cast<int64_t>(parts_.position_embedding->nbytes());
  return f;
}

int64_t CausalLM::decode_weight_bytes_per_step(int64_t batch) const {
  int64_t bytes = 0;
  for (const auto& layer : parts_.layers) {
    bytes += layer.attention->qkv().bytes_read_per_token() + layer.attention->out().bytes_read_per_token() +
             layer.mlp->in().bytes_read_per_token() + layer.mlp->out().bytes_read_per_token();
    bytes += layer.attn_norm.bytes() + (layer.mlp_norm.defined() ? layer.mlp_norm.bytes() : 0);
  }
  if (parts_.project_in != nullptr) bytes += parts_.project_in->bytes_read_per_token();
  if (parts_.project_out != nullptr) bytes += parts_.project_out->bytes_read_per_token();
  if (parts_.final_norm.defined()) bytes += parts_.final_norm.bytes();
  bytes += parts_.lm_head->bytes_read_per_token();
  const int64_t row_bytes = parts_.token_embedding.size(1) * parts_.token_embedding.element_size();
  bytes += batch * row_bytes;
  if (parts_.position_embedding.has_value()) {
    bytes += parts_.position_embedding->size(1) * parts_.position_embedding->element_size();
  }
  return bytes;
}

}  // namespace qb::model
