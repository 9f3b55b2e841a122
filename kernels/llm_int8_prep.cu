// LLM.int8() activation side: outlier columns, row scales, int8 activations (or their 16-bit
// fake-quantized form for the prefill GEMM), and the prefill driver.
//
// Contract (bitsandbytes int8_vectorwise_quant with a threshold, kInt8VectorQuant on CUDA):
//   x [M, ldx] fp16/bf16, K % 8 == 0, ldx % 8 == 0, 16-byte aligned. Values are first rounded to
//   fp16 (MatMul8bitLt casts A to float16 before quantizing), a = |fp16(x)|.
//   outlier element: threshold > 0 and a >= threshold; outlier column: any outlier element in it.
//   SCA[m] = max of a over the row's non-outlier elements (0 when none).
//   CA[m, k] = 0 in outlier columns and for SCA == 0, else round-half-even(fp16(x) * inv) with
//   inv = 127 * (1 / SCA) in fp32, IEEE reciprocal then product: bitsandbytes' default (PyTorch)
//   backend writes `A * (127.0 / row_stats)`, which Python evaluates as reciprocal(row_stats) * 127
//   (the CPU fixture depends on it); bnb's CUDA kernel uses __fdividef(127, absmax), an approximate
//   reciprocal that can differ in the last bit of inv and so, at exact .5 ties, in CA.
//   z[m, k] = x[m, k] in outlier columns, else T(CA[m, k] * (SCA[m] / 127)).
// Kernels
//   quantize_small_kernel: one block of 1024 threads (decode, M <= 32, K <= 64K), one thread per 8
//     columns: pass 1 over m (flags into a shared-memory mask, row maxima reduced per row across the
//     block), pass 2 writes CA. One launch, no memset.
//   stats_kernel: grid over (2048-column, 16-row) tiles, 8 columns per thread; maxima via a warp
//     max and atomicMax on the float bits (non-negative floats order like their bits), flags via
//     atomicOr; sca and mask zeroed by cudaMemsetAsync first.
//   quantize_rows_kernel<OUT>: elementwise, 8 columns per thread, writes CA (int8) or z (T).
#include <algorithm>

#include "gemv_mma_tile.cuh"
#include "llm_int8_quant.cuh"
#include "pdl.cuh"
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/int8_dequant.h"
#include "quantbench/kernels/llm_int8.h"

namespace qb::kernels {
namespace {

using namespace llm_int8_quant;

constexpr size_t kAlign = 256;
size_t align_up(size_t v) { return (v + kAlign - 1) / kAlign * kAlign; }
int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Decode sizes: one block, one thread per 8 columns (a 16-byte load per row), the outlier mask
// assembled in shared memory (kSmallMaxWords words: K up to 64K; larger K takes the multi-block path).
constexpr int kSmallMaxWords = 2048;

template <typename T>
__global__ void __launch_bounds__(1024) quantize_small_kernel(const T* __restrict__ x, int64_t ldx, int M, int K,
                                                               float threshold, int8_t* __restrict__ ca, int64_t ld,
                                                               float* __restrict__ sca,
                                                               uint32_t* __restrict__ mask) {
  __shared__ float scratch[32];
  __shared__ float row_scale[kGemvMaxM];
  __shared__ uint32_t mask_words[kSmallMaxWords];
  const int words = static_cast<int>(ld / 32);
  const int vecs = static_cast<int>(ld / 8);
  // Launched with PDL (pdl.cuh) and always followed by llm_int8_gemv, whose pre-wait part reads weights only
  // (rule 3's exception): let it launch now, then wait for x.
  pdl_launch_dependents();
  for (int w = threadIdx.x; w < words; w += blockDim.x) mask_words[w] = 0u;
  pdl_wait();
  __syncthreads();
  for (int m = 0; m < M; ++m) {  // every row's outliers first: a column is an outlier if any row has one there
    const float row_max = outlier_pass(x + (int64_t)m * ldx, K, vecs, threshold, mask_words, scratch);
    if (threadIdx.x == 0) {
      sca[m] = row_max;
      row_scale[m] = row_max;
    }
  }
  __syncthreads();
  for (int w = threadIdx.x; w < words; w += blockDim.x) mask[w] = mask_words[w];
  for (int m = 0; m < M; ++m) quantize_pass(x + (int64_t)m * ldx, K, vecs, mask_words, row_scale[m], ca + (int64_t)m * ld);
}

constexpr int kStatsRows = 16;

template <typename T>
__global__ void __launch_bounds__(256) stats_kernel(const T* __restrict__ x, int64_t ldx, int M, int K,
                                                     float threshold, float* __restrict__ sca,
                                                     uint32_t* __restrict__ mask) {
  const int64_t c0 = ((int64_t)blockIdx.x * 256 + threadIdx.x) * 8;
  const int m0 = blockIdx.y * kStatsRows;
  const bool split = threshold > 0.0f;
  uint32_t flags = 0;
  for (int r = 0; r < kStatsRows; ++r) {
    const int m = m0 + r;
    if (m >= M) break;  // block-uniform
    float local_max = 0.0f;
    if (c0 < K) {
      float vals[8];
      load8(x + (int64_t)m * ldx + c0, vals);
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const float a = fabsf(vals[e]);
        if (split && a >= threshold) {
          flags |= 1u << e;
        } else {
          local_max = fmaxf(local_max, a);
        }
      }
    }
    const unsigned warp_max = __reduce_max_sync(0xffffffffu, __float_as_uint(local_max));
    if ((threadIdx.x & 31) == 0 && warp_max != 0u) atomicMax(reinterpret_cast<unsigned*>(sca + m), warp_max);
  }
  if (flags != 0) atomicOr(mask + c0 / 32, flags << (c0 % 32));
}

template <typename T, bool TO_INT8>
__global__ void quantize_rows_kernel(const T* __restrict__ x, int64_t ldx, int M, int K, int64_t ld_out,
                                     const float* __restrict__ sca, const uint32_t* __restrict__ mask,
                                     void* __restrict__ out) {
  using Traits = gemv::HalfTraits<T>;
  const int64_t vecs_per_row = ld_out / 8;
  const int64_t total = M * vecs_per_row;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t m = i / vecs_per_row;
    const int64_t c0 = (i % vecs_per_row) * 8;
    const float s = sca[m];
    const float inv = s > 0.0f ? 127.0f * (1.0f / s) : 0.0f;
    const uint32_t flags = (mask[c0 / 32] >> (c0 % 32)) & 0xffu;
    uint4 raw = make_uint4(0, 0, 0, 0);
    if (c0 < K) raw = gemv::load_cached16(x + m * ldx + c0);
    const T* v = reinterpret_cast<const T*>(&raw);
    if constexpr (TO_INT8) {
      uint32_t lo = 0, hi = 0;
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const bool outlier = (flags >> e) & 1u;
        const float xv = as_fp16_value(v[e]);
        const uint32_t q = static_cast<uint8_t>(outlier || s <= 0.0f ? 0 : quantize_value(xv, inv));
        if (e < 4) {
          lo |= q << (8 * e);
        } else {
          hi |= q << (8 * (e - 4));
        }
      }
      *reinterpret_cast<uint2*>(static_cast<int8_t*>(out) + m * ld_out + c0) = make_uint2(lo, hi);
    } else {
      T z[8];
      const float dequant = s / 127.0f;
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const bool outlier = (flags >> e) & 1u;
        const float xv = as_fp16_value(v[e]);
        const int q = outlier || s <= 0.0f ? 0 : quantize_value(xv, inv);
        z[e] = outlier ? v[e] : Traits::from_float(static_cast<float>(q) * dequant);
      }
      *reinterpret_cast<uint4*>(static_cast<T*>(out) + m * ld_out + c0) = *reinterpret_cast<const uint4*>(z);
    }
  }
}

