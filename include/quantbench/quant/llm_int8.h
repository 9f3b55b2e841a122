// LLM.int8() as bitsandbytes defines it ("llm.int8"): Linear8bitLt with has_fp16_weights=False.
// Weights (Int8Params): CB [out, in] int8 and SCB [out] fp32 from the fp16 cast of W:
//   SCB = max |fp16(w_row)|, CB = round-half-even(fp16(w) * (127 * (1 / SCB))) (0 for a zero row),
//   fp32, reciprocal then product as bitsandbytes' default backend evaluates `127.0 / row_stats`;
//   dequantized w = CB * SCB * (1/127) (int8_vectorwise_dequant).
// Forward (MatMul8bitLt, threshold > 0): activation columns holding any |fp16(x)| >= threshold go
// through a 16-bit product with the dequantized weight columns; the rest are quantized per row
// (absmax of the non-outlier elements / 127, round half to even) and multiplied int8 x int8 with
// int32 accumulation, rescaled by SCA * SCB / 127^2 (kernels/llm_int8.h has the exact rules).
// Serialized by bitsandbytes/transformers as <prefix>.weight (I8), <prefix>.SCB (F32) and
// <prefix>.weight_format (U8 scalar, 0 = row-major, the only layout bitsandbytes still writes).
#pragma once

#include "quantbench/quant/format.h"

namespace qb::quant {

std::unique_ptr<WeightFormat> make_llm_int8_format();

struct LlmInt8Quantized {
  at::Tensor cb;   // int8 [out, in]
  at::Tensor scb;  // fp32 [out]
};

// bitsandbytes' Int8Params quantization, on the weight's own device.
LlmInt8Quantized quantize_llm_int8(const at::Tensor& weight);

// MatMul8bitLt's forward on the CPU in `compute` (kDouble for tests: the int8 part exact; kFloat for
// CPU runs). x [..., in] any float dtype, cb [out, >= in] (extra columns ignored), scb [out].
at::Tensor llm_int8_reference_matmul(const at::Tensor& x, const at::Tensor& cb, const at::Tensor& scb,
                                     const std::optional<at::Tensor>& bias, double threshold,
                                     at::ScalarType compute);

enum class LlmInt8KernelPath { kAuto, kGemv, kPrefill };

class LlmInt8Linear final : public Linear {
 public:
  // cb int8 [out, in] (padded here to round_up(in, 16)), scb fp32 [out]; moved to `device`.
  LlmInt8Linear(LlmInt8Quantized quantized, std::optional<at::Tensor> bias, double threshold, c10::Device device);
  at::Tensor forward(const at::Tensor& x) const override { return forward_with(x, LlmInt8KernelPath::kAuto); }
  at::Tensor forward_with(const at::Tensor& x, LlmInt8KernelPath path) const;
  at::Tensor dequantize() const override;
  int64_t weight_bytes() const override;
  std::string format_name() const override { return "llm.int8"; }

  const at::Tensor& cb_padded() const { return cb_; }  // [out, round_up(in, 16)]
  const at::Tensor& scb() const { return scb_; }
  double threshold() const { return threshold_; }
  bool has_bias() const { return bias_.has_value(); }
  const at::Tensor& bias() const { return *bias_; }

 private:
  at::Tensor cb_;
  at::Tensor scb_;
  std::optional<at::Tensor> bias_;
  double threshold_;
};

}  // namespace qb::quant
