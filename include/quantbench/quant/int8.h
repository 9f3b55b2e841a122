// INT8 weight-only format ("int8", issue 6): symmetric absmax scales per output channel, or per
// group of `group_size` inputs along K (FormatOptions::int8_per_group). Activations stay fp16/bf16.
//   scale = absmax / 127 (fp32); q = round-half-to-even(w / scale) clamped to [-127, 127];
//   an all-zero row (or group) has scale 0 and q 0, so it dequantizes to 0.
// Device layout (kernels/int8_gemv.h, Int8Weights): q [out, round_up(in, 16)] int8 with zero
// columns past `in` (16-byte rows for the kernels), scales fp32 [out] or [out, ceil(in / group_size)].
// CUDA: decode-sized M runs the dequant-GEMV, larger M dequantizes chunks into a reused scratch
// buffer and calls cuBLAS; the CPU dequantizes and calls at::linear (the reference).
#pragma once

#include "quantbench/quant/format.h"

namespace qb::quant {

std::unique_ptr<WeightFormat> make_int8_format();

struct Int8Quantized {
  at::Tensor q;        // int8 [out, round_up(in, 16)], zero padded
  at::Tensor scales;   // fp32 [out] (group_size == 0) or [out, groups]
  int64_t group_size = 0;
};

// The quantization math on the weight's own device. group_size 0: per output channel.
Int8Quantized quantize_int8(const at::Tensor& weight, int64_t group_size);

// Which implementation forward uses; kAuto picks by M (tests and benchmarks force the others).
enum class Int8KernelPath { kAuto, kGemv, kPrefill, kGeneric };

class PreparedWeight;  // src/quant/prepared_weight.h

class Int8Linear final : public Linear {
 public:
  // q, scales on the target device; bias [out] in the activation dtype or absent; activation_dtype: what forward will
  // be given (what prepare() dequantizes to).
  Int8Linear(int64_t in_features, Int8Quantized quantized, std::optional<at::Tensor> bias,
             at::ScalarType activation_dtype);
  ~Int8Linear() override;
  at::Tensor forward(const at::Tensor& x) const override { return forward_with(x, Int8KernelPath::kAuto); }
  at::Tensor forward_with(const at::Tensor& x, Int8KernelPath path) const;
  // The decode GEMV with its gated epilogue, up to kernels' kInt8GemvGatedMaxM (8) rows of x.
  at::Tensor forward_gated(const at::Tensor& x, GateActivation act) const override;
  // The 16-bit weight of the dequantize-then-cuBLAS path, where `rows` rows take it (no fused kernel).
  void prepare(int64_t rows) const override;
  // True where the decode GEMV takes its one-round form (every weight load before the wait: short K, resident grid).
  bool decode_loads_weight_before_input(int64_t rows, at::ScalarType dtype) const override;
  // The rows a prepared weight waits for (0: none), for tests.
  int64_t prepared_rows() const;
  at::ScalarType activation_dtype() const { return activation_dtype_; }
  at::Tensor dequantize() const override;
  int64_t weight_bytes() const override;
  std::string format_name() const override { return "int8"; }

  const at::Tensor& q() const { return q_; }
  const at::Tensor& scales() const { return scales_; }
  int64_t group_size() const { return group_size_; }
  bool has_bias() const { return bias_.has_value(); }
  const at::Tensor& bias() const { return *bias_; }

 private:
  at::Tensor q_;
  at::Tensor scales_;
  int64_t group_size_;
  std::optional<at::Tensor> bias_;
  at::ScalarType activation_dtype_;
  mutable std::unique_ptr<PreparedWeight> prepared_;  // prepare()'s weight (CUDA layers)
};

}  // namespace qb::quant
