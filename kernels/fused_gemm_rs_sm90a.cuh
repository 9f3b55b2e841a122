// Dequantize-in-the-GEMM on Hopper (sm_90a), second form: the weight is the A operand, dequantized straight into
// the registers wgmma reads ("RS" wgmma), so a converted weight never touches shared memory.
//   y[M, N] = x[M, K] W[N, K]^T (+ bias), computed as D = W x^T per block: D's rows are W's rows (128 per block,
//   64 per consumer warpgroup, 16 per consumer warp = one weight tile of the 4-bit tile layout), D's columns are
//   tokens (BT = 128 or 256 per block). x, y, bias fp16 or bf16; fp32 accumulation.
// Why (NOTES-q4.md, "Fused prefill"): the first form (fused_gemm_sm90a.cuh) converts W into a 16-bit B stage in
// shared memory; its stores, their re-reads by two warpgroups and the converters' table reads kept the shared-memory
// pipe the busiest unit (66% in ncu) and the kernel at 1.7-3.3x cuBLAS. Here shared memory carries only x (the B
// operand, what any wgmma GEMM reads: 64 bytes per clock at full MMA rate) and the packed weight (an eighth of
// the 16-bit bytes), plus the conversion's table lookups.
// Status (NOTES-q4.md, "After the C7515 fix" and "Split-K"; H100, bf16): gate_up nf4 at M = 512 with 256-token
// blocks 251-271 us = 1.19-1.29x cuBLAS (dequantize + cuBLAS 370 us), at M = 128 with 128-token blocks 113.6-117 us;
// down (28 x 2 tiles at M = 512) 155.8 us with 2 splits against 193.5 two-pass. Where it runs and how it is cut:
// fused_prefill_cut (include/quantbench/kernels/fused_prefill_policy.h). Sources: 4-bit (kernels/q4_gemm_sm90a.cu),
// int8 (kernels/int8_gemm_sm90a.cu).
//
// The weight format is a Source (kernels/q4_gemm_sm90a.cu) providing
//   kPackedStepBytes, n(), k_steps(), load_step(k, n0, dst, bar)   as for the first form (one 64-column step of
//                                    the block's 128 rows, copied by the copy engine with expect-tx on bar)
//   Shared, init_shared(Shared&, n0) tables in shared memory (every thread, strided loops, before the role split)
//   fragments<Act>(k, n0, packed, shared, tile, lane, a)
//                                    the consumer warp's 16 rows (weight tile `tile` of the block's 8) x 64 columns
//                                    of step k as four k16 A fragments a[kk][4] (sm90::WgmmaRs's layout), the
//                                    step's columns 16kk .. 16kk + 15 in their natural order (x is not permuted)
//   kRowScaled, row_scales(shared)   true: the fragments hold W's rows divided by a per-row factor (int8: its exact
//                                    integers), and row_scales gives the block's 128 factors, applied to the fp32
//                                    sums in the epilogue (after the splits are summed); false: none
//
// Block (384 threads, one per SM): warps 0-7 two consumer warpgroups (fragments of step k + 1 are built while
// the wgmmas of steps k and k - 1 run), warps 8-11 the producer warpgroup, of which one lane loads: per step, the Source's packed step and x's
// BT x 64 box (tensor map, 128B swizzle: the B operand as wgmma reads it; rows past M zero-filled).
// Stage s (kRsStages of them, 1024-aligned): x box (BT x 128 bytes), then the packed step. Barriers: full[s] (two expect-tx
// arrivals of the loader + the bytes), empty[s] (one arrival per consumer warp once its wgmmas on the stage
// retired, i.e. one step later). Parity waits are exact: no waiter can fall two phases behind.
// Grid: one block per (token tile, split, weight-row tile), token tiles fastest, so the blocks that share W's rows
// run together and all but the first read them from L2.
// Split-K (RsSplit, splits > 1: shapes whose tiles leave most SMs idle, e.g. down at 28 x 2 tiles): split s takes
// the k steps [s * per, min(steps, (s + 1) * per)), writes its fp32 tile to partial[s][tile] and counts itself in
// on counters[tile]; the tile's last block sums the splits' tiles in split order 0, 1, ... (whoever arrives last,
// the same additions in the same order: run to run deterministic), adds the bias, writes y and zeroes the counter.
// No block waits for another, so there is no co-residency requirement.
#pragma once

