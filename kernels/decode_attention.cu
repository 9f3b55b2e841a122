// One decode step of attention (contract in include/quantbench/kernels/decode_ops.h).
//
// Grid: batch x kv_heads x (group / heads_per_block) blocks of 256 threads (8 warps). A block owns
// `heads_per_block` (<= 8) of the query heads that read one K/V head of one sequence. With GQA a K/V
// head serves several blocks: one query head per block gives Qwen2-7B 28 blocks a sequence instead
// of 4 (a grid of 4 blocks left 128 SMs idle and made attention the largest cost of a decode step
// after the GEMVs); the K/V rows they share are read again from L2.
// Only the block of the head's first split writes the new k, v into the caches at *position; every
// block reads the new position's k, v from its own shared copy (the exact values written), and the
// cache only below *position (written by earlier steps), so no grid-wide ordering is needed.
//
// Phases, each parallel over all 256 threads:
//  1. q heads and the new k, v staged in shared memory (fp32); rotary embedding (rotate_half,
//     first rotary_dim dims) on q and k; q rounded to T as transformers' rotated q is; the new k, v
//     kept in shared memory as T and (first split only) written into the caches at *position.
//  2. scores: one thread per cached position t, dot products of K[t] (16-byte loads) with the
//     block's q heads (q read from shared memory as broadcasts), into scores[g][t] (shared).
//  3. softmax per head: one warp per head over its scores (max, exp, sum).
//  4. output: warp w takes positions t = w, w + 8, ...; lane l accumulates dims l, l + 32, ... of
//     p[g][t] * V[t] for every head; the 8 warps' partial sums are added in shared memory.
// Shared memory: k_new [D] | v_new [D] (T) | q [G][D] | scores [G][capacity] | inv_sum [8] |
// partial [8][G][D] (fp32), G = heads_per_block.
#include <cfloat>

#include "dtype_utils.cuh"
#include "pdl.cuh"
#include "quantbench/core/error.h"
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/decode_ops.h"

namespace qb::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxGroup = 8;
constexpr int kMaxDimsPerLane = 8;  // head_dim <= 256

__device__ __forceinline__ float rotary(const float* x, int d, int rotary_dim, const float* cos_row,
                                        const float* sin_row) {
  if (d >= rotary_dim) return x[d];
  const int half = rotary_dim / 2;
  return d < half ? x[d] * cos_row[d] - x[d + half] * sin_row[d]
                  : x[d] * cos_row[d - half] + x[d - half] * sin_row[d - half];
}

// Eight (or four, for fp32) elements of a K row, converted to fp32.
template <typename T>
struct Vec16 {
  static constexpr int kElems = 16 / sizeof(T);
  __device__ __forceinline__ static void load(const T* src, float* dst) {
    const uint4 raw = *reinterpret_cast<const uint4*>(src);
    const T* elems = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int j = 0; j < kElems; ++j) dst[j] = to_float(elems[j]);
  }
};

