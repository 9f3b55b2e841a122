// Batched decode attention grouped by K/V head (GQA): one block per (sequence, K/V head, part of its query heads).
//
// Why: the per-query-head kernel (decode_attention.cu) reads a K/V head's cached rows once for each of its query
// heads; at batch 16 on Qwen2-7B (7 query heads a K/V head) that was 448 blocks reading 7x the cache, 14% of an nf4
// decode step (BENCHMARKS.md, kernel trace). Here a block reads each K and V row once for up to 8 query heads (2 to 4
// by default: grouped_heads_per_block). Used where the per-head kernel would run its light variant (more blocks than
// SMs: batched decode) and a K/V head has several query heads.
//
// Arithmetic: for each query head, exactly the per-head light variant's, in the same order (the four dot-product
// chains, the softmax's per-thread / warp / block reduction tree, the V accumulation and its shuffle or shared-memory
// reduction), so the output is bit-identical to that kernel's whatever the grouping (tested).
//
// Block: kThreads threads. Thread t < head_dim rotates q of every head of the block and the new k at dimension t; the
// block of part 0 writes the new k, v into the caches at *position; every block takes the new row from its own shared
// copy and reads the cache only below *position (written by earlier steps).
//   scores: one position per thread (K row in kInFlight 16-byte loads), the block's heads' dot products from it;
//   softmax: per head, block max and sum through per-warp partials (two barriers for all heads);
//   output: thread (r, piece) accumulates p[h][t] * V[t][piece] for every head h from one load of the piece.
// Shared memory: k_new [D] | v_new [D] (T) | q [heads][D] | scores [heads][capacity] | partial [kThreads x 8] (fp32).
#include <algorithm>
#include <cfloat>

#include "decode_attention_common.cuh"
#include "decode_attention_grouped.h"
#include "dtype_utils.cuh"
#include "pdl.cuh"
#include "quantbench/core/env_switch.h"
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/device_limits.h"

namespace qb::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kInFlight = 8;  // 16-byte loads in flight per thread, as the per-head light variant
constexpr int kPartialFloats = kThreads * 8;
constexpr int kStaticSharedBytes = 2 * kMaxGroupedHeads * kWarps * sizeof(float);