#include <algorithm>

#include "fused_gemm_sm90a.cuh"  // tensor maps, alignment and switch helpers, kBK
#include "quantbench/core/env_switch.h"
#include "quantbench/core/error.h"

namespace qb::kernels::fused {

#ifndef QB_FUSED_RS_STAGES
#define QB_FUSED_RS_STAGES 4
#endif
constexpr int kRsStages = QB_FUSED_RS_STAGES;
constexpr int kRsRows = 128;  // W rows per block (D's M: two warpgroups x 64)
constexpr int kRsConsumerWarps = 8;
// A whole producer warpgroup (only one lane of it loads): setmaxnreg works per warpgroup, and with 12 warps the
// consumers can take 232 registers (BT = 256 needs 128 accumulators + three A sets) while the producers give theirs
// back (40). (With 9 warps one scheduler holds 3 of them and a thread gets at most 168.)
constexpr int kRsThreads = 32 * kRsConsumerWarps + 128;
// BT, the tokens per block (D's N), is a template parameter: 128 (wgmma m64n128k16, 64 accumulators per thread) or
// 256 (m64n256k16, 128 accumulators: each converted A fragment feeds twice the MMA work).
template <int BT>
constexpr int rs_x_bytes() {
  return BT * kBK * 2;
}

template <class Source, int BT>
constexpr int rs_stage_bytes() {
  return (rs_x_bytes<BT>() + Source::kPackedStepBytes + 1023) / 1024 * 1024;
}
template <class Source, int BT>
constexpr int rs_dynamic_smem_bytes() {
  return 1024 /* alignment slack */ + kRsStages * rs_stage_bytes<Source, BT>() +
         (static_cast<int>(sizeof(typename Source::Shared)) + 15) / 16 * 16 + 2 * kRsStages * 8 + 16 /* flag */;
}

// Split-K state of a launch (splits == 1: none; the other fields unused).
struct RsSplit {
  int splits = 1;
  int steps_per_split = 0;       // ceil(k steps / splits); every split has at least one step
  int64_t tiles = 0;             // output tiles (token tiles x weight-row tiles)
  float* partial = nullptr;      // [splits][tiles][kRsRows * BT] fp32, each tile in the consumers' register order
  unsigned* counters = nullptr;  // [tiles], zero at launch; the last block of a tile zeroes it again
};

// Bytes of split-K workspace (partial tiles, then counters) for M tokens, N weight rows, BT tokens per block.
inline size_t rs_split_workspace_bytes(int64_t M, int64_t N, int BT, int splits) {
  if (splits <= 1) return 0;
  const int64_t tiles = (M + BT - 1) / BT * ((N + kRsRows - 1) / kRsRows);
  return static_cast<size_t>(splits * tiles * kRsRows * BT) * sizeof(float) + static_cast<size_t>(tiles) * 4;
}

// A 4 x 4 transpose of 32-bit words across the quad (lanes 4g .. 4g + 3): lane t's y[kk] becomes lane kk's y[t].
// Register sources use it to gather a k16 A fragment's columns from the lanes that loaded them. Two butterfly
// rounds of two shuffles: lanes t and t ^ 2 swap the halves of y that belong to the other, then t and t ^ 1 the
// odd / even entries.
__device__ __forceinline__ void quad_transpose(uint32_t (&y)[4], int lane) {
  {
    const bool hi = lane & 2;
    const uint32_t r0 = __shfl_xor_sync(0xFFFFFFFFu, hi ? y[0] : y[2], 2);
    const uint32_t r1 = __shfl_xor_sync(0xFFFFFFFFu, hi ? y[1] : y[3], 2);
    if (hi) { y[0] = r0; y[1] = r1; } else { y[2] = r0; y[3] = r1; }
  }
  {
    const bool odd = lane & 1;
    const uint32_t r0 = __shfl_xor_sync(0xFFFFFFFFu, odd ? y[0] : y[1], 1);
    const uint32_t r1 = __shfl_xor_sync(0xFFFFFFFFu, odd ? y[2] : y[3], 1);
    if (odd) { y[0] = r0; y[2] = r1; } else { y[1] = r0; y[3] = r1; }
  }
}

template <class Source, int BT>
struct RsSmem {
  uint8_t* stages;
  typename Source::Shared* tables;
  uint64_t* full;   // [kRsStages]
  uint64_t* empty;  // [kRsStages]
  int* flag;        // split-K: whether this block is its tile's last