template <typename T>
__global__ void __launch_bounds__(kThreads) decode_attention_kernel(
    const T* qkv, T* k_cache, T* v_cache, const int64_t* position, const float* rope_cos, const float* rope_sin,
    T* out, int num_heads, int num_kv_heads, int head_dim, int rotary_dim, int64_t capacity, float scale,
    int heads_per_block) {
  extern __shared__ __align__(16) unsigned char shared_raw[];
  const int group = heads_per_block;  // query heads of this block
  const int splits = num_heads / num_kv_heads / heads_per_block;
  const int split = blockIdx.x % splits;
  const int b = blockIdx.x / splits / num_kv_heads, kv_head = blockIdx.x / splits % num_kv_heads;
  const int first_head = kv_head * (num_heads / num_kv_heads) + split * heads_per_block;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  pdl_wait();  // launched with PDL (pdl.cuh): the qkv row, position and caches come from earlier kernels
  pdl_launch_dependents();
  const int64_t pos = *position;
  // head_dim is a multiple of 16 / sizeof(T): both T rows end on a 16-byte boundary.
  T* k_new = reinterpret_cast<T*>(shared_raw);           // [D], what the cache holds at pos
  T* v_new = k_new + head_dim;                           // [D]
  float* q_s = reinterpret_cast<float*>(v_new + head_dim);  // [G][D]
  float* scores = q_s + group * head_dim;                // [G][capacity]
  float* inv_sum = scores + group * capacity;            // [G]
  float* partial = inv_sum + kMaxGroup;                  // [warps][G][D]; also stages raw k, v first
  const int64_t qkv_row = int64_t(num_heads + 2 * num_kv_heads) * head_dim;
  const T* q_in = qkv + b * qkv_row + int64_t(first_head) * head_dim;
  const T* k_in = qkv + b * qkv_row + int64_t(num_heads) * head_dim + int64_t(kv_head) * head_dim;
  const T* v_in = k_in + int64_t(num_kv_heads) * head_dim;
  const float* cos_row = rope_cos != nullptr ? rope_cos + pos * (rotary_dim / 2) : nullptr;
  const float* sin_row = rope_sin != nullptr ? rope_sin + pos * (rotary_dim / 2) : nullptr;

  // ---- 1. stage, rotate, write the cache ----
  float* k_raw = partial;
  for (int i = threadIdx.x; i < group * head_dim; i += kThreads) q_s[i] = to_float(q_in[i]);
  for (int i = threadIdx.x; i < head_dim; i += kThreads) k_raw[i] = to_float(k_in[i]);
  __syncthreads();
  float q_rot[kMaxGroup];  // group * head_dim <= 8 * kThreads (host-checked)
#pragma unroll
  for (int j = 0; j < kMaxGroup; ++j) {
    const int i = threadIdx.x + j * kThreads;
    if (i < group * head_dim) {
      const int g = i / head_dim, d = i % head_dim;
      q_rot[j] = cos_row != nullptr ? rotary(q_s + g * head_dim, d, rotary_dim, cos_row, sin_row) : q_s[i];
    }
  }
  const float k_rot = threadIdx.x < head_dim
                          ? (cos_row != nullptr ? rotary(k_raw, threadIdx.x, rotary_dim, cos_row, sin_row) : k_raw[threadIdx.x])
                          : 0.f;
  __syncthreads();
#pragma unroll
  for (int j = 0; j < kMaxGroup; ++j) {
    const int i = threadIdx.x + j * kThreads;
    if (i < group * head_dim) q_s[i] = round_to<T>(q_rot[j]);
  }
  const int64_t cache_base = (int64_t(b) * num_kv_heads + kv_head) * capacity * head_dim;
  T* keys = k_cache + cache_base;
  T* values = v_cache + cache_base;
  if (threadIdx.x < head_dim) {  // head_dim <= kThreads (host-checked)
    k_new[threadIdx.x] = from_float<T>(k_rot);
    v_new[threadIdx.x] = v_in[threadIdx.x];
    if (split == 0) {
      keys[pos * head_dim + threadIdx.x] = k_new[threadIdx.x];
      values[pos * head_dim + threadIdx.x] = v_in[threadIdx.x];
    }
  }
  __syncthreads();  // k_new, v_new and q_s visible to every thread

  // ---- 2. scores: one position per thread ----
  constexpr int kVec = Vec16<T>::kElems;
  for (int64_t t = threadIdx.x; t <= pos; t += kThreads) {
    float acc[kMaxGroup];
#pragma unroll
    for (int g = 0; g < kMaxGroup; ++g) acc[g] = 0.f;
    const T* row = t == pos ? k_new : keys + t * head_dim;
#pragma unroll 4
    for (int d0 = 0; d0 < head_dim; d0 += kVec) {
      float k[kVec];
      Vec16<T>::load(row + d0, k);
#pragma unroll
      for (int g = 0; g < kMaxGroup; ++g) {
        if (g < group) {
#pragma unroll
          for (int j = 0; j < kVec; ++j) acc[g] += q_s[g * head_dim + d0 + j] * k[j];
        }
      }
    }
#pragma unroll
    for (int g = 0; g < kMaxGroup; ++g) {
      if (g < group) scores[g * capacity + t] = acc[g] * scale;
    }
  }
  __syncthreads();

  // ---- 3. softmax, one warp per head ----
  for (int g = warp; g < group; g += kWarps) {
    float* s = scores + g * capacity;
    float m = -FLT_MAX;
    for (int64_t t = lane; t <= pos; t += 32) m = fmaxf(m, s[t]);
    m = warp_max(m);
    float sum = 0.f;
    for (int64_t t = lane; t <= pos; t += 32) {
      const float e = __expf(s[t] - m);
      s[t] = e;
      sum += e;
    }
    sum = warp_sum(sum);
    if (lane == 0) inv_sum[g] = 1.f / sum;
  }
  __syncthreads();

  // ---- 4. output: positions split over warps, dims over lanes ----
  float acc[kMaxGroup][kMaxDimsPerLane];
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
#pragma unroll
    for (int i = 0; i < kMaxDimsPerLane; ++i) acc[g][i] = 0.f;
  }
  // Unrolled so that several positions' V loads are in flight (the loop is latency-bound otherwise);
  // 2, not 4: acc[8][8] plus four rows of V spill at the 255-register limit.
