#include <ATen/ATen.h>

#include "kernel_bridge.h"
#include "quantbench/model/blocks.h"

namespace qb::model {

Norm::Norm(NormKind kind, at::Tensor weight, std::optional<at::Tensor> bias, double eps)
    : kind_(kind), weight_(std::move(weight)), bias_(std::move(bias)), eps_(eps) {}

at::Tensor Norm::forward(const at::Tensor& x) const {
  at::Tensor residual = x;  // add_forward with no delta leaves its input untouched
  return add_forward(residual, at::Tensor());
}

at::Tensor Norm::add_forward(at::Tensor& residual, const at::Tensor& delta) const {
#ifdef QB_HAVE_CUDA
  if (residual.is_cuda()) {
    TORCH_CHECK(residual.is_contiguous() && (!delta.defined() || delta.is_contiguous()));
    const int64_t hidden = residual.size(-1);
    at::Tensor out = at::empty_like(residual);
    kernels::add_norm(residual.data_ptr(), delta.defined() ? delta.data_ptr() : nullptr, weight_.data_ptr(),
                      bias_.has_value() ? bias_->data_ptr() : nullptr, out.data_ptr(), residual.numel() / hidden,
                      hidden, static_cast<float>(eps_),
                      kind_ == NormKind::kRmsNorm ? kernels::NormType::kRmsNorm : kernels::NormType::kLayerNorm,
                      kernel_dtype(residual.scalar_type()), current_stream());
    return out;
  }
#endif
  if (delta.defined()) residual = residual + delta;
  if (kind_ == NormKind::kLayerNorm) {
    return at::layer_norm(residual, {residual.size(-1)}, weight_, bias_.has_value() ? *bias_ : at::Tensor(), eps_);
  }
  // transformers' RMSNorm: normalise in fp32, cast back to the input dtype, then scale.
  const at::Tensor x32 = residual.to(at::kFloat);
  const at::Tensor normed = x32 * at::rsqrt(x32.pow(2).mean(-1, true) + eps_);
  return weight_ * normed.to(residual.scalar_type());
}

int64_t Norm::bytes() const {
  return static_cast<int64_t>(weight_.nbytes()) + (bias_.has_value() ? static_cast<int64_t>(bias_->nbytes()) : 0);
}

}  // namespace qb::model
