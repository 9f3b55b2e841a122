// One decode step of attention (contract in include/quantbench/kernels/decode_ops.h).
//
// Grid: one block of 256 threads per (sequence, query head). With GQA the query heads of one K/V
// head read the same K/V rows (again from L2). One block per K/V head gave Qwen2-7B 4 blocks a
// sequence on 132 SMs; where the blocks outnumber the SMs (batched decode), decode_attention() runs the
// kernel grouped by K/V head instead (decode_attention_grouped.cu: 2-4 query heads a block, the same
// arithmetic as this kernel's light variant). The block of the first query head of a K/V head writes
// the new k, v into the caches at *position; every block takes the new position's k, v from its own
// shared copy (the exact values written) and reads the cache only below *position (written by earlier
// steps), so no grid-wide ordering is needed.
//
// The block is latency-bound (a few hundred rows of K and V, one pass each), so every phase keeps
// many independent 16-byte loads in flight per thread instead of walking positions one at a time,
// and the first pass of cached K and V rows is loaded before the PDL wait (phase 0), overlapping the
// qkv GEMV (measured by skipping the kernel: Qwen2-7B's attention cost 14.6 us a layer without this); also
// before the wait, every cached row of the K/V head is asked of L2 (l2_prefetch.cuh) and the rotary
// frequencies are read, so nothing after the wait goes to DRAM:
//  1. q and the new k rotated (rotate_half, first rotary_dim dims; each thread reads its dimension and its
//     partner's from qkv), q rounded to T as transformers' rotated q is, staged in shared memory with k, v.
//  2. scores: one thread per cached position t, the dot product of K[t] (16-byte loads, 16 in
//     flight) with q (shared-memory broadcasts), scaled, into scores[t] (shared).
//  3. softmax: block max and sum from per-warp partials (two barriers); scores[t] becomes exp(score - max).
//  4. output: thread (r, c) with c = the 16-byte piece of a row (r = tid % rows_per_pass for the
//     shuffle reduction, else r = tid / pieces) accumulates
//     p[t] * V[t][piece c] for t = r, r + rows_per_pass, ... (16 rows in flight; p[t] = scores[t]); the
//     partial sums of the rows_per_pass groups are added by warp shuffles (or in shared memory for odd head
//     sizes).
// Phases 2 and 4 have a one-pass form for the common decode case (positions below 256, a row exactly the pieces
// prefetched before the wait): rows come from registers or the new row in shared memory, with the general loop's
// arithmetic in the same order, except that 128-dim 16-bit rows take their scores on tensor cores. End to end on
// the H100 (BENCHMARKS.md, session 23), this form and the softmax took TinyLlama fp16 from 976 to 1011 tok/s and
// Qwen2-7B nf4 from 529 to 555.
// Shared memory: k_new [D] | v_new [D] (T) | q [D] | scores [capacity] | partial [256 x 8] (fp32); static: the
// softmax's per-warp partials.
#include <cfloat>

#include "decode_attention_common.cuh"
#include "decode_attention_grouped.h"
#include "dtype_utils.cuh"
#include "gemv_mma_tile.cuh"
#include "q4_common.cuh"
#include "pdl.cuh"
#include "quantbench/core/env_switch.h"
#include "quantbench/core/error.h"
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/decode_ops.h"
#include "quantbench/kernels/device_limits.h"

namespace qb::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kPartialFloats = kThreads * 8;  // phase 4: one 16-byte piece (<= 8 elements) per thread
constexpr int kMaxHeadDim = 256;
constexpr int kStaticSharedBytes = 2 * (kThreads / 32) * sizeof(float);  // warp_part in phase 3
// kInFlight: independent 16-byte loads per thread in phases 2 and 4. Three variants (the host picks one):
//   wide (prefetch, 16): a 128-dim 16-bit row; 255 registers, one block per SM;
//   narrow (prefetch, 8): a 64-dim 16-bit row prefetched with half the registers, so a block fits beside a GEMV
//     block that leaves half an SM (the wide one with half its loads unused was slower than light on 64 dims);
//   light (no prefetch, 8): ~70 registers, several blocks per SM for batched decode (batch 16 ran 7% slower
//     with the prefetch).

