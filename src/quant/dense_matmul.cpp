#include "quantbench/quant/dense_matmul.h"

#include <ATen/ATen.h>

namespace qb::quant {

at::Tensor dense_matmul(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias) {
  return bias.has_value() ? at::linear(x, weight, *bias) : at::linear(x, weight);
}

}  // namespace qb::quant
