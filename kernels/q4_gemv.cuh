// 4-bit decode / small-batch GEMM straight from the tile layout: nf4, fp4 (bitsandbytes) and awq.
//
// Contract
//   y[m, n] = sum_k x[m, k] w[n, k] (+ bias[n]),  0 <= m < M <= 8 * NT (NT <= 8), 0 <= n < N.
//   x [M, ldx] Act (fp16 / bf16), 16-byte aligned, ldx % 8 == 0; columns >= K never read.
//   w tile layout (quantbench/kernels/q4_layout.h): K % 64 == 0, codes [n_tiles][K/64][32 lanes][16 bytes],
//     scales [n_tiles][K/U][8 g][2 h] (U = 64 << unit_shift):
//       kAbsmaxF32    float absmax                      w = codebook[c] * absmax
//       kAbsmaxNested uint8 code, nested (abs, off)     w = codebook[c] * (nested_code[u8] * abs + off)
//       kAffine       uint32 fp16 scale | zero << 16     w = (c - zero) * scale      (codebook 0..15)
//       kAbsmax16     uint16 absmax (bf16 or fp16 bits)  w = codebook[c] * absmax   (the same fp32 absmax)
//   bias [N] Act or null; y [M, ldy] Act; rows >= N and columns >= M of y are never written.
//   Deterministic: every sum is taken in a fixed order. No allocation; capturable in a CUDA graph.
//
// Work split. A block of S warps (S = blockDim / 32: 4, 8 or 16) works on one 16-row tile at a time; warp w
// takes the tile's 64-column chunks w, w + S, w + 2S, ... so that the block's loads in flight cover one
// contiguous stretch of the tile (DRAM locality; the int8 GEMV measured contiguous per-warp ranges 10% slower).
// A block loops over tiles blockIdx.x, + gridDim.x, ...: one block per tile when the tiles all fit on the chip
// at once, else a persistent grid of as many blocks as are resident. After each tile the S partial results meet
// in shared memory (double-buffered, summed in warp order) and one rounding to Act writes y.
// Gated epilogue (kGated, gated_epilogue.h; N % 32 == 0; instantiated for NT = 1 only): a block's tiles come in
// pairs, gate tile j then up tile j + T / 2 (j = blockIdx.x, + gridDim.x, ...; the grid is at most T / 2); the gate
// tile's fp32 sums wait in shared memory (gate_sums) and the up tile's epilogue writes act(gate) * up into
// y [M, ldy] at gate row j's columns.
//
// Loads. Each warp streams its chunks through its own ring of `stages` shared-memory slots filled by cp.async
// (cp.async.cg: L2 only): lane l copies bytes 16l..16l+15 of the chunk (the ones it later reads itself), lanes
// 0..3 (lane 0 for nested codes) the chunk's 64-byte (16-byte) scale record. The copies carry the L2 policy
// `weight_policy` (l2_policy.cuh: evict-first unless QB_L2_EVICT_FIRST=0). stages - 1 chunks per warp are in
// flight without holding a register: the previous kernel kept its ring in registers, ran at 80-128 registers per
// thread, 16-24 warps per SM, and its bandwidth tracked its bytes in flight (NOTES-q4.md). x is read through L1
// with 16-byte __ldg (hot after the first touch on each SM); on tensor cores from the fragment-ordered copy
// q4_x_fragments writes (x_frag), where one warp load is 512 contiguous bytes instead of pieces of 8 rows.
//
// Per chunk lane (g, t) owns rows g, g+8 of the tile and columns 16t..16t+15 of the chunk: byte b (0..7) of a
// row covers columns 16t+2b (high nibble) and 16t+2b+1 (low nibble). A byte becomes a pair of Act values
// (column 2b in the low half):
//   a [256 byte values][32 lanes] table of (codebook[hi], codebook[lo]) words in shared memory (lane l reads
//   column l: no bank conflicts), PRMT + IMAD + LDS.
//   nf4/fp4: the codebook is rounded to Act once (fp16: <= 2^-12, bf16: <= 2^-9 relative).
//   awq:     the codebook is 0..15 (exact); one fma2 makes (code - zero) * unit, exact (unit: q4_common.cuh).
//            (Was PRMT + LOP3 with a magic exponent + fma2, no table: the ALU pipe ran at 53% on gate_up and
//            every awq shape took ~23% longer than nf4; through the table, 3-16% longer.)
// Tensor cores (kCudaCores false, any M): mma.m16n8k16 with the lane's physical columns in the fragment's
//   logical k slots (step j takes columns 16t + 4j + {0,1} as k {2t, 2t+1} and +{2,3} as {2t+8, 2t+9}; x is
//   loaded to match: 16 consecutive values per lane and token), fp32 accumulation; each chunk's partial sum is
//   scaled per row in fp32 (absmax; nested absmax resolved per chunk as bitsandbytes rounds it; awq scale).
// CUDA cores (kCudaCores true, M = 1): fma.rn.{f16,bf16}x2 of the pair with the x pair into a pair accumulator
//   over the row's 8 bytes (8 products per half), then to fp32, scaled, accumulated in fp32. Error of that
//   partial: <= 8 u sum|products| (u = 2^-11 fp16, 2^-8 bf16), independent across the K/16 partials, so the
//   result keeps a relative error of a few u (bound and test: tests/test_bnb_4bit_gpu.cpp). Range: fp16
//   partials overflow only when 8 |code| |x| > 65504, i.e. |x| > 8188 (nf4/fp4) or > 8735 (awq, whose fp16
//   codes enter as (code - zero) / 16: |.| <= 15/16); products below 2^-14 are fp16 subnormals (2^-24 absolute
//   error), which for awq starts at |x| ~ 2^-10 rather than 2^-14 (the price of the 1/16).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "activation.cuh"
#include "pdl.cuh"
#include "q4_common.cuh"
#include "quantbench/kernels/gated_epilogue.h"
#include "quantbench/kernels/q4_gemm.h"