template <typename T, bool kPrefetch, int kInFlight>
__global__ void __launch_bounds__(kThreads) decode_attention_kernel(
    const T* qkv, T* k_cache, T* v_cache, const int64_t* position, const float* rope_cos, const float* rope_sin,
    T* out, int num_heads, int num_kv_heads, int head_dim, int rotary_dim, int64_t capacity, float scale,
    bool trigger_first) {
  extern __shared__ __align__(16) unsigned char shared_raw[];
  constexpr int kVec = 16 / sizeof(T);  // elements per 16-byte piece
  const int b = blockIdx.x / num_heads, head = blockIdx.x % num_heads;
  const int group = num_heads / num_kv_heads, kv_head = head / group;
  const bool writes_cache = head % group == 0;
  const int lane = threadIdx.x & 31;
  // head_dim is a multiple of kVec: both T rows end on a 16-byte boundary.
  T* k_new = reinterpret_cast<T*>(shared_raw);               // [D], what the cache holds at pos
  T* v_new = k_new + head_dim;                               // [D]
  float* q_s = reinterpret_cast<float*>(v_new + head_dim);   // [D]
  float* scores = q_s + head_dim;                            // [capacity]
  float* partial = scores + capacity;                        // [kPartialFloats]
  const attention::BlockRows<T> rows(qkv, k_cache, v_cache, b, head, kv_head, num_heads, num_kv_heads, head_dim,
                                     capacity);
  T* keys = rows.keys;
  T* values = rows.values;
  // Phase 4's thread (r0, piece) (attention::OutputThreads).
  const attention::OutputThreads o(head_dim, kVec, kThreads);
  const int rows_per_pass = o.rows_per_pass, piece = o.piece, r0 = o.r0;

  // ---- 0. before the PDL wait: the cached rows this thread reads first ----
  // Position and cache rows below it were written by kernels at least two launches back (the previous
  // step's advance_step and attention), which have completed (pdl.cuh): only the qkv row is the
  // predecessor's. Thread i's K row i (phase 2; mma_scores: fragment order, below) and its first kInFlight V pieces
  // (phase 4) are loaded into registers here, so their DRAM latency overlaps the qkv GEMV instead of following it.
  const int64_t pos = *position;
  // Every cached row of this K/V head asked of L2 at once (one block per K/V head asks), so that the reads
  // below the register prefetch (positions past the first pass; all of them in the light variant) hit L2.
  attention::prefetch_cached_rows(writes_cache, keys, values, pos, head_dim);
  float rope_c, rope_s;
  attention::rope_frequency(rope_cos, rope_sin, rotary_dim, pos, rope_c, rope_s);
  // one_pass (block-uniform): every position is below kThreads and a row is exactly the kInFlight pieces prefetched
  // here (TinyLlama's and Qwen2-7B's decode up to 256 positions): phases 2 and 4 then take rows from registers or
  // the new row in shared memory without pointer selection, bounds tests or loops. 16-bit wide: the scores on tensor
  // cores (mma_scores below), with K prefetched in mma fragment order: warp w owns positions [32 w, 32 w + 32) as two
  // 16-row tiles; lane (g, t) loads, for tile, half h and 32-column step s, 16 bytes of row 32 w + 16 tile + 8 h + g
  // at column 32 s + 8 t. Otherwise each thread its own row, as the general path.
  const bool one_pass = kPrefetch && head_dim == kInFlight * kVec && pos < kThreads;
  // Tensor-core scores in the wide variant only: on 64-dim rows (narrow) they measured TinyLlama fp16 1007.3 /
  // 1006.7 tok/s against 1011.1 / 1011.2 with the FMA path (nf4 1898 against 1874); on Qwen2-7B's 128-dim rows nf4
  // 554.2 against 546.7 (BENCHMARKS.md, session 23).
  constexpr bool kMmaScores = sizeof(T) == 2 && kInFlight == 16;
  const bool mma_scores = kMmaScores && one_pass;
  constexpr int kSteps = kInFlight / 4;  // 32-column steps of a row (mma_scores: kInFlight pieces = head_dim / 8)
  const int warp = threadIdx.x >> 5, quad_g = lane >> 2, quad_t = lane & 3;
  auto mma_row = [&](int u) { return warp * 32 + (u / (2 * kSteps)) * 16 + ((u / kSteps) % 2) * 8 + quad_g; };
  auto mma_piece = [&](int u) { return (u % kSteps) * 4 + quad_t; };
  uint4 k_pre[kInFlight], v_pre[kInFlight];
#pragma unroll
  for (int u = 0; u < (kPrefetch ? kInFlight : 0); ++u) {
    const int d = u * kVec;
    if (mma_scores) {
      const int row = mma_row(u);
      k_pre[u] = row < pos ? *reinterpret_cast<const uint4*>(keys + int64_t(row) * head_dim + mma_piece(u) * kVec)
                           : make_uint4(0, 0, 0, 0);
    } else {
      k_pre[u] = threadIdx.x < pos && d < head_dim
                     ? *reinterpret_cast<const uint4*>(keys + int64_t(threadIdx.x) * head_dim + d)
                     : make_uint4(0, 0, 0, 0);
    }
    const int64_t t = r0 + int64_t(u) * rows_per_pass;
    v_pre[u] = r0 < rows_per_pass && t < pos
                   ? *reinterpret_cast<const uint4*>(values + t * head_dim + piece * kVec)
                   : make_uint4(0, 0, 0, 0);
  }
  // The output projection's GEMV may start after this block's wait (pdl.cuh, rule 3): with the trigger first thing,
  // its blocks' prologues overlapped this kernel's wait as well, and Qwen2-7B int8 / nf4 / awq decode measured 0.3-0.8%
  // slower, TinyLlama 0.4-1.6% (BENCHMARKS.md, session 28). Except before a GEMV that loads its whole weight before its
  // own wait (trigger_first: the int8 one-round form), whose loads then overlap this kernel's wait instead of its work:
  // Qwen2-7B int8 +0.7%, where nf4 and awq, whose GEMVs fill a ring of two stages first, lost 0.5-0.7% (session 32).
  if (trigger_first) pdl_launch_dependents();
  pdl_wait();
  if (!trigger_first) pdl_launch_dependents();

  // ---- 1. rotate q and the new k, write the cache ----
  // Thread d < head_dim (host-checked: <= kThreads) reads q, k at d and at its rotation partner and v at d straight
  // from qkv: one round trip to L2 for all of them, and one barrier publishes what it stages (was: stage, barrier,
  // rotate, barrier, write, barrier).
  if (threadIdx.x < head_dim) {
    const int d = threadIdx.x;
    const bool has_rope = rope_cos != nullptr;
    const float q_rot = attention::rotated(rows.q_in, d, rotary_dim, has_rope, rope_c, rope_s);
    const float k_rot = attention::rotated(rows.k_in, d, rotary_dim, has_rope, rope_c, rope_s);
    const T v_d = rows.v_in[d];
    q_s[d] = round_to<T>(q_rot);
    k_new[d] = from_float<T>(k_rot);
    v_new[d] = v_d;
    if (writes_cache) {
      keys[pos * head_dim + d] = k_new[d];
      values[pos * head_dim + d] = v_d;
    }
  }
  __syncthreads();  // k_new, v_new and q_s visible to every thread

  // ---- 2. scores: one position per thread; the first pass from the prefetched row ----
  // q_s is read as float4 (q_s sits 2 * head_dim * sizeof(T) bytes into shared memory: 16-byte aligned); lane j of a
  // piece still feeds chain j % 4, so the sums are the ones the scalar loop made. Each thread keeps the largest of its
  // scores for the softmax below.
  auto dot_pieces = [&](const uint4 (&raw)[kInFlight], int d0, float (&acc4)[4]) {
    attention::dot_pieces<T, kInFlight>(raw, d0, head_dim, q_s, acc4);
  };
  float local_max = -FLT_MAX;
  if (mma_scores) {
    if constexpr (kMmaScores) {
      // Scores as a [positions x head_dim] x [head_dim x 8] product with q in every column (mma.m16n8k16, fp32
      // accumulation): the lane's physical 16 bytes fill the fragment's logical k slots and q is taken at the same
      // physical columns, as the decode GEMV does (gemv_mma_tile.cuh). The new row comes from k_new.
#pragma unroll
      for (int u = 0; u < kInFlight; ++u) {
        if (mma_row(u) == pos) k_pre[u] = reinterpret_cast<const uint4*>(k_new)[mma_piece(u)];
      }
      float c[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
#pragma unroll
      for (int step = 0; step < kSteps; ++step) {
        // q at columns 32 step + 8 quad_t .. + 7 as T pairs (exact: q_s holds values rounded to T).
        const float4 qa = reinterpret_cast<const float4*>(q_s + step * 32 + quad_t * 8)[0];
        const float4 qb = reinterpret_cast<const float4*>(q_s + step * 32 + quad_t * 8)[1];
        using Pack = q4::ActOps<T>;
        const uint32_t qw[4] = {Pack::pack(qa.x, qa.y), Pack::pack(qa.z, qa.w), Pack::pack(qb.x, qb.y),
                                Pack::pack(qb.z, qb.w)};
#pragma unroll
        for (int tile = 0; tile < 2; ++tile) {
          const uint4& w0 = k_pre[tile * 2 * kSteps + step];           // row g
          const uint4& w1 = k_pre[tile * 2 * kSteps + kSteps + step];  // row g + 8
#pragma unroll
          for (int j = 0; j < 2; ++j) {
            uint32_t a[4];
            gemv::half16_a_fragment(w0, w1, j, a);
            gemv::HalfTraits<T>::mma(c[tile], a, qw[2 * j], qw[2 * j + 1]);
          }
        }
      }
      // Every column holds the same dot product: lanes with quad_t == 0 write rows g and g + 8 of each tile.
      if (quad_t == 0) {
#pragma unroll
        for (int tile = 0; tile < 2; ++tile) {
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int row = warp * 32 + tile * 16 + h * 8 + quad_g;
            if (row <= pos) {
              const float score = c[tile][2 * h] * scale;
              scores[row] = score;
              local_max = fmaxf(local_max, score);
            }
          }
        }
      }
    }
  } else if (one_pass) {
    if (threadIdx.x <= pos) {
      uint4 raw[kInFlight];
#pragma unroll
      for (int u = 0; u < kInFlight; ++u) {
        raw[u] = threadIdx.x < pos ? k_pre[u] : reinterpret_cast<const uint4*>(k_new)[u];
      }
      float acc4[4] = {0.f, 0.f, 0.f, 0.f};
      dot_pieces(raw, 0, acc4);
      const float score = ((acc4[0] + acc4[1]) + (acc4[2] + acc4[3])) * scale;
      scores[threadIdx.x] = score;
      local_max = score;
    }
  } else {
    for (int64_t t = threadIdx.x; t <= pos; t += kThreads) {
      const T* row = t == pos ? k_new : keys + t * head_dim;
      const bool prefetched = kPrefetch && t < kThreads && t < pos;
      float acc4[4] = {0.f, 0.f, 0.f, 0.f};  // four chains: a head_dim-long serial FMA chain was ~0.25 us
      for (int d0 = 0; d0 < head_dim; d0 += kInFlight * kVec) {
        uint4 raw[kInFlight];
#pragma unroll
        for (int u = 0; u < kInFlight; ++u) {
          const int d = d0 + u * kVec;
          raw[u] = prefetched && d0 == 0 ? k_pre[u]
                   : d < head_dim        ? *reinterpret_cast<const uint4*>(row + d)
                                         : make_uint4(0, 0, 0, 0);
        }
        dot_pieces(raw, d0, acc4);
      }
      const float score = ((acc4[0] + acc4[1]) + (acc4[2] + acc4[3])) * scale;
      scores[t] = score;
      local_max = fmaxf(local_max, score);
    }
  }

  // ---- 3. softmax: block max and sum through per-warp partials; scores[t] becomes exp(score - max) ----
  // (Was every warp walking all scores twice, exp included, and phase 4 taking the exp again: ~1000 cycles a
  // block on 200 positions.) The first barrier also publishes the scores (the tensor-core path writes a row from
  // another thread than the one that takes its exp).
  constexpr int kWarps = kThreads / 32;
  __shared__ float warp_part[2][kWarps];
  static_assert(sizeof(warp_part) == kStaticSharedBytes, "the host subtracts this from the dynamic allowance");
  local_max = warp_max(local_max);
  if (lane == 0) warp_part[0][warp] = local_max;
  __syncthreads();
  float m = warp_part[0][0];
#pragma unroll
  for (int w = 1; w < kWarps; ++w) m = fmaxf(m, warp_part[0][w]);
  float local_sum = 0.f;
  for (int64_t t = threadIdx.x; t <= pos; t += kThreads) {
    const float e = __expf(scores[t] - m);
    scores[t] = e;
    local_sum += e;
  }
  local_sum = warp_sum(local_sum);
  if (lane == 0) warp_part[1][warp] = local_sum;
  __syncthreads();  // also: every exp in scores[] visible
  float sum = 0.f;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) sum += warp_part[1][w];
  const float inv_sum = 1.f / sum;

  // ---- 4. output: pieces of V rows, rows_per_pass rows at a time; the first pass prefetched ----
  float acc[kVec];
