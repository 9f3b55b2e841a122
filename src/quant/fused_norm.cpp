#include "quantbench/quant/fused_norm.h"

#include <ATen/ATen.h>

#include <cstdlib>
#include <cstring>

namespace qb::quant {

bool fused_norm_enabled() {
  static const bool enabled = [] {
    const char* flag = std::getenv("QB_FUSED_NORM");
    return flag == nullptr || std::strcmp(flag, "0") != 0;
  }();
  return enabled;
}

std::optional<FusedNorm> fused_norm_for(const NormedInput& in) {
#ifndef QB_HAVE_CUDA
  (void)in;
  return std::nullopt;
#else
  if (!fused_norm_enabled() || in.residual == nullptr || !in.weight.defined()) return std::nullopt;
  const at::Tensor& residual = *in.residual;
  const auto dtype = residual.scalar_type();
  if (!residual.is_cuda() || (dtype != at::kHalf && dtype != at::kBFloat16) || !residual.is_contiguous()) {
    return std::nullopt;
  }
  const int64_t hidden = residual.size(-1);
  if (residual.numel() != hidden || in.weight.scalar_type() != dtype || !in.weight.is_contiguous() ||
      in.weight.numel() != hidden || in.weight.device() != residual.device()) {
    return std::nullopt;
  }
  if (in.delta.defined() && (in.delta.scalar_type() != dtype || !in.delta.is_contiguous() ||
                             in.delta.numel() != hidden || in.delta.device() != residual.device())) {
    return std::nullopt;
  }
  FusedNorm f;
  f.row.residual = residual.data_ptr();
  f.row.weight = in.weight.data_ptr();
  f.row.eps = static_cast<float>(in.eps);
  f.row.hidden = static_cast<int>(std::min<int64_t>(hidden, kernels::kRowNormMaxHidden + 1));
  if (in.delta.defined()) {
    f.residual_out = at::empty_like(residual);
    f.row.delta = in.delta.data_ptr();
    f.row.residual_out = f.residual_out.data_ptr();
  }
  if (!kernels::row_norm_supported(f.row)) return std::nullopt;
  f.x_like = residual;
  return f;
#endif
}

void FusedNorm::commit(const NormedInput& in) const {
  if (residual_out.defined()) *in.residual = residual_out;
}

}  // namespace qb::quant