  __device__ explicit RsSmem(uint8_t* raw) {
    const uint32_t pad = (1024u - (sm90::smem_addr(raw) & 1023u)) & 1023u;
    stages = raw + pad;
    tables = reinterpret_cast<typename Source::Shared*>(stages + kRsStages * rs_stage_bytes<Source, BT>());
    full = reinterpret_cast<uint64_t*>(reinterpret_cast<uint8_t*>(tables) +
                                       (static_cast<int>(sizeof(typename Source::Shared)) + 15) / 16 * 16);
    empty = full + kRsStages;
    flag = reinterpret_cast<int*>(empty + kRsStages);
  }
  __device__ uint8_t* x(int stage) const { return stages + stage * rs_stage_bytes<Source, BT>(); }
  __device__ uint8_t* packed(int stage) const { return x(stage) + rs_x_bytes<BT>(); }
};

template <class Source, int BT>
__device__ __forceinline__ void rs_load(const Source& src, const void* x_map, int m0, int64_t n0, int k_begin,
                                        int k_end, const RsSmem<Source, BT>& s) {
  for (int i = 0; i < k_end - k_begin; ++i) {
    const int k = k_begin + i, stage = i % kRsStages;
    if (i >= kRsStages) sm90::mbar_wait(&s.empty[stage], ((i / kRsStages) - 1) & 1);
    src.load_step(k, n0, s.packed(stage), &s.full[stage]);
    sm90::mbar_arrive_expect_tx(&s.full[stage], rs_x_bytes<BT>());
    sm90::tma_load_2d(s.x(stage), x_map, k * kBK, m0, &s.full[stage]);
  }
}

// y[m, n] (+ bias[n]) for the accumulator element d[4i + 2j + c] of consumer thread threadIdx.x: D row (W row)
// 16 warp + lane / 4 + 8 j of its warpgroup's 64, D column (token) 8 i + 2 (lane % 4) + c. value(i) gives the four
// elements 4i .. 4i + 3.
// row_scale: the Source's per-row factors of the block's rows (kRowScaled), or null.
template <typename Act, int BT, class Value>
__device__ __forceinline__ void rs_store(int64_t N, int m0, int64_t n0, int M, const float* row_scale,
                                         const Act* __restrict__ bias, Act* __restrict__ y, int64_t ldy, Value value) {
  using q4::ActOps;
  const int wg = threadIdx.x >> 7, warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  float b[2], sc[2];
  bool in[2];
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    const int row = 64 * wg + 16 * warp + g + 8 * j;
    const int64_t n = n0 + row;
    in[j] = n < N;
    b[j] = in[j] && bias != nullptr ? ActOps<Act>::to_float(bias[n]) : 0.f;
    sc[j] = row_scale != nullptr ? row_scale[row] : 1.f;
  }
#pragma unroll
  for (int i = 0; i < BT / 8; ++i) {
    const float4 v = value(i);
    const float e[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int64_t n = n0 + 64 * wg + 16 * warp + g + 8 * j;
      if (!in[j]) continue;
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int m = m0 + 8 * i + 2 * t + c;
        const float sum = row_scale != nullptr ? e[2 * j + c] * sc[j] : e[2 * j + c];
        if (m < M) y[static_cast<int64_t>(m) * ldy + n] = ActOps<Act>::from_float(sum + b[j]);
      }
    }
  }
}