#pragma unroll
  for (int j = 0; j < kVec; ++j) acc[j] = 0.f;
  auto accumulate = [&](const uint4 (&raw)[kInFlight], const float (&p)[kInFlight]) {
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      const T* v = reinterpret_cast<const T*>(&raw[u]);
#pragma unroll
      for (int j = 0; j < kVec; ++j) acc[j] += p[u] * to_float(v[j]);
    }
  };
  if (one_pass) {  // rows r0 + u * rows_per_pass (u < kInFlight) cover [0, kThreads): rows_per_pass * kInFlight = 256
    uint4 raw[kInFlight];
    float p[kInFlight];
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      const int t = r0 + u * rows_per_pass;
      raw[u] = t < pos    ? v_pre[u]
               : t == pos ? reinterpret_cast<const uint4*>(v_new)[piece]
                          : make_uint4(0, 0, 0, 0);
      p[u] = t <= pos ? scores[t] : 0.f;
    }
    accumulate(raw, p);
  } else if (r0 < rows_per_pass) {
    for (int64_t t0 = r0; t0 <= pos; t0 += kInFlight * rows_per_pass) {
      uint4 raw[kInFlight];
      float p[kInFlight];
#pragma unroll
      for (int u = 0; u < kInFlight; ++u) {
        const int64_t t = t0 + int64_t(u) * rows_per_pass;
        const T* row = t == pos ? v_new : values + t * head_dim;
        raw[u] = kPrefetch && t0 == r0 && t < pos ? v_pre[u]
                 : t <= pos          ? *reinterpret_cast<const uint4*>(row + piece * kVec)
                                     : make_uint4(0, 0, 0, 0);
        p[u] = t <= pos ? scores[t] : 0.f;
      }
      accumulate(raw, p);
    }
  }
  T* out_row = out + int64_t(b) * num_heads * head_dim + int64_t(head) * head_dim;
  attention::store_head_output<T, kVec, false>(acc, inv_sum, o, partial, out_row, head_dim, kThreads);
}

