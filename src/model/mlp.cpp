#include <ATen/ATen.h>

#include "kernel_bridge.h"
#include "quantbench/core/env_switch.h"
#include "quantbench/model/blocks.h"

namespace qb::model {

Mlp::Mlp(const ModelConfig& config, quant::LinearPtr in, quant::LinearPtr out)
    : activation_(config.activation), gated_(config.gated_mlp), in_(std::move(in)), out_(std::move(out)) {}

namespace {

quant::GateActivation gate_activation(Activation activation) {
  switch (activation) {
    case Activation::kGeluTanh: return quant::GateActivation::kGeluTanh;
    case Activation::kGeluErf: return quant::GateActivation::kGeluErf;
    case Activation::kSilu: return quant::GateActivation::kSilu;
    case Activation::kRelu: return quant::GateActivation::kRelu;
  }
  return quant::GateActivation::kSilu;
}

}  // namespace

// A gated MLP on the GPU asks its gate_up layer for act(gate) * up from the decode kernel's epilogue (the same bits
// as the separate activation kernel, one launch fewer per layer); QB_GATED_EPILOGUE=0 keeps two launches (A/B).
at::Tensor Mlp::forward(const at::Tensor& x, const std::function<void()>& before_out) const {
  static const bool epilogue_allowed = env_on_unless_zero("QB_GATED_EPILOGUE");
  at::Tensor activated;
  if (gated_ && epilogue_allowed && x.is_cuda()) activated = in_->forward_gated(x, gate_activation(activation_));
  if (!activated.defined()) activated = activate(in_->forward(x));
  if (before_out) before_out();
  return out_->forward(activated);
}

// Gated: the fused gate_up output holds gate in the first half, up in the second.
at::Tensor Mlp::activate(const at::Tensor& h) const {
  const int64_t inter = gated_ ? h.size(-1) / 2 : h.size(-1);
#ifdef QB_HAVE_CUDA
  if (h.is_cuda()) {
    std::vector<int64_t> shape = h.sizes().vec();
    shape.back() = inter;
    at::Tensor out = at::empty(shape, h.options());
    const at::Tensor in = h.contiguous();
    kernels::ActType act = kernels::ActType::kSilu;
    switch (activation_) {
      case Activation::kGeluTanh: act = kernels::ActType::kGeluTanh; break;
      case Activation::kGeluErf: act = kernels::ActType::kGeluErf; break;
      case Activation::kSilu: act = kernels::ActType::kSilu; break;
      case Activation::kRelu: act = kernels::ActType::kRelu; break;
    }
    kernels::activation(in.data_ptr(), out.data_ptr(), in.numel() / h.size(-1), inter, gated_, act,
                        kernel_dtype(h.scalar_type()), current_stream());
    return out;
  }
#endif
  const at::Tensor a = gated_ ? h.narrow(-1, 0, inter) : h;
  at::Tensor activated;
  switch (activation_) {
    case Activation::kGeluTanh: activated = at::gelu(a, "tanh"); break;
    case Activation::kGeluErf: activated = at::gelu(a); break;
    case Activation::kSilu: activated = at::silu(a); break;
    case Activation::kRelu: activated = at::relu(a); break;
  }
  return gated_ ? activated * h.narrow(-1, inter, inter) : activated;
}

}  // namespace qb::model