// Named barrier 1 over the consumer warps only (the producer warpgroup has left by the epilogue).
__device__ __forceinline__ void rs_consumer_sync() {
  asm volatile("bar.sync 1, %0;" ::"n"(32 * kRsConsumerWarps) : "memory");
}

// Split-K epilogue: this split's tile to its slot, then, in the tile's last block only, the slots summed in split
// order, the bias added and y stored.
template <typename Act, int BT>
__device__ __forceinline__ void rs_split_store(const RsSplit& sk, const float (&d)[BT / 2], int split, int64_t tile,
                                               int* flag, int64_t N, int m0, int64_t n0, int M,
                                               const float* row_scale, const Act* __restrict__ bias,
                                               Act* __restrict__ y, int64_t ldy) {
  constexpr int kThreads = 32 * kRsConsumerWarps;
  constexpr int64_t kSlot = int64_t{kRsRows} * BT;  // floats of one partial tile
  const int tid = threadIdx.x;
  float4* mine = reinterpret_cast<float4*>(sk.partial + (split * sk.tiles + tile) * kSlot) + tid;
#pragma unroll
  for (int i = 0; i < BT / 8; ++i) mine[i * kThreads] = make_float4(d[4 * i], d[4 * i + 1], d[4 * i + 2], d[4 * i + 3]);
  __threadfence();  // the slot is visible device-wide before this block counts itself in
  rs_consumer_sync();
  if (tid == 0) *flag = atomicAdd(&sk.counters[tile], 1u) == static_cast<unsigned>(sk.splits - 1);
  rs_consumer_sync();
  if (!*flag) return;
  __threadfence();
  const float4* slots = reinterpret_cast<const float4*>(sk.partial + tile * kSlot) + tid;
  const int64_t stride = sk.tiles * kSlot / 4;  // float4s from one split's slot of this tile to the next's
  rs_store<Act, BT>(N, m0, n0, M, row_scale, bias, y, ldy, [&](int i) {
    float4 acc = __ldcg(slots + i * kThreads);  // L2, not a stale L1 line: the other slots came from other SMs
    for (int s = 1; s < sk.splits; ++s) {
      const float4 v = __ldcg(slots + s * stride + i * kThreads);
      acc.x += v.x;
      acc.y += v.y;
      acc.z += v.z;
      acc.w += v.w;
    }
    return acc;
  });
  if (tid == 0) sk.counters[tile] = 0;  // ready for the next launch
}

