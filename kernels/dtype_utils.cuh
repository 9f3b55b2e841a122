// Load/store helpers shared by the kernels: every kernel is templated on its storage type
// (float, __half, __nv_bfloat16) and computes in float.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "quantbench/kernels/decode_ops.h"

namespace qb::kernels {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// Round a float to T and back: reproduces the rounding a separate torch op in dtype T would do.
template <typename T>
__device__ __forceinline__ float round_to(float v) { return to_float(from_float<T>(v)); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Sum over the block; every thread gets the result. `scratch` holds >= 32 floats.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = lane < warps ? scratch[lane] : 0.f;
  return warp_sum(total);
}

// Dispatch a templated launcher on the runtime dtype.
#define QB_DISPATCH_DTYPE(dtype, T, ...)                          \
  switch (dtype) {                                                \
    case ::qb::kernels::DType::kF32: { using T = float; __VA_ARGS__; break; }          \
    case ::qb::kernels::DType::kF16: { using T = __half; __VA_ARGS__; break; }         \
    case ::qb::kernels::DType::kBF16: { using T = __nv_bfloat16; __VA_ARGS__; break; } \
  }

}  // namespace qb::kernels
