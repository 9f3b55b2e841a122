// Device helpers of LLM.int8()'s activation quantization (contract: kernels/llm_int8_prep.cu), shared by the prep
// kernels and the decode GEMV that quantizes its own activation row (kernels/llm_int8_gemv.cu): both must give
// the same CA, SCA and outlier mask, bit for bit.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "gemv_mma_tile.cuh"

namespace qb::kernels::llm_int8_quant {

// bitsandbytes quantizes the fp16 cast of the activations.
__device__ __forceinline__ float as_fp16_value(__half v) { return __half2float(v); }
__device__ __forceinline__ float as_fp16_value(__nv_bfloat16 v) {
  return __half2float(__float2half_rn(__bfloat162float(v)));
}

template <typename T>
__device__ __forceinline__ void load8(const T* src, float (&out)[8]) {
  const uint4 raw = gemv::load_cached16(src);
  const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int e = 0; e < 8; ++e) out[e] = as_fp16_value(v[e]);
}

__device__ __forceinline__ int8_t quantize_value(float v, float inv_scale) {
  const int q = __float2int_rn(v * inv_scale);
  return static_cast<int8_t>(max(-127, min(127, q)));
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
  v = __uint_as_float(__reduce_max_sync(0xffffffffu, __float_as_uint(v)));
  const int warp = threadIdx.x >> 5;
  if ((threadIdx.x & 31) == 0) scratch[warp] = v;
  __syncthreads();
  float r = 0.0f;
  const int warps = blockDim.x >> 5;
  for (int w = 0; w < warps; ++w) r = fmaxf(r, scratch[w]);
  __syncthreads();
  return r;
}

// Eight activations (fp16-rounded): bit e of the result flags an outlier (threshold > 0 and |v| >= threshold);
// the others raise `row_max`.
__device__ __forceinline__ uint32_t outlier_flags8(const float (&vals)[8], float threshold, float& row_max) {
  uint32_t flags = 0;
#pragma unroll
  for (int e = 0; e < 8; ++e) {
    const float a = fabsf(vals[e]);
    if (threshold > 0.0f && a >= threshold) {
      flags |= 1u << e;
    } else {
      row_max = fmaxf(row_max, a);
    }
  }
  return flags;
}

// 127 / SCA as bitsandbytes' default backend computes it (reciprocal, then product); 0 for an all-outlier row.
__device__ __forceinline__ float inv_row_scale(float sca) { return sca > 0.0f ? 127.0f * (1.0f / sca) : 0.0f; }

// CA bytes of eight activations (0 in outlier columns and when SCA == 0), packed little-endian in two words.
__device__ __forceinline__ uint2 quantize8(const float (&vals)[8], uint32_t flags, float sca, float inv) {
  uint32_t lo = 0, hi = 0;
#pragma unroll
  for (int e = 0; e < 8; ++e) {
    const bool outlier = (flags >> e) & 1u;
    const uint32_t q = static_cast<uint8_t>(outlier || sca <= 0.0f ? 0 : quantize_value(vals[e], inv));
    if (e < 4) {
      lo |= q << (8 * e);
    } else {
      hi |= q << (8 * (e - 4));
    }
  }
  return make_uint2(lo, hi);
}

// The two passes over one activation row (K columns, `vecs` 8-column vectors up to ld = round_up(K, 32)), the
// block's threads striding over the vectors. Pass 1 ORs the row's outlier columns into `mask` (shared memory,
// zeroed by the caller) and returns SCA, the block-wide max of the other elements (block_max also orders the
// atomicOr). Pass 2 writes the row's CA bytes (zero in outlier columns and past K).
template <typename T>
__device__ __forceinline__ float outlier_pass(const T* row, int K, int vecs, float threshold, uint32_t* mask,
                                              float* scratch) {
  float local_max = 0.0f;
  for (int v = threadIdx.x; v < vecs && v * 8 < K; v += blockDim.x) {
    float vals[8];
    load8(row + v * 8, vals);
    const uint32_t flags = outlier_flags8(vals, threshold, local_max);
    if (flags != 0) atomicOr(&mask[v / 4], flags << (8 * (v % 4)));
  }
  return block_max(local_max, scratch);
}

template <typename T>
__device__ __forceinline__ void quantize_pass(const T* row, int K, int vecs, const uint32_t* mask, float sca,
                                              int8_t* ca) {
  const float inv = inv_row_scale(sca);
  for (int v = threadIdx.x; v < vecs; v += blockDim.x) {
    const uint32_t flags = (mask[v / 4] >> (8 * (v % 4))) & 0xffu;
    float vals[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (v * 8 < K) load8(row + v * 8, vals);
    *reinterpret_cast<uint2*>(ca + v * 8) = quantize8(vals, flags, sca, inv);
  }
}

}  // namespace qb::kernels::llm_int8_quant
