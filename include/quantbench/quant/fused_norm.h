// When a linear layer's decode GEMV may apply the RMSNorm before it itself (NormedInput, kernels/row_norm.h):
// one row, 16-bit activations matching the norm weight, contiguous 16-byte aligned rows of at most
// kernels::kRowNormMaxHidden, CUDA. QB_FUSED_NORM=0 turns fusion off (A/B runs; read once per process).
#pragma once

#include <ATen/Tensor.h>

#include <optional>

#include "quantbench/kernels/row_norm.h"
#include "quantbench/quant/linear.h"

namespace qb::quant {

struct FusedNorm {
  kernels::RowNorm row;    // what the GEMV is given
  at::Tensor residual_out;  // residual + delta, written by the GEMV (undefined without a delta)
  at::Tensor x_like;        // [1, hidden] view shaped like the normalised input (dtype, device, sizes)
  // After the GEMV is launched: the block's residual is the updated one.
  void commit(const NormedInput& in) const;
};

bool fused_norm_enabled();

// The fused norm for `in`, or nullopt when it does not apply (the caller then runs forward(in.materialize())).
std::optional<FusedNorm> fused_norm_for(const NormedInput& in);

}  // namespace qb::quant