#pragma unroll 2
  for (int64_t t = warp; t <= pos; t += kWarps) {
    const T* row = t == pos ? v_new : values + t * head_dim;
    float v[kMaxDimsPerLane];
#pragma unroll
    for (int i = 0; i < kMaxDimsPerLane; ++i) {
      const int d = lane + 32 * i;
      v[i] = d < head_dim ? to_float(row[d]) : 0.f;
    }
#pragma unroll
    for (int g = 0; g < kMaxGroup; ++g) {
      if (g < group) {
        const float p = scores[g * capacity + t];
#pragma unroll
        for (int i = 0; i < kMaxDimsPerLane; ++i) acc[g][i] += p * v[i];
      }
    }
  }
  float* mine = partial + warp * group * head_dim;
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
    if (g < group) {
#pragma unroll
      for (int i = 0; i < kMaxDimsPerLane; ++i) {
        const int d = lane + 32 * i;
        if (d < head_dim) mine[g * head_dim + d] = acc[g][i];
      }
    }
  }
  __syncthreads();
  T* out_row = out + int64_t(b) * num_heads * head_dim + int64_t(first_head) * head_dim;
  for (int i = threadIdx.x; i < group * head_dim; i += kThreads) {
    float total = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) total += partial[w * group * head_dim + i];
    out_row[i] = from_float<T>(total * inv_sum[i / head_dim]);
  }
}

template <typename T>
void launch(const void* qkv, void* k_cache, void* v_cache, const int64_t* position, const float* rope_cos,
            const float* rope_sin, void* out, int64_t batch, int64_t num_heads, int64_t num_kv_heads,
            int64_t head_dim, int64_t rotary_dim, int64_t capacity, float scale, int64_t heads_per_block,
            size_t shared_bytes, cudaStream_t stream) {
  static const bool configured = [] {
    int device = 0, max_shared = 0;
    QB_CUDA_CHECK(cudaGetDevice(&device));
    QB_CUDA_CHECK(cudaDeviceGetAttribute(&max_shared, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    QB_CUDA_CHECK(cudaFuncSetAttribute(decode_attention_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       max_shared));
    return true;
  }();
  (void)configured;
  launch_pdl(decode_attention_kernel<T>, static_cast<unsigned>(batch * num_heads / heads_per_block), kThreads,
      shared_bytes, stream, static_cast<const T*>(qkv), static_cast<T*>(k_cache), static_cast<T*>(v_cache), position, rope_cos, rope_sin,
      static_cast<T*>(out), static_cast<int>(num_heads), static_cast<int>(num_kv_heads), static_cast<int>(head_dim),
      static_cast<int>(rotary_dim), capacity, scale, static_cast<int>(heads_per_block));
}

}  // namespace

void decode_attention(const void* qkv, void* k_cache, void* v_cache, const int64_t* position, const float* rope_cos,
                      const float* rope_sin, void* out, int64_t batch, int64_t num_heads, int64_t num_kv_heads,
                      int64_t head_dim, int64_t rotary_dim, int64_t capacity, float scale, DType dtype,
                      cudaStream_t stream) {
  QB_CHECK(num_kv_heads > 0 && num_heads % num_kv_heads == 0, kInvalidInput,
           "decode_attention: {} heads do not divide into {} kv heads", num_heads, num_kv_heads);
  const int64_t vec = 16 / (dtype == DType::kF32 ? 4 : 2);
  QB_CHECK(head_dim % vec == 0 && head_dim <= 32 * kMaxDimsPerLane && rotary_dim <= head_dim && rotary_dim % 2 == 0,
           kUnsupported, "decode_attention: head_dim {} / rotary_dim {} unsupported (multiple of {}, at most {})",
           head_dim, rotary_dim, vec, 32 * kMaxDimsPerLane);
  // One query head per block (see the grid note at the top); any GQA group size then fits.
  const int64_t heads_per_block = 1;
  static_assert(kMaxGroup >= 1, "heads_per_block <= kMaxGroup");
  const int64_t elem_bytes = dtype == DType::kF32 ? 4 : 2;
  const size_t shared_bytes =
      static_cast<size_t>(2 * head_dim * elem_bytes) +
      sizeof(float) * static_cast<size_t>(heads_per_block * head_dim + heads_per_block * capacity + kMaxGroup +
                                          std::max<int64_t>(kWarps * heads_per_block * head_dim, head_dim));
  int device = 0, max_shared = 0;
  QB_CUDA_CHECK(cudaGetDevice(&device));
  QB_CUDA_CHECK(cudaDeviceGetAttribute(&max_shared, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  QB_CHECK(shared_bytes <= static_cast<size_t>(max_shared), kUnsupported,
           "decode_attention: scores for {} cached positions x {} heads need {} bytes of shared memory, the GPU "
           "allows {}; use a shorter --prompt-len + --gen-len",
           capacity, heads_per_block, shared_bytes, max_shared);
  QB_DISPATCH_DTYPE(dtype, T,
                    launch<T>(qkv, k_cache, v_cache, position, rope_cos, rope_sin, out, batch, num_heads, num_kv_heads,
                              head_dim, rotary_dim, capacity, scale, heads_per_block, shared_bytes, stream));
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace qb::kernels