template <typename Act, class Source, int BT>
__device__ __forceinline__ void rs_consume(const Source& src, const RsSmem<Source, BT>& s, int m0, int64_t n0,
                                           int k_begin, int k_end, const RsSplit& sk, int split, int64_t out_tile,
                                           int M, const Act* __restrict__ bias, Act* __restrict__ y, int64_t ldy,
                                           int probe) {
  const int wg = threadIdx.x >> 7, warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
  const int tile = 4 * wg + warp;
  const int steps = k_end - k_begin;
  float d[BT / 2];
#pragma unroll
  for (int i = 0; i < BT / 2; ++i) d[i] = 0.f;
  // Three A register sets in rotation: step k issues from c, builds step k + 1 into n under its wgmmas, and after
  // wait<1> (step k - 1 retired) releases p, the set of step k - 1. A set stays live (fenced) until the wgmma that
  // reads it has retired, and the rotation is unrolled by hand so no set is ever copied: wgmma reads its registers
  // when it executes, so a copy would leave the in-flight MMA reading registers the compiler considers free.
  uint32_t sa[4][4], sb[4][4], sc[4][4];
  sm90::mbar_wait(&s.full[0], 0);
  if (probe != 1) {
    src.template fragments<Act>(k_begin, n0, s.packed(0), *s.tables, tile, lane, sa);
  } else {
#pragma unroll
    for (int kk = 0; kk < 4; ++kk)
#pragma unroll
      for (int r = 0; r < 4; ++r) sa[kk][r] = 0x3C003C00u + lane;
  }
#pragma unroll
  for (int kk = 0; kk < 4; ++kk)
#pragma unroll
    for (int r = 0; r < 4; ++r) sb[kk][r] = sc[kk][r] = 0u;
  // k: the block's step index (global step k_begin + k).
  auto step = [&](int k, uint32_t(&c)[4][4], uint32_t(&n)[4][4], uint32_t(&p)[4][4]) {
    const int stage = k % kRsStages;
    const uint64_t desc_b = sm90::make_desc(s.x(stage));
    sm90::fence_operands(c);
    sm90::wgmma_fence();
    // Nothing but wgmma may write d between the fence and the wait: a non-wgmma definition of an accumulator
    // anywhere in the function (a diagnostic "no wgmma" branch that summed into d[0] did) makes ptxas serialize
    // every wgmma of the kernel (warning C7515) and inject waits (C7517).
#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk) sm90::WgmmaRs<Act>::mma(d, c[kk], desc_b + 2 * kk);
    sm90::wgmma_commit();
    if (k + 1 < steps) {
      const int stage1 = (k + 1) % kRsStages;
      sm90::mbar_wait(&s.full[stage1], ((k + 1) / kRsStages) & 1);
      if (probe != 1) {
        src.template fragments<Act>(k_begin + k + 1, n0, s.packed(stage1), *s.tables, tile, lane, n);
      } else {
#pragma unroll
        for (int kk = 0; kk < 4; ++kk)
#pragma unroll
          for (int r = 0; r < 4; ++r) n[kk][r] = c[kk][r] ^ 1u;
      }
    }
    sm90::wgmma_wait<1>();  // step k - 1's wgmmas retired: p and its stage are free
    sm90::fence_operands(p);
    sm90::fence_operands(c);
    if (k >= 1) {
      __syncwarp();
      if (lane == 0) sm90::mbar_arrive(&s.empty[(k - 1) % kRsStages]);
    }
  };
  int k = 0;
  for (; k + 3 <= steps; k += 3) {
    step(k, sa, sb, sc);
    step(k + 1, sb, sc, sa);
    step(k + 2, sc, sa, sb);
  }
  if (k < steps) step(k++, sa, sb, sc);
  if (k < steps) step(k, sb, sc, sa);
  sm90::wgmma_wait<0>();
  sm90::fence_operands(sa);
  sm90::fence_operands(sb);
  sm90::fence_operands(sc);
  sm90::fence_operands(d);

  const float* row_scale = nullptr;
  if constexpr (Source::kRowScaled) row_scale = src.row_scales(*s.tables);
  if (sk.splits > 1) {
    rs_split_store<Act, BT>(sk, d, split, out_tile, s.flag, src.n(), m0, n0, M, row_scale, bias, y, ldy);
  } else {
    rs_store<Act, BT>(src.n(), m0, n0, M, row_scale, bias, y, ldy,
                      [&](int i) { return make_float4(d[4 * i], d[4 * i + 1], d[4 * i + 2], d[4 * i + 3]); });
  }
}