template <typename T>
void configure(int max_shared) {
  QB_CUDA_CHECK(cudaFuncSetAttribute(decode_attention_kernel<T, true, 16>,
                                     cudaFuncAttributeMaxDynamicSharedMemorySize, max_shared));
  QB_CUDA_CHECK(cudaFuncSetAttribute(decode_attention_kernel<T, true, 8>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     max_shared));
  QB_CUDA_CHECK(cudaFuncSetAttribute(decode_attention_kernel<T, false, 8>,
                                     cudaFuncAttributeMaxDynamicSharedMemorySize, max_shared));
}

}  // namespace

void decode_attention(const void* qkv, void* k_cache, void* v_cache, const int64_t* position, const float* rope_cos,
                      const float* rope_sin, void* out, int64_t batch, int64_t num_heads, int64_t num_kv_heads,
                      int64_t head_dim, int64_t rotary_dim, int64_t capacity, float scale, DType dtype,
                      cudaStream_t stream, int heads_per_block, bool successor_loads_early) {
  QB_CHECK(num_kv_heads > 0 && num_heads % num_kv_heads == 0, kInvalidInput,
           "decode_attention: {} heads do not divide into {} kv heads", num_heads, num_kv_heads);
  const int64_t elem_bytes = dtype == DType::kF32 ? 4 : 2;
  const int64_t vec = 16 / elem_bytes;
  QB_CHECK(head_dim % vec == 0 && head_dim <= kMaxHeadDim && rotary_dim <= head_dim && rotary_dim % 2 == 0,
           kUnsupported, "decode_attention: head_dim {} / rotary_dim {} unsupported (multiple of {}, at most {})",
           head_dim, rotary_dim, vec, kMaxHeadDim);
  const size_t shared_bytes = static_cast<size_t>(2 * head_dim * elem_bytes) +
                              sizeof(float) * static_cast<size_t>(head_dim + capacity + kPartialFloats);
  // The block's static shared memory (the softmax's per-warp partials) comes out of the same per-block allowance.
  const int max_shared = max_shared_per_block_optin() - kStaticSharedBytes;
  QB_CHECK(shared_bytes <= static_cast<size_t>(max_shared), kUnsupported,
           "decode_attention: scores for {} cached positions need {} bytes of shared memory, the GPU allows {}; use "
           "a shorter --prompt-len + --gen-len",
           capacity, shared_bytes, max_shared);
  static const bool configured = [max_shared] {
    configure<float>(max_shared);
    configure<__half>(max_shared);
    configure<__nv_bfloat16>(max_shared);
    return true;
  }();
  (void)configured;
  // The register prefetch where the grid is at most one block per SM, with as many loads as a row fills: wide
  // from 256-byte rows, narrow from 128. (The wide variant on 128-byte rows lost to light in one call on H100,
  // BENCHMARKS.md: TinyLlama / GPT-2 nf4 +4%, awq +3%, gpt2 fp16 +8% with light: its 255-register blocks wait for
  // whole free SMs, half their loads unused.) QB_ATTENTION_PREFETCH=0: light everywhere; QB_ATTENTION_NARROW=0:
  // no narrow variant; QB_ATTENTION_WIDE=0: narrow for the wide variant's rows too (the A/B runs).
  static const bool register_prefetch_allowed = env_on_unless_zero("QB_ATTENTION_PREFETCH");
  static const bool narrow_allowed = env_on_unless_zero("QB_ATTENTION_NARROW");
  static const bool wide_allowed = env_on_unless_zero("QB_ATTENTION_WIDE");
  const int64_t row_bytes = head_dim * elem_bytes;
  const bool prefetch = register_prefetch_allowed && batch * num_heads <= sm_count();
  // Where the light variant would run (more blocks than SMs: batched decode), query heads that share a K/V head share
  // a block (decode_attention_grouped.cu): the cache is read once per K/V head instead of once per query head.
  if (heads_per_block < 0) heads_per_block = prefetch ? 0 : grouped_heads_per_block(batch, num_heads, num_kv_heads);
  if (heads_per_block > 0 &&
      decode_attention_grouped(qkv, k_cache, v_cache, position, rope_cos, rope_sin, out, batch, num_heads,
                               num_kv_heads, head_dim, rotary_dim, capacity, scale, dtype, heads_per_block, stream)) {
    return;
  }
  const bool wide = prefetch && wide_allowed && row_bytes >= 16 * 16;
  const bool narrow = prefetch && !wide && narrow_allowed && row_bytes >= 8 * 16;
  QB_DISPATCH_DTYPE(dtype, T, {
    auto kernel = wide     ? decode_attention_kernel<T, true, 16>
                  : narrow ? decode_attention_kernel<T, true, 8>
                           : decode_attention_kernel<T, false, 8>;
    launch_pdl(kernel, static_cast<unsigned>(batch * num_heads), kThreads, shared_bytes, stream,
               static_cast<const T*>(qkv), static_cast<T*>(k_cache), static_cast<T*>(v_cache), position, rope_cos,
               rope_sin, static_cast<T*>(out), static_cast<int>(num_heads), static_cast<int>(num_kv_heads),
               static_cast<int>(head_dim), static_cast<int>(rotary_dim), capacity, scale, successor_loads_early);
  });
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace qb::kernels