// H: the most query heads a block takes (registers: H x (8 + 4) fp32 accumulators; 4 fits two blocks an SM).
template <typename T, int H>
__global__ void __launch_bounds__(kThreads, H <= 4 ? 2 : 1) decode_attention_grouped_kernel(
    const T* qkv, T* k_cache, T* v_cache, const int64_t* position, const float* rope_cos, const float* rope_sin,
    T* out, int num_heads, int num_kv_heads, int head_dim, int rotary_dim, int64_t capacity, float scale,
    int heads_per_block) {
  extern __shared__ __align__(16) unsigned char shared_raw[];
  __shared__ float warp_part[2][kMaxGroupedHeads][kWarps];
  static_assert(sizeof(warp_part) == kStaticSharedBytes, "the host subtracts this from the dynamic allowance");
  static_assert(H <= kMaxGroupedHeads, "warp_part holds kMaxGroupedHeads heads");
  constexpr int kVec = 16 / sizeof(T);
  const int group = num_heads / num_kv_heads;
  const int parts = (group + heads_per_block - 1) / heads_per_block;
  const int part = blockIdx.x % parts;
  const int kv_head = (blockIdx.x / parts) % num_kv_heads;
  const int b = blockIdx.x / (parts * num_kv_heads);
  const int head0 = kv_head * group + part * heads_per_block;
  const int heads = min(heads_per_block, group - part * heads_per_block);  // block-uniform, 1..H
  const bool writes_cache = part == 0;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  T* k_new = reinterpret_cast<T*>(shared_raw);                  // [D]
  T* v_new = k_new + head_dim;                                  // [D]
  float* q_s = reinterpret_cast<float*>(v_new + head_dim);      // [heads_per_block][D]
  float* scores = q_s + int64_t(heads_per_block) * head_dim;    // [heads_per_block][capacity]
  float* partial = scores + int64_t(heads_per_block) * capacity;  // [kPartialFloats]
  const attention::BlockRows<T> rows(qkv, k_cache, v_cache, b, head0, kv_head, num_heads, num_kv_heads, head_dim,
                                     capacity);
  T* keys = rows.keys;
  T* values = rows.values;

  // ---- before the PDL wait: weights-only reads (pdl.cuh rule 3 exception: followed by the o projection) ----
  pdl_launch_dependents();
  const int64_t pos = *position;  // written two or more launches back (pdl.cuh)
  attention::prefetch_cached_rows(writes_cache, keys, values, pos, head_dim);
  float rope_c, rope_s;
  attention::rope_frequency(rope_cos, rope_sin, rotary_dim, pos, rope_c, rope_s);
  pdl_wait();

  // ---- 1. rotate q of every head and the new k; write the cache ----
  if (threadIdx.x < head_dim) {
    const int d = threadIdx.x;
    const bool has_rope = rope_cos != nullptr;
    const T v_d = rows.v_in[d];
    k_new[d] = from_float<T>(attention::rotated(rows.k_in, d, rotary_dim, has_rope, rope_c, rope_s));
    v_new[d] = v_d;
    if (writes_cache) {
      keys[pos * head_dim + d] = k_new[d];
      values[pos * head_dim + d] = v_d;
    }
    for (int h = 0; h < heads; ++h) {
      q_s[h * head_dim + d] =
          round_to<T>(attention::rotated(rows.q_in + h * head_dim, d, rotary_dim, has_rope, rope_c, rope_s));
    }
  }
  __syncthreads();

  // ---- 2. scores: one position per thread, every head of the block from one read of the row ----
  float local_max[H];
#pragma unroll
  for (int h = 0; h < H; ++h) local_max[h] = -FLT_MAX;
  for (int64_t t = threadIdx.x; t <= pos; t += kThreads) {
    const T* row = t == pos ? k_new : keys + t * head_dim;
    float acc4[H][4];
#pragma unroll
    for (int h = 0; h < H; ++h) acc4[h][0] = acc4[h][1] = acc4[h][2] = acc4[h][3] = 0.f;
    for (int d0 = 0; d0 < head_dim; d0 += kInFlight * kVec) {
      uint4 raw[kInFlight];
#pragma unroll
      for (int u = 0; u < kInFlight; ++u) {
        const int d = d0 + u * kVec;
        raw[u] = d < head_dim ? *reinterpret_cast<const uint4*>(row + d) : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int h = 0; h < H; ++h) {
        if (h >= heads) break;
        attention::dot_pieces<T, kInFlight>(raw, d0, head_dim, q_s + h * head_dim, acc4[h]);
      }
    }
#pragma unroll
    for (int h = 0; h < H; ++h) {
      if (h >= heads) break;
      const float score = ((acc4[h][0] + acc4[h][1]) + (acc4[h][2] + acc4[h][3])) * scale;
      scores[h * capacity + t] = score;
      local_max[h] = fmaxf(local_max[h], score);
    }
  }

  // ---- 3. softmax per head; scores become exp(score - max) ----
#pragma unroll
  for (int h = 0; h < H; ++h) {
    if (h >= heads) break;
    const float m = warp_max(local_max[h]);
    if (lane == 0) warp_part[0][h][warp] = m;
  }
  __syncthreads();
#pragma unroll
  for (int h = 0; h < H; ++h) {
    if (h >= heads) break;
    float m = warp_part[0][h][0];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) m = fmaxf(m, warp_part[0][h][w]);
    float local_sum = 0.f;
    for (int64_t t = threadIdx.x; t <= pos; t += kThreads) {
      const float e = __expf(scores[h * capacity + t] - m);
      scores[h * capacity + t] = e;
      local_sum += e;
    }
    local_sum = warp_sum(local_sum);
    if (lane == 0) warp_part[1][h][warp] = local_sum;
  }
  __syncthreads();  // also: every exp in scores[] visible

  // ---- 4. output: thread (r0, piece) walks rows r0, r0 + rows_per_pass, ...; one V load feeds every head ----
  const attention::OutputThreads o(head_dim, kVec, kThreads);
  const int rows_per_pass = o.rows_per_pass, piece = o.piece, r0 = o.r0;
  float acc[H][kVec];
#pragma unroll
  for (int h = 0; h < H; ++h)
#pragma unroll
    for (int j = 0; j < kVec; ++j) acc[h][j] = 0.f;
  if (r0 < rows_per_pass) {
    for (int64_t t0 = r0; t0 <= pos; t0 += kInFlight * rows_per_pass) {
      uint4 raw[kInFlight];
#pragma unroll
      for (int u = 0; u < kInFlight; ++u) {
        const int64_t t = t0 + int64_t(u) * rows_per_pass;
        const T* row = t == pos ? v_new : values + t * head_dim;
        raw[u] = t <= pos ? *reinterpret_cast<const uint4*>(row + piece * kVec) : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int h = 0; h < H; ++h) {
        if (h >= heads) break;
#pragma unroll
        for (int u = 0; u < kInFlight; ++u) {
          const int64_t t = t0 + int64_t(u) * rows_per_pass;
          const float p = t <= pos ? scores[h * capacity + t] : 0.f;
          const T* v = reinterpret_cast<const T*>(&raw[u]);
#pragma unroll
          for (int j = 0; j < kVec; ++j) acc[h][j] += p * to_float(v[j]);
        }
      }
    }
  }
