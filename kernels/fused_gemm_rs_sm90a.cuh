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
// Status (NOTES-q4.md, "After the C7515 fix"; H100, bf16): gate_up nf4 at M = 512 with 256-token blocks 270.6 us =
// 1.29x cuBLAS (dequantize + cuBLAS 377 us), at M = 128 with 128-token blocks 113.6 us = 1.08x (281 us): the 4-bit
// default where the grid covers two waves (q4_fused_prefill_preferred). The 36-56-block shapes (qkv, o, down) tie
// or lose to dequantize + cuBLAS. Sources: 4-bit (kernels/q4_gemm_sm90a.cu), int8 (kernels/int8_gemm_sm90a.cu).
//
// The weight format is a Source (kernels/q4_gemm_sm90a.cu) providing
//   kPackedStepBytes, n(), k_steps(), load_step(k, n0, dst, bar)   as for the first form (one 64-column step of
//                                    the block's 128 rows, copied by the copy engine with expect-tx on bar)
//   Shared, init_shared(Shared&, n0) tables in shared memory (every thread, strided loops, before the role split)
//   fragments<Act>(k, n0, packed, shared, tile, lane, a)
//                                    the consumer warp's 16 rows (weight tile `tile` of the block's 8) x 64 columns
//                                    of step k as four k16 A fragments a[kk][4] (sm90::WgmmaRs's layout), the
//                                    step's columns 16kk .. 16kk + 15 in their natural order (x is not permuted)
//
// Block (384 threads, one per SM): warps 0-7 two consumer warpgroups (fragments of step k + 1 are built while
// the wgmmas of steps k and k - 1 run), warps 8-11 the producer warpgroup, of which one lane loads: per step, the Source's packed step and x's
// BT x 64 box (tensor map, 128B swizzle: the B operand as wgmma reads it; rows past M zero-filled).
// Stage s (kRsStages of them, 1024-aligned): x box (BT x 128 bytes), then the packed step. Barriers: full[s] (two expect-tx
// arrivals of the loader + the bytes), empty[s] (one arrival per consumer warp once its wgmmas on the stage
// retired, i.e. one step later). Parity waits are exact: no waiter can fall two phases behind.
// Grid: one block per (token tile, weight-row tile), token tiles fastest, so the blocks that share W's rows run
// together and all but the first read them from L2.
#pragma once

#include "fused_gemm_sm90a.cuh"  // tensor maps, alignment and switch helpers, kBK

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
         (static_cast<int>(sizeof(typename Source::Shared)) + 15) / 16 * 16 + 2 * kRsStages * 8;
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

  __device__ explicit RsSmem(uint8_t* raw) {
    const uint32_t pad = (1024u - (sm90::smem_addr(raw) & 1023u)) & 1023u;
    stages = raw + pad;
    tables = reinterpret_cast<typename Source::Shared*>(stages + kRsStages * rs_stage_bytes<Source, BT>());
    full = reinterpret_cast<uint64_t*>(reinterpret_cast<uint8_t*>(tables) +
                                       (static_cast<int>(sizeof(typename Source::Shared)) + 15) / 16 * 16);
    empty = full + kRsStages;
  }
  __device__ uint8_t* x(int stage) const { return stages + stage * rs_stage_bytes<Source, BT>(); }
  __device__ uint8_t* packed(int stage) const { return x(stage) + rs_x_bytes<BT>(); }
};

template <class Source, int BT>
__device__ __forceinline__ void rs_load(const Source& src, const void* x_map, int m0, int64_t n0,
                                        const RsSmem<Source, BT>& s) {
  for (int k = 0; k < src.k_steps(); ++k) {
    const int stage = k % kRsStages;
    if (k >= kRsStages) sm90::mbar_wait(&s.empty[stage], ((k / kRsStages) - 1) & 1);
    src.load_step(k, n0, s.packed(stage), &s.full[stage]);
    sm90::mbar_arrive_expect_tx(&s.full[stage], rs_x_bytes<BT>());
    sm90::tma_load_2d(s.x(stage), x_map, k * kBK, m0, &s.full[stage]);
  }
}