template <typename Act, class Source, int BT>
__global__ void __launch_bounds__(kRsThreads, 1)
    fused_gemm_rs_kernel(const __grid_constant__ Source src, const __grid_constant__ CUtensorMap x_map,
                         const Act* __restrict__ bias, Act* __restrict__ y, int64_t ldy, int M,
                         const __grid_constant__ RsSplit sk, int probe) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ uint8_t smem_raw[];
  const RsSmem<Source, BT> s(smem_raw);
  const int m_tiles = (M + BT - 1) / BT;
  const int m_tile = static_cast<int>(blockIdx.x % m_tiles);
  const int64_t rest = blockIdx.x / m_tiles;
  const int split = static_cast<int>(rest % sk.splits);
  const int64_t n_tile = rest / sk.splits;
  const int m0 = m_tile * BT;
  const int64_t n0 = n_tile * kRsRows;
  const int k_begin = split * sk.steps_per_split;
  const int k_end = min(src.k_steps(), k_begin + sk.steps_per_split);
  src.template init_shared<Act>(*s.tables, n0);
  if (threadIdx.x == 0) {
    for (int i = 0; i < kRsStages; ++i) {
      sm90::mbar_init(&s.full[i], 2);  // the packed step's and x's expect-tx arrivals
      sm90::mbar_init(&s.empty[i], kRsConsumerWarps);
    }
    sm90::mbar_init_fence();
  }
  __syncthreads();
  if (threadIdx.x < 32 * kRsConsumerWarps) {
    sm90::setmaxnreg_inc<232>();
    rs_consume<Act, Source, BT>(src, s, m0, n0, k_begin, k_end, sk, split, n_tile * m_tiles + m_tile, M, bias, y,
                                ldy, probe);
  } else {
    sm90::setmaxnreg_dec<40>();
    if (threadIdx.x == 32 * kRsConsumerWarps) rs_load<Source, BT>(src, &x_map, m0, n0, k_begin, k_end, s);
  }
#endif
}

// Diagnostic probe (QB_FUSED_PROBE=1, results wrong by design): constant A fragments (no conversion).
inline int rs_probe() {
  static const int probe = env_int("QB_FUSED_PROBE", 0);
  return probe;
}

// x [M, K] (16-bit, row stride ldx, 16-byte aligned, ldx % 8 == 0) times the Source's W, BT tokens per block,
// K's steps cut into `splits` ranges (1: none; > 1: `workspace` of rs_split_workspace_bytes(M, N, BT, splits)
// bytes, 16-byte aligned; its counters are zeroed here, on the stream).
template <typename Act, class Source, int BT>
void launch_rs(const Source& src, const void* x, int64_t ldx, int64_t K, const void* bias, void* y, int64_t ldy,
               int64_t M, cudaStream_t stream, int splits = 1, void* workspace = nullptr, size_t workspace_bytes = 0) {
  constexpr auto kernel = fused_gemm_rs_kernel<Act, Source, BT>;
  constexpr int smem = rs_dynamic_smem_bytes<Source, BT>();
  allow_dynamic_smem<kernel>(smem);
  const CUtensorMap x_map = x_tensor_map(x, M, K, ldx, BT);
  const int steps = static_cast<int>((K + kBK - 1) / kBK);
  RsSplit sk;
  sk.tiles = (M + BT - 1) / BT * ((src.n() + kRsRows - 1) / kRsRows);
  sk.steps_per_split = (steps + std::max(splits, 1) - 1) / std::max(splits, 1);
  sk.splits = (steps + sk.steps_per_split - 1) / sk.steps_per_split;  // no empty split
  if (sk.splits > 1) {
    const size_t need = rs_split_workspace_bytes(M, src.n(), BT, sk.splits);
    QB_CHECK(workspace != nullptr && reinterpret_cast<uintptr_t>(workspace) % 16 == 0 && workspace_bytes >= need,
             kInvalidInput, "fused prefill split-K: workspace of {} bytes at {} is not the {} bytes (16-byte aligned) "
             "{} splits need", workspace_bytes, workspace, need, sk.splits);
    sk.partial = static_cast<float*>(workspace);
    sk.counters = reinterpret_cast<unsigned*>(static_cast<uint8_t*>(workspace) + need - sk.tiles * 4);
    QB_CUDA_CHECK(cudaMemsetAsync(sk.counters, 0, sk.tiles * 4, stream));
  }
  const int64_t blocks = sk.tiles * sk.splits;
  kernel<<<static_cast<unsigned>(blocks), kRsThreads, smem, stream>>>(src, x_map, static_cast<const Act*>(bias),
                                                                       static_cast<Act*>(y), ldy, static_cast<int>(M),
                                                                       sk, rs_probe());
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace qb::kernels::fused
