// Device side of quantbench/kernels/row_norm.h: a GEMV block normalises its input row into shared memory.
//
// Bit-identity with add_norm_vec_kernel (decode_ops.cu), which the unfused path runs: that kernel gives
// thread i (of V = row_norm_threads(hidden)) the 16-byte pieces i, i + V, ... and sums their squares in that
// order, then block_sum: a xor-butterfly warp_sum per 32 threads, the per-warp sums in a second warp_sum.
// Here the block's real threads play the V virtual threads (any blockDim), park each virtual thread's sum in
// shared memory and run the same two butterflies over them: the same additions in the same order.
#pragma once

#include "dtype_utils.cuh"
#include "quantbench/kernels/row_norm.h"

namespace qb::kernels {

// Shared floats row_rms_norm needs beside the row: V sums + 32 warp sums.
constexpr int kRowNormScratchFloats = 1024 + 32;

// Call with every thread of the block, after the PDL wait (residual and delta are the previous kernels'
// outputs). Writes xs[0 .. hidden) and, from block 0, norm.residual_out. Ends with a barrier.
template <typename T>
__device__ void row_rms_norm(const RowNorm& norm, T* xs, float* scratch) {
  constexpr int kVec = 8;
  const int hidden = norm.hidden, vecs = hidden / kVec;
  const int virtual_threads = row_norm_threads(hidden);
  const uint4* res = static_cast<const uint4*>(norm.residual);
  const uint4* add = static_cast<const uint4*>(norm.delta);
  uint4* xs4 = reinterpret_cast<uint4*>(xs);
  const bool writes_residual = add != nullptr && blockIdx.x == 0;
  float* vsum = scratch;             // [virtual_threads]
  float* warp_sums = scratch + 1024;  // [32]
  // 1. h = round(residual + delta), parked in xs; each virtual thread's sum of squares.
  for (int vt = threadIdx.x; vt < virtual_threads; vt += blockDim.x) {
    float local = 0.f;
    for (int i = vt; i < vecs; i += virtual_threads) {
      uint4 raw = res[i];
      T* e = reinterpret_cast<T*>(&raw);
      if (add != nullptr) {
        uint4 d_raw = add[i];
        const T* d = reinterpret_cast<const T*>(&d_raw);
#pragma unroll
        for (int j = 0; j < kVec; ++j) e[j] = from_float<T>(to_float(e[j]) + to_float(d[j]));
        if (writes_residual) static_cast<uint4*>(norm.residual_out)[i] = raw;
      }
#pragma unroll
      for (int j = 0; j < kVec; ++j) {
        const float v = to_float(e[j]);
        local += v * v;
      }
      xs4[i] = raw;
    }
    vsum[vt] = local;
  }
  __syncthreads();
  // 2. block_sum's two butterflies over the virtual threads.
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, virtual_warps = virtual_threads / 32;
  for (int w = warp; w < virtual_warps; w += blockDim.x >> 5) {
    const float s = warp_sum(vsum[w * 32 + lane]);
    if (lane == 0) warp_sums[w] = s;
  }
  __syncthreads();
  const float total = warp_sum(lane < virtual_warps ? warp_sums[lane] : 0.f);
  const float rstd = rsqrtf(total / static_cast<float>(hidden) + norm.eps);
  // 3. x = round(round(h * rstd) * weight), in place (each thread rewrites the pieces it parked).
  const uint4* gamma = static_cast<const uint4*>(norm.weight);
  for (int vt = threadIdx.x; vt < virtual_threads; vt += blockDim.x) {
    for (int i = vt; i < vecs; i += virtual_threads) {
      uint4 raw = xs4[i];
      const uint4 w_raw = __ldg(gamma + i);
      T* e = reinterpret_cast<T*>(&raw);
      const T* w = reinterpret_cast<const T*>(&w_raw);
#pragma unroll
      for (int j = 0; j < kVec; ++j) e[j] = from_float<T>(round_to<T>(to_float(e[j]) * rstd) * to_float(w[j]));
      xs4[i] = raw;
    }
  }
  __syncthreads();
}

}  // namespace qb::kernels
