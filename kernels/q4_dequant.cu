// 4-bit weights dequantized into a dense row-major matrix (fp32, fp16 or bf16): the first half of the
// large-M path (dequantize, then cuBLAS) and the fallback for shapes the tile layout does not take.
//
// Contract
//   q4_tile_dequant: tile layout (q4_layout.h), rows [row0, row0+rows) x columns [col0, col0+cols) of W
//     -> out[(n - row0) * ldo + (k - col0)]. row0 % 16 == 0, col0 % 64 == 0, cols % 64 == 0, rows > 0;
//     rows past N are not written. A warp converts 8 (tile, 64-column chunk) items: each lane reads its 16
//     code bytes per item once (16-byte loads, all issued first) and writes 16 values of row g and of row g+8.
//   q4_flat_dequant: canonical codes (even element in the high nibble) of any [N, K] -> out [N, K] (ld K).
//     absmax mode: w = codebook[c] * absmax[e / blocksize] over the flattened index e = n*K + k (blocks
//     may straddle rows, as bitsandbytes defines them); affine: w = (c - zero) * scale, per (n, k / group).
//   Values: computed in fp32 (codebook * absmax is the exact fp32 product bitsandbytes dequantizes to),
//   then one rounding to the output dtype.
#include <algorithm>

#include "q4_common.cuh"
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/q4_gemm.h"
#include "quantbench/kernels/q4_layout.h"

namespace qb::kernels {
namespace {

using q4::ActOps;

// 16-byte store; with L2 hints the line is marked evict-last so that a chunk written for cuBLAS stays in L2.
template <bool kL2Hints>
__device__ __forceinline__ void store_line16(void* dst, uint4 v, uint64_t policy) {
  if constexpr (kL2Hints) {
    asm volatile("st.global.L2::cache_hint.v4.b32 [%0], {%1, %2, %3, %4}, %5;" ::"l"(dst), "r"(v.x), "r"(v.y),
                 "r"(v.z), "r"(v.w), "l"(policy)
                 : "memory");
  } else {
    *reinterpret_cast<uint4*>(dst) = v;
  }
}

template <bool kL2Hints>
__device__ __forceinline__ uint4 load_codes16(const void* src, uint64_t policy) {
  if constexpr (kL2Hints) {  // the 4-bit codes are read once: evict-first, so they do not push the chunk out
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.L2::cache_hint.v4.u32 {%0, %1, %2, %3}, [%4], %5;"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(src), "l"(policy));
    return v;
  } else {
    return q4::load_stream16(src);
  }
}

template <typename Out, bool kL2Hints>
__device__ __forceinline__ void store16(Out* dst, const float (&v)[16], uint64_t policy) {
  if constexpr (sizeof(Out) == 4) {
#pragma unroll
    for (int i = 0; i < 4; ++i)
      store_line16<kL2Hints>(dst + 4 * i, make_uint4(__float_as_uint(v[4 * i]), __float_as_uint(v[4 * i + 1]),
                                                     __float_as_uint(v[4 * i + 2]), __float_as_uint(v[4 * i + 3])),
                             policy);
  } else {
    uint32_t words[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) words[i] = ActOps<Out>::pack(v[2 * i], v[2 * i + 1]);
    store_line16<kL2Hints>(dst, make_uint4(words[0], words[1], words[2], words[3]), policy);
    store_line16<kL2Hints>(dst + 8, make_uint4(words[4], words[5], words[6], words[7]), policy);
  }
}

// Each warp converts kItemsPerWarp (tile, chunk) items: all their code loads are issued first (8 x 16 bytes in
// flight per lane), then converted and stored; one block of 8 warps covers 64 items. (One item per warp made
// the kernel block-launch bound: NOTES-q4.md.)
constexpr int kItemsPerWarp = 8;

template <typename Out, Q4ScaleMode MODE, bool kL2Hints>
__global__ void __launch_bounds__(256) q4_tile_dequant_kernel(const __grid_constant__ Q4TileWeights w, int64_t row0,
                                                              int64_t rows, int64_t col0, int64_t cols,
                                                              Out* __restrict__ out, int64_t ldo) {
  __shared__ float codebook[16];
  __shared__ float nested_code[MODE == Q4ScaleMode::kAbsmaxNested ? 256 : 1];
  if (threadIdx.x < 16) codebook[threadIdx.x] = w.codebook[threadIdx.x];
  if constexpr (MODE == Q4ScaleMode::kAbsmaxNested) {
    for (int i = threadIdx.x; i < 256; i += blockDim.x) nested_code[i] = w.nested_code[i];
  }
  __syncthreads();
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t chunks = cols / 64, tiles = (rows + 15) / 16, items = tiles * chunks;
  const int64_t first = (static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5)) * kItemsPerWarp;
  if (first >= items) return;
  const int64_t k_chunks = w.K / 64, units = w.K >> (6 + w.unit_shift);
  uint64_t load_policy = 0, store_policy = 0;
  if constexpr (kL2Hints) {
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(load_policy));
    asm volatile("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(store_policy));
  }
  uint4 codes[kItemsPerWarp];
#pragma unroll
  for (int it = 0; it < kItemsPerWarp; ++it) {
    const int64_t item = min(first + it, items - 1);
    const int64_t tile = row0 / 16 + item / chunks, chunk = col0 / 64 + item % chunks;
    codes[it] = load_codes16<kL2Hints>(w.tiles + ((tile * k_chunks + chunk) * 32 + lane) * 16, load_policy);
  }
#pragma unroll
  for (int it = 0; it < kItemsPerWarp; ++it) {
    const int64_t item = first + it;
    if (item >= items) break;
    const int64_t tile = row0 / 16 + item / chunks, chunk = col0 / 64 + item % chunks;
    const int64_t unit = chunk >> w.unit_shift;
    const uint32_t words[4] = {codes[it].x, codes[it].y, codes[it].z, codes[it].w};
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t n = tile * 16 + g + 8 * h;
      if (n >= row0 + rows || n >= w.N) continue;
      const int64_t sidx = ((tile * units + unit) * 8 + g) * 2 + h;  // [tile][unit][g][h]
      float scale, zero = 0.f;
      if constexpr (MODE == Q4ScaleMode::kAbsmaxF32) {
        scale = static_cast<const float*>(w.scales)[sidx];
      } else if constexpr (MODE == Q4ScaleMode::kAbsmax16) {
        scale = q4::absmax16(static_cast<const uint16_t*>(w.scales)[sidx], w.absmax_f16);
      } else if constexpr (MODE == Q4ScaleMode::kAbsmaxNested) {
        scale = q4::nested_absmax(nested_code[static_cast<const uint8_t*>(w.scales)[sidx]],
                                  w.nested[(n * units + unit) >> 8]);
      } else {
        const uint32_t packed = static_cast<const uint32_t*>(w.scales)[sidx];
        scale = q4::affine_scale(packed);
        zero = q4::affine_zero(packed);
      }
      float v[16];
#pragma unroll
      for (int b = 0; b < 8; ++b) {
        const uint32_t byte = (words[2 * h + (b >> 2)] >> (8 * (b & 3))) & 0xFFu;
        if constexpr (MODE == Q4ScaleMode::kAffine) {
          v[2 * b] = (codebook[byte >> 4] - zero) * scale;
          v[2 * b + 1] = (codebook[byte & 15] - zero) * scale;
        } else {
          v[2 * b] = __fmul_rn(codebook[byte >> 4], scale);
          v[2 * b + 1] = __fmul_rn(codebook[byte & 15], scale);
        }
      }
      store16<Out, kL2Hints>(out + (n - row0) * ldo + (chunk * 64 - col0) + 16 * t, v, store_policy);
    }
  }
}

