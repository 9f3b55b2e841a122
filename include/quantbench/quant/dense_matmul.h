// y = x W^T (+ b) for a dense W [N, K] in x's dtype. On CUDA, decode-sized M goes to our GEMV
// kernel (cuBLAS reaches only a fraction of copy bandwidth at M=1); otherwise at::linear.
#pragma once

#include <ATen/Tensor.h>

#include <optional>

namespace qb::quant {

at::Tensor dense_matmul(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias);

}  // namespace qb::quant
