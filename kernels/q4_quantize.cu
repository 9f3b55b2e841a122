// GPU quantizers of nf4/fp4 (bitsandbytes quantize_4bit, default backend) and awq (AutoAWQ RTN): contracts in
// quantbench/kernels/q4_quantize.h. Every arithmetic step is spelled with the _rn intrinsics so that the compiler
// cannot contract or reassociate it: the results must equal the CPU references bit for bit.
//
// bnb: one warp per block of `blocksize` elements: max |x| by a warp reduction (max is exact in any order), then
//   each lane writes whole bytes (elements 2p, 2p + 1 of the block). Blocks of an even blocksize start on byte
//   boundaries, so blocks are independent.
// awq: pass 1, one warp per (row, group): min / max and the group's fp16 scale and zero; pass 2, one thread per
//   output byte (two elements, possibly of different groups or rows when K or the group is odd).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "q4_common.cuh"
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/q4_quantize.h"

namespace qb::kernels {
namespace {

template <typename In>
__device__ __forceinline__ float load_f32(const In* p, int64_t i) {
  return q4::ActOps<In>::to_float(p[i]);
}

// torch.clamp(v, -1, 1): NaN passes through.
__device__ __forceinline__ float clamp_unit(float v) { return v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v); }

__device__ __forceinline__ uint32_t bucket_code(const Bnb4bitBuckets& b, float v) {
  int position = 0;
#pragma unroll
  for (int i = 0; i < 15; ++i) position += b.bounds[i] < v ? 1 : 0;
  return static_cast<uint32_t>(b.code_of >> (4 * position)) & 15u;
}

template <typename In>
__global__ void __launch_bounds__(256) bnb_quantize_4bit_kernel(const In* __restrict__ x, int64_t n, int64_t bs,
                                                                const __grid_constant__ Bnb4bitBuckets buckets,
                                                                float tiny, uint8_t* __restrict__ packed,
                                                                float* __restrict__ absmax) {
  const int lane = static_cast<int>(threadIdx.x & 31);
  const int64_t nblocks = (n + bs - 1) / bs;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  for (int64_t blk = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5); blk < nblocks;
       blk += warps) {
    const int64_t start = blk * bs, len = min(bs, n - start);
    float am = 0.0f;  // CPU: am = f > am ? f : am from 0 (NaN never enters), NaN flagged separately
    bool nan = false;
    for (int64_t i = lane; i < len; i += 32) {
      const float f = fabsf(load_f32(x, start + i));
      nan |= isnan(f);
      am = f > am ? f : am;
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) am = fmaxf(am, __shfl_xor_sync(0xFFFFFFFFu, am, offset));
    if (__any_sync(0xFFFFFFFFu, nan)) am = __int_as_float(0x7FC00000);  // torch.max propagates NaN
    const bool full = len == bs;
    const float clamped = am < tiny ? tiny : am;  // NaN stays NaN
    const float rec = __fdiv_rn(1.0f, clamped);
    if (lane == 0) absmax[blk] = full ? am : clamped;
    const uint32_t zero_code = bucket_code(buckets, 0.0f);  // bnb pads an odd tail with 0.0 (unscaled)
    for (int64_t p = lane; 2 * p < len; p += 32) {
      const int64_t i = start + 2 * p;
      const float v0 = load_f32(x, i);
      const float s0 = full ? __fmul_rn(v0, rec) : __fdiv_rn(v0, clamped);
      uint32_t lo = zero_code;
      if (2 * p + 1 < len) {
        const float v1 = load_f32(x, i + 1);
        lo = bucket_code(buckets, clamp_unit(full ? __fmul_rn(v1, rec) : __fdiv_rn(v1, clamped)));
      }
      packed[i / 2] = static_cast<uint8_t>((bucket_code(buckets, clamp_unit(s0)) << 4) | lo);
    }
  }
}

__device__ __forceinline__ float h2f(__half h) { return __half2float(h); }
__device__ __forceinline__ __half f2h(float f) { return __float2half_rn(f); }

