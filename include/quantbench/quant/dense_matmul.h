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

}  // namespace qb::quant