unsigned grid_for(int64_t work, int threads) {
  const int64_t blocks = (work + threads - 1) / threads;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, 132 * 16));
}

void check_activations(const void* x, int64_t ldx, int64_t M, int64_t K, const char* what) {
  QB_CHECK(M >= 1 && M < (int64_t{1} << 31) && K >= 1 && K < (int64_t{1} << 30), kInvalidInput,
           "{}: M = {}, K = {} out of range", what, M, K);
  QB_CHECK(K % 8 == 0 && ldx >= K && ldx % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0, kInvalidInput,
           "{}: x must be 16-byte aligned with K = {} and ldx = {} multiples of 8 (pad x first)", what, K, ldx);
}

// Statistics for any M: memsets, then the multi-block kernel.
template <typename T>
void launch_stats(const T* x, int64_t ldx, int64_t M, int64_t K, float threshold, float* sca, uint32_t* mask,
                  int64_t mask_words, cudaStream_t stream) {
  QB_CUDA_CHECK(cudaMemsetAsync(sca, 0, M * sizeof(float), stream));
  QB_CUDA_CHECK(cudaMemsetAsync(mask, 0, mask_words * sizeof(uint32_t), stream));
  const dim3 grid(static_cast<unsigned>((K + 2047) / 2048), static_cast<unsigned>((M + kStatsRows - 1) / kStatsRows));
  stats_kernel<T><<<grid, 256, 0, stream>>>(x, ldx, static_cast<int>(M), static_cast<int>(K), threshold, sca, mask);
  QB_CUDA_CHECK_LAUNCH();
}

