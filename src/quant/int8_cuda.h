// CUDA glue shared by the int8 and llm.int8 formats: tensors in, kernel host APIs out. Only in
// builds with CUDA (QB_HAVE_CUDA).
#pragma once

#ifdef QB_HAVE_CUDA

#include <ATen/Tensor.h>

#include <optional>

#include "prepared_weight.h"
#include "quantbench/kernels/int8_gemv.h"

namespace qb::quant::int8_cuda {

// Rows of x up to which the decode GEMV beats dequantize + cuBLAS (kernels/NOTES-int8.md).
constexpr int64_t kInt8GemvMaxRows = 32;
constexpr int64_t kLlmInt8GemvMaxRows = 32;

kernels::HalfType half_type(at::ScalarType dtype);

// K', the activation width the kernels see: K when K % 8 == 0, else K rounded up to 16 (zero columns; the weights are
// zero there too).
int64_t kernel_k(int64_t K);
// x [..., K] -> [M, K'] contiguous and 16-byte aligned.
at::Tensor flatten_activations(const at::Tensor& x, int64_t K);

// A view of the device tensors: q [N, ldq] int8, scales fp32; K is the activation width the
// kernels will see (K' above).
kernels::Int8Weights weights_view(const at::Tensor& q, const at::Tensor& scales, int64_t group_size, int64_t K,
                                  float scale_multiplier);

// y [M, N] in x2d's dtype (gated.on: [M, N / 2], act(gate) * up). bias in x2d's dtype or undefined.
at::Tensor int8_gemv(const at::Tensor& x2d, const kernels::Int8Weights& w, const at::Tensor& bias,
                     const kernels::GatedEpilogue& gated = {});
// The fused kernel where the policy names it, else dequantize + cuBLAS; there, `prepared` (may be null) may hold W
// dequantized ahead for these M rows (prepare_int8_prefill), which it then takes instead of dequantizing.
at::Tensor int8_prefill(const at::Tensor& x2d, const kernels::Int8Weights& w, const at::Tensor& bias,
                        PreparedWeight* prepared = nullptr);
// Linear::prepare for an int8 layer: where M rows of `dtype` take the dequantize + cuBLAS path, W's 16-bit copy is
// started on the second stream into `prepared`; elsewhere nothing. w as the forward will see it (K = kernel_k).
void prepare_int8_prefill(const kernels::Int8Weights& w, int64_t M, at::ScalarType dtype, c10::Device device,
                          PreparedWeight& prepared);
at::Tensor llm_int8_gemv(const at::Tensor& x2d, const kernels::Int8Weights& w, const at::Tensor& bias,
                         float threshold);
at::Tensor llm_int8_prefill(const at::Tensor& x2d, const kernels::Int8Weights& w, const at::Tensor& bias,
                            float threshold);

}  // namespace qb::quant::int8_cuda

#endif  // QB_HAVE_CUDA