template <typename Out>
__global__ void __launch_bounds__(256) q4_flat_dequant_kernel(const __grid_constant__ Q4FlatWeights w,
                                                              Out* __restrict__ out) {
  __shared__ float codebook[16];
  if (threadIdx.x < 16) codebook[threadIdx.x] = w.codebook[threadIdx.x];
  __syncthreads();
  const int64_t numel = w.N * w.K, bytes = (numel + 1) / 2;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < bytes;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint32_t byte = w.codes[i];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t e = 2 * i + h;
      if (e >= numel) break;
      const float c = codebook[h == 0 ? byte >> 4 : byte & 15];
      float v;
      if (w.mode == Q4ScaleMode::kAffine) {
        const int64_t n = e / w.K, k = e % w.K;
        const uint32_t packed = w.affine[n * (w.K / w.blocksize) + k / w.blocksize];
        v = (c - q4::affine_zero(packed)) * q4::affine_scale(packed);
      } else {
        v = __fmul_rn(c, w.absmax[e / w.blocksize]);
      }
      out[e] = ActOps<Out>::from_float(v);
    }
  }
}

template <typename Out, bool kL2Hints>
void launch_tile(const Q4TileWeights& w, int64_t row0, int64_t rows, int64_t col0, int64_t cols, void* out,
                 int64_t ldo, cudaStream_t stream) {
  const int64_t items = (rows + 15) / 16 * (cols / 64);
  const int64_t per_block = 8 * kItemsPerWarp;
  const unsigned blocks = static_cast<unsigned>((items + per_block - 1) / per_block);
  Out* o = static_cast<Out*>(out);
  switch (w.mode) {
    case Q4ScaleMode::kAbsmaxF32:
      q4_tile_dequant_kernel<Out, Q4ScaleMode::kAbsmaxF32, kL2Hints>
          <<<blocks, 256, 0, stream>>>(w, row0, rows, col0, cols, o, ldo);
      break;
    case Q4ScaleMode::kAbsmaxNested:
      q4_tile_dequant_kernel<Out, Q4ScaleMode::kAbsmaxNested, kL2Hints>
          <<<blocks, 256, 0, stream>>>(w, row0, rows, col0, cols, o, ldo);
      break;
    case Q4ScaleMode::kAffine:
      q4_tile_dequant_kernel<Out, Q4ScaleMode::kAffine, kL2Hints>
          <<<blocks, 256, 0, stream>>>(w, row0, rows, col0, cols, o, ldo);
      break;
    case Q4ScaleMode::kAbsmax16:
      q4_tile_dequant_kernel<Out, Q4ScaleMode::kAbsmax16, kL2Hints>
          <<<blocks, 256, 0, stream>>>(w, row0, rows, col0, cols, o, ldo);
      break;
  }
  QB_CUDA_CHECK_LAUNCH();
}

