// y = x W^T (+ b) for a dense W [N, K] in x's dtype. On CUDA, decode-sized M goes to our GEMV
// kernel (cuBLAS reaches only a fraction of copy bandwidth at M=1); otherwise at::linear.
#pragma once

#include <ATen/Tensor.h>

#include <optional>

#include "quantbench/quant/linear.h"

namespace qb::quant {

at::Tensor dense_matmul(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias);

// Linear::forward_gated for a dense W [N = 2 * inter, K] of x's dtype: the GEMV with its gated epilogue where
// dense_matmul would take the GEMV; an undefined tensor elsewhere.
at::Tensor dense_matmul_gated(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                              GateActivation act);

// Linear::l2_warm for dense_matmul (gated: dense_matmul_gated) of `rows` rows of x in `act`: the GEMV's plan where
// it would take them.
kernels::L2WarmPlan dense_matmul_l2_warm(const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                                         int64_t rows, at::ScalarType act, bool gated);

}  // namespace qb::quant