namespace qb::kernels::q4 {

constexpr int kChunkCodeBytes = 512;
constexpr int kStageBytes = 2 * kChunkCodeBytes + 2 * 64;  // two chunks' codes + their scale records


// Dynamic shared memory of one block: partial sums [2][S][NT*4][32] fp32, nested code map [256] fp32 (nested
// only), gate_sums [NT*8 tokens][16 rows] fp32 (gated only), the warps' rings [S][stages][kStageBytes].
__host__ __device__ inline size_t gemv_gate_floats(bool gated, int nt) {
  return gated ? static_cast<size_t>(nt) * 8 * 16 : 0;
}
inline size_t gemv_dynamic_smem_bytes(Q4ScaleMode mode, int nt, int warps, int stages, bool gated) {
  return sizeof(float) * (2 * static_cast<size_t>(warps) * nt * 4 * 32 + (mode == Q4ScaleMode::kAbsmaxNested ? 256 : 0) +
                          gemv_gate_floats(gated, nt)) +
         static_cast<size_t>(warps) * stages * kStageBytes;
}

// Values computed once per thread and kept in a register: an empty asm the compiler cannot see through, so it
// neither re-derives them inside the loop (it did: S2R, shared-window math per chunk) nor folds them.
__device__ __forceinline__ uint32_t pinned(uint32_t v) {
  asm volatile("" : "+r"(v));
  return v;
}
template <typename T>
__device__ __forceinline__ const T* pinned(const T* p) {
  asm volatile("" : "+l"(p));
  return p;
}

__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// With an L2 policy. ptxas 13.0 miscompiles this form when it folds a warp-uniform part of `dst` into the address
// ([Ra + URb]): the LDGSTS then names a descriptor register nothing defines (desc[UR1] beside [R + UR0];
// cudaErrorIllegalInstruction on the H100, session 24). The callers pass a destination computed per lane, which
// keeps it in a plain register; scripts/check-sass-descriptors.py checks the built objects for the pattern.
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, uint64_t policy) {
  asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "l"(policy)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
// Wait until at most `pending` groups are outstanding (ring depths the host allows: 2, 3, 4, 6).
__device__ __forceinline__ void cp_async_wait_pending(int pending) {
  switch (pending) {
    case 1: asm volatile("cp.async.wait_group 1;" ::: "memory"); break;
    case 2: asm volatile("cp.async.wait_group 2;" ::: "memory"); break;
    case 3: asm volatile("cp.async.wait_group 3;" ::: "memory"); break;
    case 5: asm volatile("cp.async.wait_group 5;" ::: "memory"); break;
    default: asm volatile("cp.async.wait_group 0;" ::: "memory"); break;
  }
}

// awq: the pair -(zero * unit) that code_pair adds to (code_hi, code_lo) * unit, unit = 1/16 (fp16) or 1 (bf16):
// exact either way (q4_common.cuh says why fp16 codes are scaled).
template <typename Act>
__device__ __forceinline__ uint32_t affine_neg_zero(uint32_t word) {
  const float nz = -static_cast<float>(word >> 16) * ActOps<Act>::kAffineMul1;  // zero point 0..15
  return ActOps<Act>::pack(nz, nz);
}

template <typename Act, Q4ScaleMode MODE, int B>
__device__ __forceinline__ uint32_t code_pair(uint32_t lane_base, uint32_t word, uint32_t neg_zero) {
  if constexpr (MODE == Q4ScaleMode::kAffine) {
    // The table holds the exact codes (awq's codebook is 0..15); one fma2 makes (code - zero) * unit, exact.
    return ActOps<Act>::fma2(table_pair<B>(lane_base, word), ActOps<Act>::kAffineMul, neg_zero);
  } else {
    return table_pair<B>(lane_base, word);
  }
}

// The scales of rows g and g + 8 of one chunk (and awq's -zero pairs), from its record `rec` in shared memory.
struct ChunkScales {
  float sg, sg8;
  uint32_t nz_g, nz_g8;
};
template <typename Act, Q4ScaleMode MODE>
__device__ __forceinline__ ChunkScales chunk_scales(const Q4TileWeights& w, const uint8_t* rec, int chunk,
                                                    int64_t tile, int units, int g, const float* nested_code) {
  float sg, sg8;
  uint32_t nz_g = 0, nz_g8 = 0;
  if constexpr (MODE == Q4ScaleMode::kAbsmaxF32) {
    const float2 s = *reinterpret_cast<const float2*>(rec + g * 8);
    sg = s.x;
    sg8 = s.y;
  } else if constexpr (MODE == Q4ScaleMode::kAbsmax16) {
    const uint32_t s = *reinterpret_cast<const uint32_t*>(rec + g * 4);  // row g low half, row g + 8 high
    sg = absmax16(s, w.absmax_f16);
    sg8 = absmax16(s >> 16, w.absmax_f16);
  } else if constexpr (MODE == Q4ScaleMode::kAbsmaxNested) {
    const uint32_t codes = *reinterpret_cast<const uint16_t*>(rec + g * 2);
    const int64_t unit = chunk >> w.unit_shift;
    const int64_t row_g = min(tile * 16 + g, w.N - 1), row_g8 = min(tile * 16 + g + 8, w.N - 1);
    sg = nested_absmax(nested_code[codes & 0xFFu], __ldg(w.nested + ((row_g * units + unit) >> 8)));
    sg8 = nested_absmax(nested_code[codes >> 8], __ldg(w.nested + ((row_g8 * units + unit) >> 8)));
  } else {
    const uint2 s = *reinterpret_cast<const uint2*>(rec + g * 8);
    sg = affine_scale(s.x) * ActOps<Act>::kAffineScale;
    sg8 = affine_scale(s.y) * ActOps<Act>::kAffineScale;
    nz_g = affine_neg_zero<Act>(s.x);
    nz_g8 = affine_neg_zero<Act>(s.y);
  }
  return {sg, sg8, nz_g, nz_g8};
}

// One chunk's contribution: codes = the lane's 16 bytes, scales = the chunk's (chunk_scales).
// x_lane[nt] = x + (nt * 8 + g) * ldx + 16 t (row M - 1 for rows past M, x_valid false: loaded as zeros).
template <typename Act, Q4ScaleMode MODE, int NT, bool kCudaCores, bool kXFrag>
__device__ __forceinline__ void gemv_chunk(const Act* const (&x_lane)[NT], const bool (&x_valid)[NT], uint4 wv,
                                           const ChunkScales& scales, int chunk, uint32_t lane_base,
                                           float (&acc)[NT][4], const Act* x_frag_base) {
  const float sg = scales.sg, sg8 = scales.sg8;
  const uint32_t nz_g = scales.nz_g, nz_g8 = scales.nz_g8;
  if constexpr (kCudaCores) {
    const Act* xp = x_lane[0] + chunk * 64;  // every lane: the token's 16 values of its columns
    const uint4 x0 = load_cached16(xp), x1 = load_cached16(xp + 8);
    const uint32_t xw[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const uint32_t wa = h == 0 ? wv.x : wv.z, wb = h == 0 ? wv.y : wv.w;
      const uint32_t nz = h == 0 ? nz_g : nz_g8;
      uint32_t s2 = 0;
      s2 = ActOps<Act>::fma2(code_pair<Act, MODE, 0>(lane_base, wa, nz), xw[0], s2);
      s2 = ActOps<Act>::fma2(code_pair<Act, MODE, 1>(lane_base, wa, nz), xw[1], s2);
      s2 = ActOps<Act>::fma2(code_pair<Act, MODE, 2>(lane_base, wa, nz), xw[2], s2);
      s2 = ActOps<Act>::fma2(code_pair<Act, MODE, 3>(lane_base, wa, nz), xw[3], s2);
      s2 = ActOps<Act>::fma2(code_pair<Act, MODE, 0>(lane_base, wb, nz), xw[4], s2);
      s2 = ActOps<Act>::fma2(code_pair<Act, MODE, 1>(lane_base, wb, nz), xw[5], s2);
      s2 = ActOps<Act>::fma2(code_pair<Act, MODE, 2>(lane_base, wb, nz), xw[6], s2);
      s2 = ActOps<Act>::fma2(code_pair<Act, MODE, 3>(lane_base, wb, nz), xw[7], s2);
      const float2 f = ActOps<Act>::to_float2(s2);
      acc[0][2 * h] = fmaf(h == 0 ? sg : sg8, f.x + f.y, acc[0][2 * h]);
    }
  } else {
    uint4 xv[NT][2];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      if constexpr (kXFrag) {  // x in fragment order (q4_x_fragments.cu): each load 512 contiguous bytes a warp
        const Act* xf = x_frag_base + static_cast<int64_t>((chunk * NT + nt) * 2) * 256 + (threadIdx.x & 31) * 8;
        xv[nt][0] = load_cached16(xf);
        xv[nt][1] = load_cached16(xf + 256);
      } else if (x_valid[nt]) {
        const Act* xp = x_lane[nt] + chunk * 64;
        xv[nt][0] = load_cached16(xp);
        xv[nt][1] = load_cached16(xp + 8);
      } else {
        xv[nt][0] = xv[nt][1] = make_uint4(0, 0, 0, 0);
      }
    }
    float part[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) part[nt][0] = part[nt][1] = part[nt][2] = part[nt][3] = 0.f;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const uint32_t rg = j < 2 ? wv.x : wv.y, rg8 = j < 2 ? wv.z : wv.w;
      uint32_t a[4];
      if ((j & 1) == 0) {
        a[0] = code_pair<Act, MODE, 0>(lane_base, rg, nz_g);    // row g,   physical columns 16t+4j+{0,1}
        a[1] = code_pair<Act, MODE, 0>(lane_base, rg8, nz_g8);  // row g+8
        a[2] = code_pair<Act, MODE, 1>(lane_base, rg, nz_g);    // row g,   columns 16t+4j+{2,3}
        a[3] = code_pair<Act, MODE, 1>(lane_base, rg8, nz_g8);
      } else {
        a[0] = code_pair<Act, MODE, 2>(lane_base, rg, nz_g);
        a[1] = code_pair<Act, MODE, 2>(lane_base, rg8, nz_g8);
        a[2] = code_pair<Act, MODE, 3>(lane_base, rg, nz_g);
        a[3] = code_pair<Act, MODE, 3>(lane_base, rg8, nz_g8);
      }
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const uint4& xq = xv[nt][j >> 1];
        ActOps<Act>::mma(part[nt], a, (j & 1) ? xq.z : xq.x, (j & 1) ? xq.w : xq.y);
      }
    }
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      acc[nt][0] = fmaf(sg, part[nt][0], acc[nt][0]);
      acc[nt][1] = fmaf(sg, part[nt][1], acc[nt][1]);
      acc[nt][2] = fmaf(sg8, part[nt][2], acc[nt][2]);
      acc[nt][3] = fmaf(sg8, part[nt][3], acc[nt][3]);
    }
  }
}