#pragma unroll
  for (int h = 0; h < H; ++h) {
    if (h >= heads) break;
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) sum += warp_part[1][h][w];
    const float inv_sum = 1.f / sum;
    T* out_row = out + int64_t(b) * num_heads * head_dim + int64_t(head0 + h) * head_dim;
    // partial is rewritten for the next head: the shared-memory form ends with a barrier.
    attention::store_head_output<T, kVec, true>(acc[h], inv_sum, o, partial, out_row, head_dim, kThreads);
  }
}

// Every instance may take max_shared bytes of dynamic shared memory (once per process).
template <typename... Ts>
bool allow_shared_memory(int max_shared) {
  for (const void* kernel : {reinterpret_cast<const void*>(decode_attention_grouped_kernel<Ts, 4>)...,
                             reinterpret_cast<const void*>(decode_attention_grouped_kernel<Ts, 8>)...}) {
    QB_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, max_shared));
  }
  return true;
}

}  // namespace

int grouped_heads_per_block(int64_t batch, int64_t num_heads, int64_t num_kv_heads) {
  const int64_t group = num_heads / num_kv_heads;
  if (group < 2) return 0;
  // QB_ATTENTION_GROUP_HEADS=N: N query heads a block (0 = the per-head kernel); A/B runs.
  static const int forced = env_int("QB_ATTENTION_GROUP_HEADS", -1, -1);
  if (forced >= 0) return static_cast<int>(std::min<int64_t>({forced, group, kMaxGroupedHeads}));
  // The fewest heads a block (at least 2) whose grid the chip holds at once, at most 4 (BENCHMARKS.md, session 27:
  // Qwen2-7B and TinyLlama at batch 8 / 16 / 32 were fastest with 2 / 2 / 4 heads a block, i.e. grids of 128-256
  // blocks of the 4-head form, two an SM; 7 or 8 heads a block in half as many blocks lost to the per-head kernel).
  const int64_t resident =
      static_cast<int64_t>(std::max(
          resident_blocks_per_sm(reinterpret_cast<const void*>(decode_attention_grouped_kernel<__nv_bfloat16, 4>),
                                 kThreads),
          1)) *
      sm_count();
  const int64_t most = std::min<int64_t>(group, 4);
  for (int64_t heads = 2; heads < most; ++heads) {
    if (batch * num_kv_heads * ((group + heads - 1) / heads) <= resident) return static_cast<int>(heads);
  }
  return static_cast<int>(most);
}

bool decode_attention_grouped(const void* qkv, void* k_cache, void* v_cache, const int64_t* position,
                              const float* rope_cos, const float* rope_sin, void* out, int64_t batch,
                              int64_t num_heads, int64_t num_kv_heads, int64_t head_dim, int64_t rotary_dim,
                              int64_t capacity, float scale, DType dtype, int heads_per_block, cudaStream_t stream) {
  const int64_t group = num_heads / num_kv_heads;
  if (heads_per_block < 1 || heads_per_block > kMaxGroupedHeads || heads_per_block > group) return false;
  const int64_t elem_bytes = dtype == DType::kF32 ? 4 : 2;
  const size_t shared_bytes =
      static_cast<size_t>(2 * head_dim * elem_bytes) +
      sizeof(float) * static_cast<size_t>(heads_per_block * (head_dim + capacity) + kPartialFloats);
  const int max_shared = max_shared_per_block_optin() - kStaticSharedBytes;
  if (shared_bytes > static_cast<size_t>(max_shared)) return false;  // the per-head kernel needs less
  static const bool allowed = allow_shared_memory<float, __half, __nv_bfloat16>(max_shared);
  (void)allowed;
  const int64_t parts = (group + heads_per_block - 1) / heads_per_block;
  QB_DISPATCH_DTYPE(dtype, T, {
    launch_pdl(heads_per_block <= 4 ? decode_attention_grouped_kernel<T, 4> : decode_attention_grouped_kernel<T, 8>,
               static_cast<unsigned>(batch * num_kv_heads * parts), kThreads, shared_bytes, stream,
               static_cast<const T*>(qkv), static_cast<T*>(k_cache), static_cast<T*>(v_cache), position, rope_cos,
               rope_sin, static_cast<T*>(out), static_cast<int>(num_heads), static_cast<int>(num_kv_heads),
               static_cast<int>(head_dim), static_cast<int>(rotary_dim), capacity, scale, heads_per_block);
  });
  QB_CUDA_CHECK_LAUNCH();
  return true;
}

}  // namespace qb::kernels