template <typename Act, class Source, int BT>
__device__ __forceinline__ void rs_consume(const Source& src, const RsSmem<Source, BT>& s, int m0, int64_t n0, int M,
                                           const Act* __restrict__ bias, Act* __restrict__ y, int64_t ldy,
                                           int probe) {
  using q4::ActOps;
  const int wg = threadIdx.x >> 7, warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
  const int tile = 4 * wg + warp;
  const int steps = src.k_steps();
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
    src.template fragments<Act>(0, n0, s.packed(0), *s.tables, tile, lane, sa);
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
        src.template fragments<Act>(k + 1, n0, s.packed(stage1), *s.tables, tile, lane, n);
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

  // d[4i + 2j + c]: D row (W row) 16 warp + lane / 4 + 8 j of this warpgroup's 64, D column (token)
  // 8 i + 2 (lane % 4) + c.
  const int64_t N = src.n();
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    const int64_t n = n0 + 64 * wg + 16 * warp + g + 8 * j;
    if (n >= N) continue;
    const float b = bias != nullptr ? ActOps<Act>::to_float(bias[n]) : 0.f;
#pragma unroll
    for (int i = 0; i < BT / 8; ++i)
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int m = m0 + 8 * i + 2 * t + c;
        if (m < M) y[static_cast<int64_t>(m) * ldy + n] = ActOps<Act>::from_float(d[4 * i + 2 * j + c] + b);
      }
  }
}

template <typename Act, class Source, int BT>
__global__ void __launch_bounds__(kRsThreads, 1)
    fused_gemm_rs_kernel(const __grid_constant__ Source src, const __grid_constant__ CUtensorMap x_map,
                         const Act* __restrict__ bias, Act* __restrict__ y, int64_t ldy, int M, int probe) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ uint8_t smem_raw[];
  const RsSmem<Source, BT> s(smem_raw);
  const int m_tiles = (M + BT - 1) / BT;
  const int m0 = static_cast<int>(blockIdx.x % m_tiles) * BT;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x / m_tiles) * kRsRows;
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
    rs_consume<Act, Source, BT>(src, s, m0, n0, M, bias, y, ldy, probe);
  } else {
    sm90::setmaxnreg_dec<40>();
    if (threadIdx.x == 32 * kRsConsumerWarps) rs_load<Source, BT>(src, &x_map, m0, n0, s);
  }
#endif
}

// Diagnostic probe (QB_FUSED_PROBE=1, results wrong by design): constant A fragments (no conversion).
inline int rs_probe() {
  static const int probe = [] {
    const char* v = std::getenv("QB_FUSED_PROBE");
    return v != nullptr ? std::atoi(v) : 0;
  }();
  return probe;
}

// x [M, K] (16-bit, row stride ldx, 16-byte aligned, ldx % 8 == 0) times the Source's W, BT tokens per block.
template <typename Act, class Source, int BT>
void launch_rs(const Source& src, const void* x, int64_t ldx, int64_t K, const void* bias, void* y, int64_t ldy,
               int64_t M, cudaStream_t stream) {
  constexpr auto kernel = fused_gemm_rs_kernel<Act, Source, BT>;
  constexpr int smem = rs_dynamic_smem_bytes<Source, BT>();
  allow_dynamic_smem<kernel>(smem);
  const CUtensorMap x_map = x_tensor_map(x, M, K, ldx, BT);
  const int64_t blocks = (M + BT - 1) / BT * ((src.n() + kRsRows - 1) / kRsRows);
  kernel<<<static_cast<unsigned>(blocks), kRsThreads, smem, stream>>>(
      src, x_map, static_cast<const Act*>(bias), static_cast<Act*>(y), ldy, static_cast<int>(M), rs_probe());
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace qb::kernels::fused
