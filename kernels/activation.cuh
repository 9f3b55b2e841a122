// Activation functions on device, shared by the activation kernel (decode_ops.cu) and the GEMV epilogues that
// apply a gated activation themselves (gated_epilogue.h): one definition, so both give the same bits.
#pragma once

#include "dtype_utils.cuh"
#include "quantbench/kernels/decode_ops.h"

namespace qb::kernels {

__device__ __forceinline__ float apply_act(float x, ActType act) {
  switch (act) {
    case ActType::kGeluTanh: return 0.5f * x * (1.f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    case ActType::kGeluErf: return 0.5f * x * (1.f + erff(x * 0.7071067811865476f));
    case ActType::kSilu: return x / (1.f + __expf(-x));
    case ActType::kRelu: return fmaxf(x, 0.f);
  }
  return x;
}

// act(gate) * up from the two fp32 sums of a gated GEMV, rounded as the separate path rounds: each sum to T
// (the GEMV's output), act(.) to T (the activation kernel's intermediate), the product once.
template <typename T>
__device__ __forceinline__ T gated_output(float gate_sum, float up_sum, ActType act) {
  const float a = round_to<T>(apply_act(round_to<T>(gate_sum), act));
  return from_float<T>(a * round_to<T>(up_sum));
}

}  // namespace qb::kernels
