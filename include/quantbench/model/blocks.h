// The few blocks every architecture is made of. Each runs the same code for the prefill (many
// tokens, libtorch ops, SDPA) and for one decode step; on CUDA the decode step and the norms use the
// fused kernels of kernels/decode_ops.cu, on the CPU plain libtorch ops (the reference path).
#pragma once

#include <ATen/Tensor.h>

#include <functional>
#include <optional>

#include "quantbench/io/model_config.h"
#include "quantbench/model/kv_cache.h"
#include "quantbench/quant/linear.h"

namespace qb::model {

// Where the tokens of this forward pass sit. Prefill: positions [0, T) (start 0, host-known).
// Decode: one token per sequence at the position held in `position` ([1] int64 on the device);
// `host_position` is its value when known (CPU path), -1 inside CUDA graph capture.
struct StepPositions {
  bool decode = false;
  at::Tensor position;
  int64_t host_position = -1;
};

class Norm {
 public:
  Norm() = default;
  Norm(NormKind kind, at::Tensor weight, std::optional<at::Tensor> bias, double eps);
  at::Tensor forward(const at::Tensor& x) const;
  // residual += delta (delta may be undefined), then norm(residual); one kernel on CUDA.
  at::Tensor add_forward(at::Tensor& residual, const at::Tensor& delta) const;
  int64_t bytes() const;
  bool defined() const { return weight_.defined(); }

 private:
  NormKind kind_ = NormKind::kLayerNorm;
  at::Tensor weight_;
  std::optional<at::Tensor> bias_;
  double eps_ = 1e-5;
};

// cos/sin of position x inverse frequency, [max_positions, rotary_dim / 2] in fp32, computed the
// way transformers does (inv_freq in fp32, scaled for linear / llama3 rope types).
class RotaryTable {
 public:
  RotaryTable() = default;
  RotaryTable(const ModelConfig& config, int64_t max_positions, c10::Device device);
  // Rotates the first rotary_dim dims of x [B, T, heads, D] at positions [0, T) or at one position.
  at::Tensor apply(const at::Tensor& x, const StepPositions& where) const;
  const at::Tensor& cos() const { return cos_; }
  const at::Tensor& sin() const { return sin_; }
  int64_t rotary_dim() const { return rotary_dim_; }
  bool defined() const { return cos_.defined(); }

 private:
  at::Tensor cos_;
  at::Tensor sin_;
  int64_t rotary_dim_ = 0;
};

class Attention {
 public:
  Attention(const ModelConfig& config, quant::LinearPtr qkv, quant::LinearPtr out);
  // x [B, T, hidden] -> [B, T, hidden]; writes this pass's keys and values into the cache.
  at::Tensor forward(const at::Tensor& x, KvCache* cache, int64_t layer, const StepPositions& where,
                     const RotaryTable& rope) const;
  const quant::Linear& qkv() const { return *qkv_; }
  const quant::Linear& out() const { return *out_; }

 private:
  at::Tensor attend_torch(const at::Tensor& qkv, KvCache* cache, int64_t layer, const StepPositions& where,
                          const RotaryTable& rope) const;
  at::Tensor attend_fused_prefill(const at::Tensor& qkv, KvCache* cache, int64_t layer, const RotaryTable& rope) const;
  at::Tensor attend_fused_decode(const at::Tensor& qkv, KvCache& cache, int64_t layer, const StepPositions& where,
                                 const RotaryTable& rope) const;
  int64_t heads_, kv_heads_, head_dim_;
  double scale_;
  quant::LinearPtr qkv_;
  quant::LinearPtr out_;
};

class Mlp {
 public:
  Mlp(const ModelConfig& config, quant::LinearPtr in, quant::LinearPtr out);
  // before_out, if set, runs just before the output (down) projection is launched: the model uses it to start the
  // next layer's Linear::prepare work beside that projection.
  at::Tensor forward(const at::Tensor& x, const std::function<void()>& before_out = {}) const;
  const quant::Linear& in() const { return *in_; }
  const quant::Linear& out() const { return *out_; }

 private:
  at::Tensor activate(const at::Tensor& x) const;
  Activation activation_;
  bool gated_;
  quant::LinearPtr in_;
  quant::LinearPtr out_;
};

}  // namespace qb::model