template <typename T>
void quantize_typed(const void* x, int64_t ldx, int64_t M, int64_t K, float threshold, const LlmInt8Activations& out,
                    cudaStream_t stream) {
  const T* xt = static_cast<const T*>(x);
  if (M <= kGemvMaxM && out.ld / 32 <= kSmallMaxWords) {
    launch_pdl(quantize_small_kernel<T>, 1, 1024, 0, stream, xt, ldx, static_cast<int>(M), static_cast<int>(K),
               threshold, out.ca, out.ld, out.sca, out.outlier_mask);
    QB_CUDA_CHECK_LAUNCH();
    return;
  }
  launch_stats<T>(xt, ldx, M, K, threshold, out.sca, out.outlier_mask, out.ld / 32, stream);
  quantize_rows_kernel<T, true><<<grid_for(M * (out.ld / 8), 256), 256, 0, stream>>>(
      xt, ldx, static_cast<int>(M), static_cast<int>(K), out.ld, out.sca, out.outlier_mask, out.ca);
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace

size_t llm_int8_activation_bytes(int64_t M, int64_t K) {
  const int64_t ld = round_up(K, 32);
  return align_up(static_cast<size_t>(M * ld)) + align_up(static_cast<size_t>(M * 4)) +
         align_up(static_cast<size_t>(ld / 32 * 4));
}

LlmInt8Activations llm_int8_activation_layout(void* workspace, int64_t M, int64_t K) {
  LlmInt8Activations a;
  a.ld = round_up(K, 32);
  char* base = static_cast<char*>(workspace);
  a.ca = reinterpret_cast<int8_t*>(base);
  base += align_up(static_cast<size_t>(M * a.ld));
  a.sca = reinterpret_cast<float*>(base);
  base += align_up(static_cast<size_t>(M * 4));
  a.outlier_mask = reinterpret_cast<uint32_t*>(base);
  return a;
}

void llm_int8_quantize_activations(HalfType dtype, const void* x, int64_t ldx, int64_t M, int64_t K, float threshold,
                                   const LlmInt8Activations& out, cudaStream_t stream) {
  check_activations(x, ldx, M, K, "llm_int8_quantize_activations");
  QB_CHECK(out.ca != nullptr && out.sca != nullptr && out.outlier_mask != nullptr && out.ld == round_up(K, 32) &&
               reinterpret_cast<uintptr_t>(out.ca) % 16 == 0,
           kInvalidInput, "llm_int8_quantize_activations: output layout does not match K = {}", K);
  if (dtype == HalfType::kF16) {
    quantize_typed<__half>(x, ldx, M, K, threshold, out, stream);
  } else {
    quantize_typed<__nv_bfloat16>(x, ldx, M, K, threshold, out, stream);
  }
}

size_t llm_int8_prefill_workspace_bytes(int64_t M, int64_t N, int64_t K, int64_t chunk_k) {
  const int64_t mask_words = round_up(K, 32) / 32;
  return align_up(static_cast<size_t>(M * 4)) + align_up(static_cast<size_t>(mask_words * 4)) +
         align_up(static_cast<size_t>(M * K * 2)) + int8_prefill_workspace_bytes(M, N, K, chunk_k);
}

void llm_int8_prefill(cublasHandle_t handle, HalfType dtype, const void* x, int64_t ldx, const Int8Weights& w,
                      const void* bias, void* y, int64_t ldy, int64_t M, float threshold, void* workspace,
                      size_t workspace_bytes, int64_t chunk_k, cudaStream_t stream) {
  check_activations(x, ldx, M, w.K, "llm_int8_prefill");
  const size_t need = llm_int8_prefill_workspace_bytes(M, w.N, w.K, chunk_k);
  QB_CHECK(workspace != nullptr && workspace_bytes >= need && reinterpret_cast<uintptr_t>(workspace) % kAlign == 0,
           kInvalidInput, "llm_int8_prefill: workspace of {} bytes (256-byte aligned) needed, got {}", need,
           workspace_bytes);
  const int64_t mask_words = round_up(w.K, 32) / 32;
  char* base = static_cast<char*>(workspace);
  float* sca = reinterpret_cast<float*>(base);
  base += align_up(static_cast<size_t>(M * 4));
  uint32_t* mask = reinterpret_cast<uint32_t*>(base);
  base += align_up(static_cast<size_t>(mask_words * 4));
  void* z = base;
  base += align_up(static_cast<size_t>(M * w.K * 2));
  const size_t rest = workspace_bytes - static_cast<size_t>(base - static_cast<char*>(workspace));
  const unsigned grid = grid_for(M * (w.K / 8), 256);
  if (dtype == HalfType::kF16) {
    launch_stats<__half>(static_cast<const __half*>(x), ldx, M, w.K, threshold, sca, mask, mask_words, stream);
    quantize_rows_kernel<__half, false><<<grid, 256, 0, stream>>>(static_cast<const __half*>(x), ldx,
                                                                  static_cast<int>(M), static_cast<int>(w.K), w.K,
                                                                  sca, mask, z);
  } else {
    launch_stats<__nv_bfloat16>(static_cast<const __nv_bfloat16*>(x), ldx, M, w.K, threshold, sca, mask, mask_words,
                                stream);
    quantize_rows_kernel<__nv_bfloat16, false><<<grid, 256, 0, stream>>>(static_cast<const __nv_bfloat16*>(x), ldx,
                                                                         static_cast<int>(M), static_cast<int>(w.K),
                                                                         w.K, sca, mask, z);
  }
  QB_CUDA_CHECK_LAUNCH();
  Int8Weights scaled = w;
  scaled.group_size = 0;
  scaled.scale_multiplier = kBnbInvScale;
  int8_prefill_matmul(handle, dtype, z, w.K, scaled, bias, y, ldy, M, base, rest, chunk_k, stream);
}

}  // namespace qb::kernels