// Pass 1: one warp per (row, group).
__global__ void __launch_bounds__(256) awq_group_params_kernel(const __half* __restrict__ w, int64_t N, int64_t K,
                                                               int64_t group, uint16_t min_scale_bits,
                                                               uint16_t* __restrict__ scales,
                                                               uint8_t* __restrict__ zeros) {
  const int lane = static_cast<int>(threadIdx.x & 31);
  const int64_t groups = K / group, items = N * groups;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  const float min_scale = h2f(__ushort_as_half(min_scale_bits));
  for (int64_t item = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5); item < items;
       item += warps) {
    const __half* src = w + (item / groups) * K + (item % groups) * group;
    float mx = -INFINITY, mn = INFINITY;
    for (int64_t i = lane; i < group; i += 32) {
      const float v = h2f(src[i]);
      mx = fmaxf(mx, v);
      mn = fminf(mn, v);
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
      mx = fmaxf(mx, __shfl_xor_sync(0xFFFFFFFFu, mx, offset));
      mn = fminf(mn, __shfl_xor_sync(0xFFFFFFFFu, mn, offset));
    }
    if (lane != 0) continue;
    const float range = h2f(f2h(__fsub_rn(mx, mn)));            // max_val - min_val (Half)
    const float clamped = range < min_scale ? min_scale : range;  // clamp_min(., 1e-5): max in Half
    const __half scale = f2h(__fdiv_rn(clamped, 15.0f));          // / 15
    const float zero_f = -rintf(h2f(f2h(__fdiv_rn(mn, h2f(scale)))));  // -round(min / scale)
    const float zero = zero_f < 0.0f ? 0.0f : (zero_f > 15.0f ? 15.0f : zero_f);
    scales[item] = __half_as_ushort(scale);
    zeros[item] = static_cast<uint8_t>(zero);
  }
}

__device__ __forceinline__ uint32_t awq_code(float v, __half scale, float zero) {
  const float r = rintf(h2f(f2h(__fdiv_rn(v, h2f(scale)))));  // round(w / scale): Half division, then round
  const float q = h2f(f2h(__fadd_rn(h2f(f2h(r)), zero)));      // + zeros (Half add)
  return static_cast<uint32_t>(q < 0.0f ? 0.0f : (q > 15.0f ? 15.0f : q));
}

// Pass 2: one thread per byte of the canonical codes.
__global__ void __launch_bounds__(256) awq_codes_kernel(const __half* __restrict__ w, int64_t N, int64_t K,
                                                        int64_t group, const uint16_t* __restrict__ scales,
                                                        const uint8_t* __restrict__ zeros,
                                                        uint8_t* __restrict__ codes) {
  const int64_t bytes = N * K / 2, groups = K / group;
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < bytes;
       b += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint32_t code[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t e = 2 * b + h, n = e / K, k = e % K, gi = n * groups + k / group;
      code[h] = awq_code(h2f(w[e]), __ushort_as_half(scales[gi]), static_cast<float>(zeros[gi]));
    }
    codes[b] = static_cast<uint8_t>((code[0] << 4) | code[1]);
  }
}

unsigned grid_blocks(int64_t work_items, int64_t per_block) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((work_items + per_block - 1) / per_block, 132 * 32)));
}

}  // namespace

void bnb_quantize_4bit_cuda(DType dtype, const void* weight, int64_t numel, int64_t blocksize,
                            const Bnb4bitBuckets& buckets, float tiny, uint8_t* packed, float* absmax,
                            cudaStream_t stream) {
  QB_CHECK(numel > 0 && blocksize > 0 && blocksize % 2 == 0, kInvalidInput,
           "bnb_quantize_4bit_cuda: numel {} and an even blocksize {} needed", numel, blocksize);
  const unsigned grid = grid_blocks((numel + blocksize - 1) / blocksize, 8);
  switch (dtype) {
    case DType::kF32:
      bnb_quantize_4bit_kernel<<<grid, 256, 0, stream>>>(static_cast<const float*>(weight), numel, blocksize, buckets,
                                                         tiny, packed, absmax);
      break;
    case DType::kF16:
      bnb_quantize_4bit_kernel<<<grid, 256, 0, stream>>>(static_cast<const __half*>(weight), numel, blocksize, buckets,
                                                         tiny, packed, absmax);
      break;
    case DType::kBF16:
      bnb_quantize_4bit_kernel<<<grid, 256, 0, stream>>>(static_cast<const __nv_bfloat16*>(weight), numel, blocksize,
                                                         buckets, tiny, packed, absmax);
      break;
  }
  QB_CUDA_CHECK_LAUNCH();
}

void awq_quantize_rtn_cuda(const uint16_t* weight_fp16, int64_t N, int64_t K, int64_t group, uint16_t min_scale_bits,
                           uint8_t* codes, uint16_t* scales, uint8_t* zeros, cudaStream_t stream) {
  QB_CHECK(N > 0 && K > 0 && group > 0 && K % group == 0 && (N * K) % 2 == 0, kInvalidInput,
           "awq_quantize_rtn_cuda: [{}, {}] with group {} (K % group == 0 and an even N * K needed)", N, K, group);
  const __half* w = reinterpret_cast<const __half*>(weight_fp16);
  awq_group_params_kernel<<<grid_blocks(N * (K / group), 8), 256, 0, stream>>>(w, N, K, group, min_scale_bits, scales,
                                                                               zeros);
  QB_CUDA_CHECK_LAUNCH();
  awq_codes_kernel<<<grid_blocks(N * K / 2, 256), 256, 0, stream>>>(w, N, K, group, scales, zeros, codes);
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace qb::kernels
