// CUDA glue shared by the int8 and llm.int8 formats: tensors in, kernel host APIs out. Only in
// builds with CUDA (QB_HAVE_CUDA).
#pragma once

#ifdef QB_HAVE_CUDA

#include <ATen/Tensor.h>

#include <optional>

#include "quantbench/kernels/int8_gemv.h"

namespace qb::quant::int8_cuda {

// Rows of x up to which the decode GEMV beats dequantize + cuBLAS (kernels/NOTES-int8.md).
constexpr int64_t kInt8GemvMaxRows = 32;
constexpr int64_t kLlmInt8GemvMaxRows = 32;

kernels::HalfType half_type(at::ScalarType dtype);

// x [..., K] -> [M, K'] contiguous and 16-byte aligned; K' = K when K % 8 == 0, else K rounded up
// to 16 with zero columns (the weights are zero there too).
at::Tensor flatten_activations(const at::Tensor& x, int64_t K);

// A view of the device tensors: q [N, ldq] int8, scales fp32; K is the activation width the
// kernels will see (K' above).
kernels::Int8Weights weights_view(const at::Tensor& q, const at::Tensor& scales, int64_t group_size, int64_t K,
                                  float scale_multiplier);

// y [M, N] in x2d's dtype. bias in x2d's dtype or undefined.
at::Tensor int8_gemv(const at::Tensor& x2d, const kernels::Int8Weights& w, const at::Tensor& bias);
at::Tensor int8_prefill(const at::Tensor& x2d, const kernels::Int8Weights& w, const at::Tensor& bias);
at::Tensor llm_int8_gemv(const at::Tensor& x2d, const kernels::Int8Weights& w, const at::Tensor& bias,
                         float threshold);
at::Tensor llm_int8_prefill(const at::Tensor& x2d, const kernels::Int8Weights& w, const at::Tensor& bias,
                            float threshold);

}  // namespace qb::quant::int8_cuda

#endif  // QB_HAVE_CUDA