template <typename Out>
void launch_tile(const Q4TileWeights& w, int64_t row0, int64_t rows, int64_t col0, int64_t cols, void* out,
                 int64_t ldo, bool l2_hints, cudaStream_t stream) {
  if (l2_hints) {
    launch_tile<Out, true>(w, row0, rows, col0, cols, out, ldo, stream);
  } else {
    launch_tile<Out, false>(w, row0, rows, col0, cols, out, ldo, stream);
  }
}

}  // namespace

void q4_tile_dequant(DType dtype, const Q4TileWeights& w, int64_t row0, int64_t rows, int64_t col0, int64_t cols,
                     void* out, int64_t ldo, cudaStream_t stream, bool l2_hints) {
  QB_CHECK(w.K % 64 == 0 && row0 % 16 == 0 && col0 % 64 == 0 && cols % 64 == 0 && rows > 0 && cols > 0 &&
               row0 + rows <= q4_n_tiles(w.N) * 16 && col0 + cols <= w.K && ldo >= cols,
           kInvalidInput, "q4_tile_dequant: bad range rows [{}, +{}) cols [{}, +{}) of [{}, {}] (ld {})", row0, rows,
           col0, cols, w.N, w.K, ldo);
  QB_CHECK(ldo % (dtype == DType::kF32 ? 4 : 8) == 0 && reinterpret_cast<uintptr_t>(out) % 16 == 0, kInvalidInput,
           "q4_tile_dequant: output must be 16-byte aligned with 16-byte rows (ld {})", ldo);
  switch (dtype) {
    case DType::kF32: launch_tile<float>(w, row0, rows, col0, cols, out, ldo, l2_hints, stream); break;
    case DType::kF16: launch_tile<__half>(w, row0, rows, col0, cols, out, ldo, l2_hints, stream); break;
    case DType::kBF16: launch_tile<__nv_bfloat16>(w, row0, rows, col0, cols, out, ldo, l2_hints, stream); break;
  }
}

void q4_flat_dequant(DType dtype, const Q4FlatWeights& w, void* out, cudaStream_t stream) {
  QB_CHECK(w.N > 0 && w.K > 0 && w.blocksize > 0, kInvalidInput, "q4_flat_dequant: empty weight or block size");
  QB_CHECK(w.mode != Q4ScaleMode::kAffine || w.K % w.blocksize == 0, kInvalidInput,
           "q4_flat_dequant: group {} does not divide K = {}", w.blocksize, w.K);
  QB_CHECK(w.mode != Q4ScaleMode::kAbsmaxNested, kInvalidInput, "q4_flat_dequant: resolve nested absmax first");
  const int64_t bytes = (w.N * w.K + 1) / 2;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((bytes + 255) / 256, 132 * 32));
  switch (dtype) {
    case DType::kF32: q4_flat_dequant_kernel<float><<<blocks, 256, 0, stream>>>(w, static_cast<float*>(out)); break;
    case DType::kF16: q4_flat_dequant_kernel<__half><<<blocks, 256, 0, stream>>>(w, static_cast<__half*>(out)); break;
    case DType::kBF16:
      q4_flat_dequant_kernel<__nv_bfloat16><<<blocks, 256, 0, stream>>>(w, static_cast<__nv_bfloat16*>(out));
      break;
  }
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace qb::kernels