template <typename Act, Q4ScaleMode MODE, int NT, bool kCudaCores, bool kGated, bool kXFrag>
__global__ void __launch_bounds__(NT >= 4 ? 256 : 512, NT == 1 ? 2 : 1)
    q4_gemv_kernel(const __grid_constant__ Q4TileWeights w, const Act* __restrict__ x, int64_t ldx,
                   const Act* __restrict__ bias, Act* __restrict__ y, int64_t ldy, int M, int stages,
                   ActType gate_act, uint64_t weight_policy) {
  static_assert(!kXFrag || !kCudaCores, "x in fragment order is the tensor-core path's");
  static_assert(!kCudaCores || NT == 1, "the CUDA-core path computes one token");
  constexpr bool kNested = MODE == Q4ScaleMode::kAbsmaxNested;
  constexpr int kRecordLanes = scale_record_bytes(MODE) / 16;  // lanes copying one chunk's scale record
  constexpr int kParts = NT * 4;  // fp32 partial sums per lane per tile (the mma accumulator layout)
  __shared__ __align__(16) uint32_t table[kPairTableWords];
  extern __shared__ __align__(16) uint8_t dyn_smem[];

  const int tid = static_cast<int>(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int S = static_cast<int>(blockDim.x >> 5);
  const int g = lane >> 2, t = lane & 3;
  const int C = static_cast<int>(w.K >> 6);
  const int units = static_cast<int>(w.K >> (6 + w.unit_shift));
  const int T = static_cast<int>((w.N + 15) >> 4);
  const int cnt = ((C + 1) / 2 + S - 1) / S;  // chunk-pair slots per warp per tile (the last may be empty)
  const int grid = static_cast<int>(gridDim.x);
  const int half_T = T >> 1;  // gated: the up tiles start here (T even, host-checked)
  // Gated, this block's i-th tile: (gate j, up j + T / 2) pairs, j = blockIdx.x + grid (i / 2).
  auto tile_of = [&](int i) { return static_cast<int>(blockIdx.x) + grid * (i >> 1) + (i & 1) * half_T; };
  const int block_units = kGated ? half_T : T;  // tiles or tile pairs; host: gridDim.x <= block_units
  const int my_tiles = ((block_units - 1 - static_cast<int>(blockIdx.x)) / grid + 1) * (kGated ? 2 : 1);
  const int total = my_tiles * cnt;

  float* partial = reinterpret_cast<float*>(dyn_smem);  // [2][S][kParts][32]
  float* nested_code = partial + 2 * S * kParts * 32;   // [256], nested only
  float* gate_sums = nested_code + (kNested ? 256 : 0);  // [NT * 8][16], gated only
  const uint8_t* ring = reinterpret_cast<const uint8_t*>(gate_sums + gemv_gate_floats(kGated, NT)) +
                        warp * stages * kStageBytes;
  const uint32_t ring_lane_s = pinned(smem_address(ring) + static_cast<uint32_t>(lane) * 16);
  const uint32_t ring_bytes = static_cast<uint32_t>(stages * kStageBytes);
  const uint8_t* scale_bytes = static_cast<const uint8_t*>(w.scales);
  const int64_t tile_scale_bytes = static_cast<int64_t>(units) * scale_record_bytes(MODE);

  // Producer: item q = (tile i of this block, pair slot j of this warp) = chunks 2p, 2p+1 with p = warp + S j.
  // Its source pointers advance by S pairs within a tile and are recomputed when the tile changes. The slot
  // pointer advances on every call, so that after issue() it names the slot the consumer reads next.
  int p_q = 0, p_j = 0, p_chunk = 2 * warp, p_item = 0;
  int64_t p_tile = blockIdx.x;
  uint32_t p_off = 0;
  // p_dst = ring_lane_s + p_off, advanced on its own rather than summed at each copy: see cp_async16.
  uint32_t p_dst = ring_lane_s;
  const uint32_t ring_lane_end = ring_lane_s + ring_bytes;
  const uint8_t* p_codes = w.tiles + ((p_tile * C + p_chunk) * 32 + lane) * 16;
  const uint8_t* p_scales = scale_bytes + p_tile * tile_scale_bytes;
  // Lanes 0 .. 2 kRecordLanes - 1 copy the two chunks' scale records (16 bytes each) to stage + 1024 + h * 64.
  const int rec_h = lane / kRecordLanes, rec_part = lane % kRecordLanes;
  const uint32_t rec_dst = 2 * kChunkCodeBytes + rec_h * 64 + rec_part * 16 - lane * 16;  // from p_dst, mod 2^32
  auto issue = [&]() {
    if (p_q < total && p_chunk < C) {
      cp_async16(p_dst, p_codes, weight_policy);
      if (p_chunk + 1 < C) cp_async16(p_dst + kChunkCodeBytes, p_codes + kChunkCodeBytes, weight_policy);
      if (rec_h < 2 && p_chunk + rec_h < C) {
        cp_async16(p_dst + rec_dst,
                   p_scales + ((p_chunk + rec_h) >> w.unit_shift) * scale_record_bytes(MODE) + rec_part * 16,
                   weight_policy);
      }
    }
    cp_async_commit();  // one group per item, empty past the end: the wait count stays uniform
    ++p_q;
    p_off = p_off + kStageBytes == ring_bytes ? 0u : p_off + kStageBytes;
    p_dst = p_dst + kStageBytes == ring_lane_end ? ring_lane_s : p_dst + kStageBytes;
    p_chunk += 2 * S;
    p_codes += static_cast<int64_t>(S) * 2 * kChunkCodeBytes;
    if (++p_j == cnt) {
      p_j = 0;
      p_chunk = 2 * warp;
      if constexpr (kGated) {
        p_tile = tile_of(++p_item);
      } else {
        p_tile += grid;
      }
      p_codes = w.tiles + ((p_tile * C + p_chunk) * 32 + lane) * 16;
      p_scales = scale_bytes + p_tile * tile_scale_bytes;
    }
  };
  for (int s = 0; s < stages - 1; ++s) issue();  // first loads in flight before the table is built
  fill_pair_table<Act>(table, w.codebook);
  if constexpr (kNested) {
    for (int i = tid; i < 256; i += static_cast<int>(blockDim.x)) nested_code[i] = w.nested_code[i];
  }
  __syncthreads();
  // Launched with PDL (pdl.cuh): the ring's first stages and the tables above read only weights, so
  // they overlap the tail of the kernel that writes x; x is read only after this.
  pdl_wait();
  pdl_launch_dependents();
  const uint32_t lane_base = pinned(smem_address(table) + static_cast<uint32_t>(lane) * 4);
  const Act* x_lane[NT];
  bool x_valid[NT];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const int m = kCudaCores ? 0 : nt * 8 + g;
    x_valid[nt] = m < M;
    x_lane[nt] = pinned(x + static_cast<int64_t>(min(m, M - 1)) * ldx + 16 * t);
  }

  float acc[NT][4];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.f;
  // kXFrag: x is q4_x_fragments' copy [K/64][NT][2][32 lanes][8] (zeros past M). A template parameter: as a runtime
  // branch in the chunk loop it slowed the row-layout path (Qwen2-7B nf4 batch 16: 3830 tok/s with the branch, 4716
  // without; BENCHMARKS.md, session 24).
  const Act* const x_frag_base = kXFrag ? x : nullptr;

  int c_j = 0, c_tile = static_cast<int>(blockIdx.x), c_item = 0, buf = 0;
  for (int q = 0; q < total; ++q) {
    issue();                            // item q + stages - 1; p_off now names item q's slot
    cp_async_wait_pending(stages - 1);  // item q's group has landed
    __syncwarp();                       // the scale records were copied by other lanes
    const int chunk = 2 * (warp + S * c_j);
    if (chunk < C) {
      const uint8_t* stage = ring + p_off;
      const uint4 wv0 = *reinterpret_cast<const uint4*>(stage + lane * 16);
      const uint4 wv1 = *reinterpret_cast<const uint4*>(stage + kChunkCodeBytes + lane * 16);
      const ChunkScales sc0 =
          chunk_scales<Act, MODE>(w, stage + 2 * kChunkCodeBytes, chunk, c_tile, units, g, nested_code);
      gemv_chunk<Act, MODE, NT, kCudaCores, kXFrag>(x_lane, x_valid, wv0, sc0, chunk, lane_base, acc, x_frag_base);
      if (chunk + 1 < C) {
        // awq with groups of 128 columns or more (unit_shift >= 1): the pair (chunk even) is one unit, so the second
        // chunk's record is the first's and its decode (two fp16 scales, two zero pairs) is skipped. Other modes keep
        // their per-chunk decode: the same reuse for every mode (28c79a4) cost nf4 at its default 64-column blocks
        // 1.1% at batch 1 (554.4 / 554.1 vs 560.5 tok/s, same call) and won 0.2% with 128-column blocks.
        ChunkScales sc1;
        if (MODE == Q4ScaleMode::kAffine && w.unit_shift > 0) {
          sc1 = sc0;
        } else {
          sc1 = chunk_scales<Act, MODE>(w, stage + 2 * kChunkCodeBytes + 64, chunk + 1, c_tile, units, g, nested_code);
        }
        gemv_chunk<Act, MODE, NT, kCudaCores, kXFrag>(x_lane, x_valid, wv1, sc1, chunk + 1, lane_base, acc,
                                                      x_frag_base);
      }
    }
    __syncwarp();  // every lane is done with this slot before the next issue() refills it

    if (++c_j == cnt) {  // the tile is done on every warp (cnt is the same for all): combine and write
      float* pb = partial + buf * (S * kParts * 32);
      if constexpr (kCudaCores) {  // the 4 lanes of a row hold different columns: sum them
#pragma unroll
        for (int e = 0; e < 4; e += 2) {
          acc[0][e] += __shfl_xor_sync(0xFFFFFFFFu, acc[0][e], 1);
          acc[0][e] += __shfl_xor_sync(0xFFFFFFFFu, acc[0][e], 2);
        }
      }
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          pb[(warp * kParts + nt * 4 + e) * 32 + lane] = acc[nt][e];
          acc[nt][e] = 0.f;
        }
      __syncthreads();
      const int64_t row0 = static_cast<int64_t>(c_tile) * 16;
      for (int o = tid; o < 16 * M; o += static_cast<int>(blockDim.x)) {
        const int m = o >> 4, r = o & 15;
        const int64_t n = row0 + r;
        if (n < w.N) {
          // accumulator layout: lane (g, t) holds (row g | g+8, token 2t | 2t+1) of each 8-token slice
          const int idx = ((m >> 3) * 4 + (r >> 3) * 2 + (m & 1)) * 32 + (r & 7) * 4 + ((m & 7) >> 1);
          float sum = 0.f;
          for (int p = 0; p < S; ++p) sum += pb[p * kParts * 32 + idx];
          if (bias != nullptr) sum += ActOps<Act>::to_float(bias[n]);
          if constexpr (!kGated) {
            y[static_cast<int64_t>(m) * ldy + n] = ActOps<Act>::from_float(sum);
          } else if ((c_item & 1) == 0) {
            gate_sums[o] = sum;  // read back by this thread (same o) in the up tile's epilogue
          } else {
            y[static_cast<int64_t>(m) * ldy + (n - 16 * half_T)] = gated_output<Act>(gate_sums[o], sum, gate_act);
          }
        }
      }
      buf ^= 1;  // the next tile writes the other buffer; this one is re-written only after the next barrier
      c_j = 0;
      if constexpr (kGated) {
        c_tile = tile_of(++c_item);
      } else {
        c_tile += grid;
      }
    }
  }
}

