#include <ATen/ATen.h>

#include <cmath>

#include "kernel_bridge.h"
#include "quantbench/core/error.h"
#include "quantbench/model/blocks.h"

namespace qb::model {

Attention::Attention(const ModelConfig& config, quant::LinearPtr qkv, quant::LinearPtr out)
    : heads_(config.num_heads), kv_heads_(config.num_kv_heads), head_dim_(config.head_dim),
      scale_(1.0 / std::sqrt(static_cast<double>(config.head_dim))), qkv_(std::move(qkv)), out_(std::move(out)) {
  QB_CHECK(qkv_->out_features() == (heads_ + 2 * kv_heads_) * head_dim_, kInternal,
           "fused qkv has {} outputs, expected {}", qkv_->out_features(), (heads_ + 2 * kv_heads_) * head_dim_);
}

at::Tensor Attention::forward(const at::Tensor& x, KvCache* cache, int64_t layer, const StepPositions& where,
                              const RotaryTable& rope) const {
  const at::Tensor qkv = qkv_->forward(x);  // [B, T, (H + 2 Hkv) D]: q heads, k heads, v heads
  at::Tensor context;
#ifdef QB_HAVE_CUDA
  if (where.decode && x.is_cuda()) context = attend_fused_decode(qkv, *cache, layer, where, rope);
  if (!where.decode && x.is_cuda()) context = attend_fused_prefill(qkv, cache, layer, rope);
#endif
  if (!context.defined()) context = attend_torch(qkv, cache, layer, where, rope);
  return out_->forward(context);
}

at::Tensor Attention::attend_torch(const at::Tensor& qkv, KvCache* cache, int64_t layer, const StepPositions& where,
                                   const RotaryTable& rope) const {
  const int64_t batch = qkv.size(0), tokens = qkv.size(1);
  at::Tensor q = qkv.narrow(-1, 0, heads_ * head_dim_).view({batch, tokens, heads_, head_dim_});
  at::Tensor k = qkv.narrow(-1, heads_ * head_dim_, kv_heads_ * head_dim_).view({batch, tokens, kv_heads_, head_dim_});
  at::Tensor v = qkv.narrow(-1, (heads_ + kv_heads_) * head_dim_, kv_heads_ * head_dim_)
                     .view({batch, tokens, kv_heads_, head_dim_});
  if (rope.defined()) {
    q = rope.apply(q, where);
    k = rope.apply(k, where);
  }
  q = q.transpose(1, 2);  // [B, H, T, D]
  k = k.transpose(1, 2);
  v = v.transpose(1, 2);
  at::Tensor keys = k, values = v;
  bool causal = true;
  if (where.decode) {
    QB_CHECK(cache != nullptr && where.host_position >= 0, kInternal, "the torch decode path needs a host position");
    const int64_t p = where.host_position;
    cache->keys(layer).narrow(2, p, 1).copy_(k);
    cache->values(layer).narrow(2, p, 1).copy_(v);
    keys = cache->keys(layer).narrow(2, 0, p + 1);
    values = cache->values(layer).narrow(2, 0, p + 1);
    causal = false;  // one query attends to every cached position
  } else if (cache != nullptr) {
    cache->keys(layer).narrow(2, 0, tokens).copy_(k);
    cache->values(layer).narrow(2, 0, tokens).copy_(v);
  }
  const at::Tensor context = at::scaled_dot_product_attention(q, keys, values, {}, 0.0, causal, scale_,
                                                              kv_heads_ != heads_);
  return context.transpose(1, 2).reshape({batch, tokens, heads_ * head_dim_});
}

// Prefill on the GPU: one kernel splits q / k / v, rotates q and k (bit-identical to RotaryTable::apply) and writes
// k, v straight into the cache; SDPA then reads them there.
at::Tensor Attention::attend_fused_prefill(const at::Tensor& qkv, KvCache* cache, int64_t layer,
                                           const RotaryTable& rope) const {
#ifdef QB_HAVE_CUDA
  const int64_t batch = qkv.size(0), tokens = qkv.size(1);
  const at::Tensor rows = qkv.contiguous();
  const at::Tensor q = at::empty({batch, heads_, tokens, head_dim_}, qkv.options());
  at::Tensor keys, values;
  int64_t kv_ld = tokens * head_dim_;
  if (cache != nullptr) {
    QB_CHECK(tokens <= cache->capacity(), kInvalidInput, "{} prompt tokens exceed the KV cache's {} positions", tokens,
             cache->capacity());
    keys = cache->keys(layer).narrow(2, 0, tokens);
    values = cache->values(layer).narrow(2, 0, tokens);
    kv_ld = cache->capacity() * head_dim_;
  } else {
    keys = at::empty({batch, kv_heads_, tokens, head_dim_}, qkv.options());
    values = at::empty({batch, kv_heads_, tokens, head_dim_}, qkv.options());
  }
  kernels::prefill_split_rope(rows.data_ptr(), rope.defined() ? rope.cos().data_ptr<float>() : nullptr,
                              rope.defined() ? rope.sin().data_ptr<float>() : nullptr, q.data_ptr(), keys.data_ptr(),
                              values.data_ptr(), kv_ld, batch, tokens, heads_, kv_heads_, head_dim_,
                              rope.defined() ? rope.rotary_dim() : 0, kernel_dtype(qkv.scalar_type()),
                              current_stream());
  const at::Tensor context =
      at::scaled_dot_product_attention(q, keys, values, {}, 0.0, true, scale_, kv_heads_ != heads_);
  return context.transpose(1, 2).reshape({batch, tokens, heads_ * head_dim_});
#else
  fail(ErrorKind::kInternal, "fused prefill attention needs a CUDA build");
#endif
}

at::Tensor Attention::attend_fused_decode(const at::Tensor& qkv, KvCache& cache, int64_t layer,
                                          const StepPositions& where, const RotaryTable& rope) const {
#ifdef QB_HAVE_CUDA
  const int64_t batch = qkv.size(0);
  at::Tensor context = at::empty({batch, 1, heads_ * head_dim_}, qkv.options());
  const at::Tensor qkv_rows = qkv.contiguous();
  kernels::decode_attention(qkv_rows.data_ptr(), cache.keys(layer).data_ptr(), cache.values(layer).data_ptr(),
                            where.position.data_ptr<int64_t>(),
                            rope.defined() ? rope.cos().data_ptr<float>() : nullptr,
                            rope.defined() ? rope.sin().data_ptr<float>() : nullptr, context.data_ptr(), batch, heads_,
                            kv_heads_, head_dim_, rope.defined() ? rope.rotary_dim() : 0, cache.capacity(),
                            static_cast<float>(scale_), kernel_dtype(qkv.scalar_type()), current_stream(),
                            /*heads_per_block=*/-1, out_->decode_loads_weight_before_input(batch, qkv.scalar_type()));
  return context;
#else
  fail(ErrorKind::kInternal, "fused decode attention needs a CUDA build");
#endif
}

}  // namespace qb::model
