// The parts of a decode-attention block that the per-query-head kernel (decode_attention.cu) and the kernel grouped by
// K/V head (decode_attention_grouped.cu) share. One copy keeps their arithmetic the same: the grouped kernel is tested
// bit for bit against the per-head one.
#pragma once

#include <cstdint>

#include "dtype_utils.cuh"
#include "l2_prefetch.cuh"

namespace qb::kernels::attention {

// rotate_half (the transformers convention) at a dimension below rotary_dim: x its value, partner the value
// rotary_dim / 2 away (above it in the first half, below it in the second); c, s the cos and sin of its frequency.
__device__ __forceinline__ float rotate_half(float x, float partner, bool first_half, float c, float s) {
  return first_half ? x * c - partner * s : x * c + partner * s;
}

// Where a block's inputs live: q of query head `head` and the new k, v of kv_head in sequence b's qkv row
// [(H + 2 Hkv) * D], and the K/V head's cache rows [capacity][D].
template <typename T>
struct BlockRows {
  const T* q_in;
  const T* k_in;
  const T* v_in;
  T* keys;
  T* values;
  __device__ __forceinline__ BlockRows(const T* qkv, T* k_cache, T* v_cache, int b, int head, int kv_head,
                                       int num_heads, int num_kv_heads, int head_dim, int64_t capacity) {
    const int64_t qkv_row = int64_t(num_heads + 2 * num_kv_heads) * head_dim;
    q_in = qkv + b * qkv_row + int64_t(head) * head_dim;
    k_in = qkv + b * qkv_row + int64_t(num_heads) * head_dim + int64_t(kv_head) * head_dim;
    v_in = k_in + int64_t(num_kv_heads) * head_dim;
    const int64_t cache_base = (int64_t(b) * num_kv_heads + kv_head) * capacity * head_dim;
    keys = k_cache + cache_base;
    values = v_cache + cache_base;
  }
};

// Before the PDL wait (constant or older data only, pdl.cuh): every cached row of the K/V head asked of L2 at once by
// one thread of the block that writes the cache, and this thread's rotary frequency at the step's position
// (c = 1, s = 0 past rotary_dim or without rotary tables).
template <typename T>
__device__ __forceinline__ void prefetch_cached_rows(bool writes_cache, const T* keys, const T* values, int64_t pos,
                                                     int head_dim) {
  if (writes_cache && threadIdx.x == 0) {
    l2_prefetch(keys, pos * head_dim * int64_t(sizeof(T)));
    l2_prefetch(values, pos * head_dim * int64_t(sizeof(T)));
  }
}
__device__ __forceinline__ void rope_frequency(const float* rope_cos, const float* rope_sin, int rotary_dim,
                                               int64_t pos, float& c, float& s) {
  c = 1.f;
  s = 0.f;
  if (rope_cos != nullptr && threadIdx.x < rotary_dim) {
    const int half = rotary_dim / 2, i = int(threadIdx.x) % half;
    c = rope_cos[pos * half + i];
    s = rope_sin[pos * half + i];
  }
}

// Dimension d of a head rotated (or not, past rotary_dim or without rotary tables) with its partner's value read
// from the same row.
template <typename T>
__device__ __forceinline__ float rotated(const T* row, int d, int rotary_dim, bool has_rope, float c, float s) {
  const int half = rotary_dim / 2;
  const bool rotates = has_rope && d < rotary_dim;
  const int partner = !rotates ? d : d < half ? d + half : d - half;
  const float x = to_float(row[d]), x_p = to_float(row[partner]);
  return rotates ? rotate_half(x, x_p, d < half, c, s) : x;
}

// q . (kInFlight 16-byte pieces of a K row from column d0) into four chains: lane j of a piece feeds chain j % 4.
// q is fp32 in shared memory, 16-byte aligned (read as float4).
template <typename T, int kInFlight>
__device__ __forceinline__ void dot_pieces(const uint4 (&raw)[kInFlight], int d0, int head_dim, const float* q,
                                           float (&acc4)[4]) {
  constexpr int kVec = 16 / sizeof(T);
#pragma unroll
  for (int u = 0; u < kInFlight; ++u) {
    const T* k = reinterpret_cast<const T*>(&raw[u]);
    const int d = d0 + u * kVec;
    if (d < head_dim) {
#pragma unroll
      for (int j4 = 0; j4 < kVec / 4; ++j4) {
        const float4 qv = reinterpret_cast<const float4*>(q + d)[j4];
        acc4[0] += qv.x * to_float(k[4 * j4]);
        acc4[1] += qv.y * to_float(k[4 * j4 + 1]);
        acc4[2] += qv.z * to_float(k[4 * j4 + 2]);
        acc4[3] += qv.w * to_float(k[4 * j4 + 3]);
      }
    }
  }
}

// The output phase's thread (r0, piece): piece = the 16-byte piece of a V row it accumulates, rows r0, r0 +
// rows_per_pass, ... r0 varies fastest within a warp when rows_per_pass is a power of two that the block splits into
// evenly (every head_dim of 64, 128, 256), so the rows_per_pass partial sums of a piece meet in warp shuffles;
// otherwise (e.g. head_dim 80) the piece varies fastest and they meet in shared memory.
struct OutputThreads {
  int pieces, rows_per_pass, piece, r0;
  bool shuffle_reduce;
  __device__ __forceinline__ OutputThreads(int head_dim, int vec, int threads) {
    pieces = head_dim / vec;
    rows_per_pass = threads / pieces;
    shuffle_reduce =
        (rows_per_pass & (rows_per_pass - 1)) == 0 && rows_per_pass <= 32 && pieces * rows_per_pass == threads;
    piece = shuffle_reduce ? threadIdx.x / rows_per_pass : threadIdx.x % pieces;
    r0 = shuffle_reduce ? threadIdx.x % rows_per_pass : threadIdx.x / pieces;
  }
};

// The rows_per_pass partial sums of each piece added (shuffles, or `partial` [threads x kVec] in shared memory),
// times inv_sum, rounded and stored to out_row [D]. The shared-memory form is block-wide (barriers); kReusePartial
// adds the barrier after it that lets the caller write `partial` again.
template <typename T, int kVec, bool kReusePartial>
__device__ __forceinline__ void store_head_output(float (&acc)[kVec], float inv_sum, const OutputThreads& o,
                                                  float* partial, T* out_row, int head_dim, int threads) {
  if (o.shuffle_reduce) {  // block-uniform
    for (int offset = o.rows_per_pass / 2; offset > 0; offset >>= 1) {
#pragma unroll
      for (int j = 0; j < kVec; ++j) acc[j] += __shfl_xor_sync(0xFFFFFFFFu, acc[j], offset);
    }
    if (o.r0 == 0) {
#pragma unroll
      for (int j = 0; j < kVec; ++j) out_row[o.piece * kVec + j] = from_float<T>(acc[j] * inv_sum);
    }
    return;
  }
#pragma unroll
  for (int j = 0; j < kVec; ++j) partial[threadIdx.x * kVec + j] = acc[j];
  __syncthreads();
  for (int d = threadIdx.x; d < head_dim; d += threads) {
    const int owner_piece = d / kVec, j = d % kVec;
    float total = 0.f;
    for (int r = 0; r < o.rows_per_pass; ++r) total += partial[(r * o.pieces + owner_piece) * kVec + j];
    out_row[d] = from_float<T>(total * inv_sum);
  }
  if constexpr (kReusePartial) __syncthreads();
}

}  // namespace qb::kernels::attention