// Host side of one instantiation (defined in q4_gemv_launch.cuh, instantiated per activation type).
template <typename Act, Q4ScaleMode MODE, int NT, bool kCudaCores, bool kGated = false>
struct GemvKernel {
  // Blocks of `warps` warps with a `stages`-deep ring resident per SM (0 when the block does not fit).
  static int resident_blocks(int warps, int stages);
  static void launch(const Q4TileWeights& w, const void* x, int64_t ldx, const void* bias, void* y, int64_t ldy, int M,
                     int warps, int stages, int grid, ActType gate_act, cudaStream_t stream, bool x_frag = false);
};

// Defined in q4_gemv_launch.cuh, instantiated in kernels/q4_gemv_<act>_<mode>.cu.
#define QB_Q4_GEMV_EXTERN(ACT, MODE)                           \
  extern template struct GemvKernel<ACT, MODE, 1, false>;      \
  extern template struct GemvKernel<ACT, MODE, 2, false>;      \
  extern template struct GemvKernel<ACT, MODE, 4, false>;      \
  extern template struct GemvKernel<ACT, MODE, 8, false>;      \
  extern template struct GemvKernel<ACT, MODE, 1, true>;       \
  extern template struct GemvKernel<ACT, MODE, 1, false, true>; \
  extern template struct GemvKernel<ACT, MODE, 1, true, true>;
QB_Q4_GEMV_EXTERN(__half, Q4ScaleMode::kAbsmaxF32)
QB_Q4_GEMV_EXTERN(__half, Q4ScaleMode::kAbsmaxNested)
QB_Q4_GEMV_EXTERN(__half, Q4ScaleMode::kAffine)
QB_Q4_GEMV_EXTERN(__half, Q4ScaleMode::kAbsmax16)
QB_Q4_GEMV_EXTERN(__nv_bfloat16, Q4ScaleMode::kAbsmaxF32)
QB_Q4_GEMV_EXTERN(__nv_bfloat16, Q4ScaleMode::kAbsmaxNested)
QB_Q4_GEMV_EXTERN(__nv_bfloat16, Q4ScaleMode::kAffine)
QB_Q4_GEMV_EXTERN(__nv_bfloat16, Q4ScaleMode::kAbsmax16)
#undef QB_Q4_GEMV_EXTERN

}  // namespace qb::kernels::q4
