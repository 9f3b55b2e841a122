// Decode GEMV on tensor cores, shared by the dense (fp16/bf16) and int8 weight-only formats.
//
// Contract
//   y[m, n] = sum_k x[m, k] * W[n, k]  (* scale)  (+ bias[n]),  0 <= m < M <= MT*8, 0 <= n < N.
//   x    [M, ldx]  fp16 or bf16 (T), row-major; columns >= K are never read. K % 8 == 0, ldx % 8 == 0,
//                  base 16-byte aligned.
//   W    [N, ldw]  row-major: T (dense) or int8 (kInt8). The kernel streams columns [0, k_weights):
//                  dense k_weights = K; int8 k_weights = K rounded up to 16, columns K.. are zero
//                  (the format pads them at quantize time). ldw * sizeof(weight) % 16 == 0.
//   scales fp32: int8 per channel [N] (applied in the epilogue), or per group [N, scale_ld] with
//                  group size = 64 * group_steps (applied after each 64-wide k step, fp32).
//   bias [N] in T or null; y [M, ldy] in T.
//   Accumulation: fp32 in the mma accumulators, reduced across warps in fp32, one rounding to T.
//   GATED (gated_epilogue.h): W's rows are [gate | up] (N % 32 == 0) and y [M, ldy] gets act(gate) * up for the
//   N / 2 gate rows instead. RT = 2: block b computes gate tile b and up tile b + N / 32 as its two row tiles (N / 32
//   blocks of 16 outputs). RT = 1 (paired rows): block b's one tile is gate rows 8b .. 8b + 7 as its rows g and up
//   rows N / 2 + 8b .. as its rows g + 8, so a block is the ungated kernel's block in all but its row addresses (N / 16
//   blocks of 8 outputs, the same form, registers and residency), and each row's fp32 sum is the ungated kernel's
//   bit for bit.
//
// Tiling. A block of KSPLIT warps owns 16*RT output rows and walks K in rounds of KSPLIT x UNROLL
// steps, warp w taking steps w, w + KSPLIT, ... of each round (UNROLL 16-byte loads per row in
// flight per lane); a warp step covers 64 k (int8) or 32 k (dense).
// PIPE: round r + 1's loads are issued before round r is computed (gemv_pipeline_pays says where that pays).
// RT > 1 (row tiles per warp) reuses each activation load for RT x 16 rows: at M > 8 the x traffic
// per weight byte is what limits the kernel.
// The trick that lets a 16-byte weight load feed mma.sync directly: a dot product does not care
// about the order of k, so each lane's *physical* 16 bytes go to the *logical* k slots the mma
// fragment wants.
// Lane (g = lane/4, t = lane%4) loads rows n0+g and n0+g+8 (of each row tile) at k = step*64 + 16t (int8: 16
// weights) or step*32 + 8t (dense: 8 weights); the four lanes of a row read 64 contiguous bytes.
// For mma j (k16), lane (g,t) holds logical slots {2t, 2t+1, 2t+8, 2t+9} of A rows g and g+8; we
// fill them with its physical elements 4j..4j+3. The B fragment (x^T, k16 x n8, "col") asks lane
// (g,t) for the same slots of token column g, i.e. x[g][k + 4j .. 4j+3]: the same 16 (or 8)
// consecutive activations, one or two 16-byte loads. Accumulator lane (g,t) ends with rows
// {g, g+8} x tokens {2t, 2t+1} of each 8-token tile.
//
// int8 -> 16-bit is exact: fp16 via the 0x6400 magic (1024 + byte, minus 1152); bf16 via fp32 magic (2^23 + byte)
// then a packing convert, or, in the one-tile kernels (MT = 1), with integer ops and one packed fma a pair
// (int8x4_to_pairs_alu: faster there, slower at MT = 2).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "activation.cuh"
#include "l2_policy.cuh"
#include "pdl.cuh"
#include "quantbench/core/env_switch.h"
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/device_limits.h"

namespace qb::kernels::gemv {

enum class WeightKind { kHalf16, kInt8 };

struct GemvParams {
  const void* x = nullptr;
  int64_t ldx = 0;
  const void* w = nullptr;
  int64_t ldw = 0;              // in weight elements
  const float* scales = nullptr;
  int64_t scale_ld = 0;         // per group: groups per row
  int group_steps = 0;          // per group: group size / 64
  const void* bias = nullptr;
  void* y = nullptr;
  int64_t ldy = 0;
  int M = 0, N = 0, K = 0;
  int k_weights = 0;
  ActType act = ActType::kSilu;  // GATED only
  bool weights_evict_first = true;  // W's loads evict-first in L2 (l2_policy.cuh); set by launch_gemv_mma
};

// ---- small device helpers ---------------------------------------------------------------------

// Weights are read once: keep them out of L1 so that the activations (re-read by every warp) stay.
__device__ __forceinline__ uint4 load_stream16(const void* ptr) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(ptr));
  return v;
}
// The same with an L2 eviction policy (weight_stream_policy, l2_policy.cuh).
__device__ __forceinline__ uint4 load_stream16(const void* ptr, uint64_t policy) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.L2::cache_hint.v4.u32 {%0, %1, %2, %3}, [%4], %5;"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(ptr), "l"(policy));
  return v;
}

__device__ __forceinline__ uint4 load_cached16(const void* ptr) { return __ldg(reinterpret_cast<const uint4*>(ptr)); }
// Data the kernel before writes (x), read after pdl_wait(): a coherent load. ptxas treats ld.global.nc (__ldg) as
// read-only for the whole kernel and moved the round's grouped x loads (XLoad::kAhead) above griddepcontrol.wait (SASS:
// LDG.E.128.CONSTANT before ACQBULK); an ordinary ld.global stays after it, and still allocates in L1.
__device__ __forceinline__ uint4 load_after_wait16(const void* ptr) {
  uint4 v;
  asm volatile("ld.global.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(ptr)
               : "memory");
  return v;
}

__device__ __forceinline__ uint32_t word_of(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// The A fragment of mma j (k16) of a 32-column step from one lane's 16-byte loads of 16-bit rows g and g + 8:
// physical words 2j and 2j + 1 (elements 4j .. 4j + 3) fill the logical k slots {2t, 2t+1} and {2t+8, 2t+9}, so the
// B operand must take the same physical columns (the trick in this file's header).
__device__ __forceinline__ void half16_a_fragment(const uint4& row_g, const uint4& row_g8, int j, uint32_t (&a)[4]) {
  a[0] = word_of(row_g, 2 * j);
  a[1] = word_of(row_g8, 2 * j);
  a[2] = word_of(row_g, 2 * j + 1);
  a[3] = word_of(row_g8, 2 * j + 1);
}

template <typename T>
struct HalfTraits;

template <>
struct HalfTraits<__half> {
  static __device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  // Four signed bytes -> (e0, e1) and (e2, e3) as f16x2, exactly: byte^0x80 = e + 128 goes into the
  // low mantissa of 1024.0 (0x6400), then 1152 is subtracted.
  static __device__ __forceinline__ void int8x4_to_pairs(uint32_t w, uint32_t& lo, uint32_t& hi) {
    const uint32_t u = w ^ 0x80808080u;
    uint32_t l = __byte_perm(u, 0x64646464u, 0x4140);
    uint32_t h = __byte_perm(u, 0x64646464u, 0x4342);
    const uint32_t bias = 0x64806480u;  // f16x2 (1152, 1152)
    asm("sub.f16x2 %0, %1, %2;" : "=r"(lo) : "r"(l), "r"(bias));
    asm("sub.f16x2 %0, %1, %2;" : "=r"(hi) : "r"(h), "r"(bias));
  }
  static __device__ __forceinline__ void int8x4_to_pairs_alu(uint32_t w, uint32_t& lo, uint32_t& hi) {
    int8x4_to_pairs(w, lo, hi);  // the fp16 magic is integer work already
  }
  static __device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
  static __device__ __forceinline__ __half from_float(float v) { return __float2half_rn(v); }
};

template <>
struct HalfTraits<__nv_bfloat16> {
  static __device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  // bf16 has too few mantissa bits for the 8-bit magic: go through fp32 (2^23 + byte) and pack.
  static __device__ __forceinline__ void int8x4_to_pairs(uint32_t w, uint32_t& lo, uint32_t& hi) {
    const uint32_t u = w ^ 0x80808080u;
    const float f0 = __uint_as_float(__byte_perm(u, 0x4B000000u, 0x7540)) - 8388736.0f;
    const float f1 = __uint_as_float(__byte_perm(u, 0x4B000000u, 0x7541)) - 8388736.0f;
    const float f2 = __uint_as_float(__byte_perm(u, 0x4B000000u, 0x7542)) - 8388736.0f;
    const float f3 = __uint_as_float(__byte_perm(u, 0x4B000000u, 0x7543)) - 8388736.0f;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(lo) : "f"(f1), "f"(f0));
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(hi) : "f"(f3), "f"(f2));
  }
  // The same values with integer ops and one packed fma a pair (no fp32, no conversions):
  // b = (128 + (b & 127)) - (256 - 128 [b >= 0]), both bf16 integers, so the difference is exact. Faster at M <= 8,
  // slower at M = 16 (BENCHMARKS.md, session 26), where the ALU pipe is the busier one.
  static __device__ __forceinline__ void int8x4_to_pairs_alu(uint32_t w, uint32_t& lo, uint32_t& hi) {
    // Halves (b0, b1): 0x4300 | low 7 bits = 128 + m; 0x4300 ^ (bit 7) = 128 or 256 (bit 7 set = negative b).
    const uint32_t x0 = __byte_perm(w, 0u, 0x4140), x1 = __byte_perm(w, 0u, 0x4342);
    const uint32_t low7 = 0x007F007Fu, sign = 0x00800080u, base = 0x43004300u, minus_one = 0xBF80BF80u;
    uint32_t v0, c0, v1, c1;
    asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(v0) : "r"(x0), "r"(low7), "r"(base));  // (a & b) | c
    asm("lop3.b32 %0, %1, %2, %3, 0x6A;" : "=r"(c0) : "r"(x0), "r"(sign), "r"(base));  // (a & b) ^ c
    asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(v1) : "r"(x1), "r"(low7), "r"(base));
    asm("lop3.b32 %0, %1, %2, %3, 0x6A;" : "=r"(c1) : "r"(x1), "r"(sign), "r"(base));
    asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(lo) : "r"(c0), "r"(minus_one), "r"(v0));  // v - c, exact
    asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(hi) : "r"(c1), "r"(minus_one), "r"(v1));
  }
  static __device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
  static __device__ __forceinline__ __nv_bfloat16 from_float(float v) { return __float2bfloat16_rn(v); }
};

// ---- the kernel --------------------------------------------------------------------------------

// One warp's loads for one step: RT row tiles x rows {g, g+8}, 16 bytes each (+ per-group scales).
template <int RT, bool PER_GROUP>
struct StepLoads {
  uint4 w[RT][2];
  float scale[RT][2];
};

// The one-round int8 form (8 warps x 7 steps, gemv_one_round_fits) with per-channel scales asks for three blocks an SM
// (80 registers, no spill) so that grids of up to 3 x 132 blocks (Qwen2-7B qkv: 288) are resident at once; with
// per-group scales it keeps its 100-110 registers (two blocks an SM).
template <int KSPLIT, int UNROLL>
constexpr bool gemv_is_one_round() { return KSPLIT == 8 && UNROLL == 7; }

// Accumulator sets of a warp: step u of a round adds into set u % chains, so a round's mmas form independent chains;
// the sets are summed before the block reduction. Two in the int8 plain form at M <= 8 (16 warps x 2 steps: gate_up,
// down, LM head): Qwen2-7B int8 +0.5% (336.8-337.3 -> 338.6-338.8 tok/s, three alternating rounds; gate_up ~1446 -> 1428
// us a step), TinyLlama and GPT-2 even (session 32). Not in the one-round form (o 158 -> 169 us a step with it) nor the
// pipelined one, whose registers would cost it residency (with two chains held to 64 registers, down took the pipelined
// form and lost 12%).
template <WeightKind WK, int MT, int KSPLIT, int UNROLL, bool PIPE>
constexpr int gemv_chains() {
  return WK == WeightKind::kInt8 && MT == 1 && !PIPE && !gemv_is_one_round<KSPLIT, UNROLL>() ? 2 : 1;
}

// Blocks an SM the kernel asks registers for: three for the one-round form above; two for the int8 plain 16-warp form
// with its two chains (64 registers, as with one), so that two blocks stay resident.
template <WeightKind WK, int MT, int KSPLIT, int UNROLL, bool PER_GROUP, bool PIPE>
constexpr int gemv_min_blocks() {
  if (!PIPE && gemv_is_one_round<KSPLIT, UNROLL>() && !PER_GROUP) return 3;
  if (gemv_chains<WK, MT, KSPLIT, UNROLL, PIPE>() == 2 && KSPLIT == 16) return 2;
  return 1;
}

// How a warp gets its activations. kPerStep: each step loads its x after the previous step's mmas, so step u > 0 of
// a round waits out an L1 / L2 round trip of its own (SASS: the x loads sit inside each step's warp-uniform branch).
// kAhead: a round's x loads are all issued before its first step is computed (they do not depend on the weights).
// kShared: the block copies x [M][K] into shared memory once, after the PDL wait, and every step reads it there (the
// one-round form, whose seven steps a warp would otherwise take seven round trips in a row, or 56 more registers).
enum class XLoad { kPerStep, kAhead, kShared };

// Shared-memory row stride of x (kShared), in elements: 16 bytes of padding so that token rows start in other banks.
__host__ __device__ constexpr int64_t gemv_x_shared_ld(int64_t k_weights) { return k_weights + 8; }

template <WeightKind WK, typename T, int MT, int RT, int KSPLIT, int UNROLL, bool PER_GROUP, bool GATED, bool PIPE,
          XLoad XL = XLoad::kPerStep>
__global__ void __launch_bounds__(KSPLIT * 32, gemv_min_blocks<WK, MT, KSPLIT, UNROLL, PER_GROUP, PIPE>())
    gemv_mma_kernel(const GemvParams p) {
  static_assert(!GATED || RT <= 2, "a gated block computes one gate and one up row tile, or a tile of paired rows");
  constexpr bool kInt8 = WK == WeightKind::kInt8;
  constexpr int kLaneElems = kInt8 ? 16 : 8;   // weights per lane per row per step (16 bytes)
  constexpr int kStepK = 4 * kLaneElems;       // k covered by one warp step
  constexpr int kMmas = kStepK / 16;           // m16n8k16 per step, row tile and token tile
  constexpr int kWeightBytes = kInt8 ? 1 : 2;
  constexpr int kXVecs = kLaneElems / 8;       // 16-byte activation loads per lane per token row
  constexpr int kRows = 16 * RT;               // output rows per block
  using Traits = HalfTraits<T>;
  using Loads = StepLoads<RT, PER_GROUP>;

  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int g = lane >> 2;
  const int t = lane & 3;
  const int n0 = blockIdx.x * kRows;
  // W's row for row g + 8h of row tile r: consecutive tiles; GATED, RT = 2: gate tile b and up tile b + N / 32;
  // GATED, RT = 1: gate row 8b + g (h = 0) and up row N / 2 + 8b + g (h = 1).
  auto row_of = [&](int r, int h) {
    if constexpr (GATED && RT == 1) return 8 * static_cast<int>(blockIdx.x) + g + h * (p.N >> 1);
    if constexpr (GATED) return static_cast<int>(blockIdx.x) * 16 + r * (p.N >> 5) * 16 + 8 * h + g;
    return n0 + 16 * r + 8 * h + g;
  };
  const T* x = static_cast<const T*>(p.x);
  // kShared: x [M][gemv_x_shared_ld(k_weights)] in dynamic shared memory, zeros in columns K .. k_weights.
  extern __shared__ __align__(16) uint8_t gemv_dyn_smem[];
  T* const x_shared = reinterpret_cast<T*>(gemv_dyn_smem);
  const int steps = (p.k_weights + kStepK - 1) / kStepK;
  const uint64_t policy = weight_stream_policy(p.weights_evict_first);
  const char* w_row[RT][2];
  bool has_row[RT][2];
#pragma unroll
  for (int r = 0; r < RT; ++r) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int n = row_of(r, h);
      has_row[r][h] = n < p.N;
      w_row[r][h] = static_cast<const char*>(p.w) + (has_row[r][h] ? (int64_t)n * p.ldw * kWeightBytes : 0);
    }
  }

  auto load_step = [&](int step, Loads& out) {
    const int k = step * kStepK + t * kLaneElems;
    const bool in_k = step < steps && k < p.k_weights;
#pragma unroll
    for (int r = 0; r < RT; ++r) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        out.w[r][h] = (in_k && has_row[r][h]) ? load_stream16(w_row[r][h] + (int64_t)k * kWeightBytes, policy)
                                              : make_uint4(0, 0, 0, 0);
        if constexpr (PER_GROUP) {
          const int group = (step < steps ? step : 0) / p.group_steps;
          out.scale[r][h] =
              has_row[r][h]
                  ? __ldg(p.scales + (int64_t)row_of(r, h) * p.scale_ld + group)
                  : 0.0f;
        }
      }
    }
  };

  constexpr int CHAINS = gemv_chains<WK, MT, KSPLIT, UNROLL, PIPE>();
  float accs[CHAINS][RT][MT][4];
#pragma unroll
  for (int c = 0; c < CHAINS; ++c)
#pragma unroll
    for (int r = 0; r < RT; ++r)
#pragma unroll
      for (int i = 0; i < MT; ++i) accs[c][r][i][0] = accs[c][r][i][1] = accs[c][r][i][2] = accs[c][r][i][3] = 0.0f;

  // x of one step: token tile i, 16-byte vector h (zeros past M and past K, so also for steps past the end).
  using StepX = uint4[MT][kXVecs];
  auto load_x = [&](int step, StepX& xv) {
    const int k = step * kStepK + t * kLaneElems;
#pragma unroll
    for (int i = 0; i < MT; ++i) {
      const int m = i * 8 + g;
#pragma unroll
      for (int h = 0; h < kXVecs; ++h) {
        const int kh = k + 8 * h;
        xv[i][h] = (m < p.M && kh < p.K) ? load_after_wait16(x + (int64_t)m * p.ldx + kh) : make_uint4(0, 0, 0, 0);
      }
    }
  };
  auto compute_step = [&](int step, const Loads& in, const StepX* xpre, int chain) {
    float (&acc)[RT][MT][4] = accs[chain];
    uint32_t a[RT][kMmas][4];
#pragma unroll
    for (int r = 0; r < RT; ++r) {
#pragma unroll
      for (int j = 0; j < kMmas; ++j) {
        if constexpr (kInt8) {
          if constexpr (MT == 1) {  // one 8-token tile: the integer form measured faster (session 26)
            Traits::int8x4_to_pairs_alu(word_of(in.w[r][0], j), a[r][j][0], a[r][j][2]);
            Traits::int8x4_to_pairs_alu(word_of(in.w[r][1], j), a[r][j][1], a[r][j][3]);
          } else {
            Traits::int8x4_to_pairs(word_of(in.w[r][0], j), a[r][j][0], a[r][j][2]);
            Traits::int8x4_to_pairs(word_of(in.w[r][1], j), a[r][j][1], a[r][j][3]);
          }
        } else {
          half16_a_fragment(in.w[r][0], in.w[r][1], j, a[r][j]);
        }
      }
    }
    const int k = step * kStepK + t * kLaneElems;
#pragma unroll
    for (int i = 0; i < MT; ++i) {
      uint4 xv[kXVecs];
      if constexpr (XL == XLoad::kAhead) {
#pragma unroll
        for (int h = 0; h < kXVecs; ++h) xv[h] = (*xpre)[i][h];
      } else if constexpr (XL == XLoad::kShared) {
        const int m = i * 8 + g;
        const T* xs = x_shared + m * gemv_x_shared_ld(p.k_weights);
#pragma unroll
        for (int h = 0; h < kXVecs; ++h) {
          const int kh = k + 8 * h;  // the last step's lanes reach past k_weights, i.e. past the row
          xv[h] = m < p.M && kh < p.K ? *reinterpret_cast<const uint4*>(xs + kh) : make_uint4(0, 0, 0, 0);
        }
      } else {
        const int m = i * 8 + g;
#pragma unroll
        for (int h = 0; h < kXVecs; ++h) {
          const int kh = k + 8 * h;
          xv[h] = (m < p.M && kh < p.K) ? load_cached16(x + (int64_t)m * p.ldx + kh) : make_uint4(0, 0, 0, 0);
        }
      }
#pragma unroll
      for (int r = 0; r < RT; ++r) {
        float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
        for (int j = 0; j < kMmas; ++j) {
          const uint32_t b0 = word_of(xv[j / 2], 2 * (j % 2));
          const uint32_t b1 = word_of(xv[j / 2], 2 * (j % 2) + 1);
          if constexpr (PER_GROUP) {
            Traits::mma(part, a[r][j], b0, b1);
          } else {
            Traits::mma(acc[r][i], a[r][j], b0, b1);
          }
        }
        if constexpr (PER_GROUP) {
          acc[r][i][0] += part[0] * in.scale[r][0];
          acc[r][i][1] += part[1] * in.scale[r][0];
          acc[r][i][2] += part[2] * in.scale[r][1];
          acc[r][i][3] += part[3] * in.scale[r][1];
        }
      }
    }
  };

  // kShared: x copied by cp.async (global -> shared, no registers: the one-round form holds its 56 weight registers across
  // this), zero-filled past K by the source size 0; every copy in flight at once, one round trip.
  auto fill_x_shared = [&]() {
    const int vecs = p.k_weights / 8, ld = static_cast<int>(gemv_x_shared_ld(p.k_weights)), total = p.M * vecs;
    const uint32_t base = static_cast<uint32_t>(__cvta_generic_to_shared(x_shared));
    for (int i = threadIdx.x; i < total; i += KSPLIT * 32) {
      const int m = i / vecs, kv = (i % vecs) * 8;
      const uint32_t dst = base + static_cast<uint32_t>((m * ld + kv) * sizeof(T));
      const T* src = x + (int64_t)m * p.ldx + (kv < p.K ? kv : 0);
      asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(kv < p.K ? 16 : 0)
                   : "memory");
    }
    asm volatile("cp.async.commit_group;\n\tcp.async.wait_group 0;" ::: "memory");
    __syncthreads();
  };
  // Rounds of KSPLIT x UNROLL consecutive steps; inside a round, warp w takes steps w, w + KSPLIT,
  // ... The block's loads in flight then cover one contiguous stretch of each row (DRAM locality:
  // contiguous per-warp ranges measured 10% slower on the long-K shape), and the last, partial
  // round still splits evenly (warps differ by at most one step).
  // Launched with PDL (pdl.cuh): the first round's weight loads are issued before waiting for the
  // kernel that writes x, so they overlap its tail (steps >= 1: K >= 1 is host-checked).
  auto load_round = [&](int base, Loads (&loads)[UNROLL]) {  // zeros past K
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) load_step(base + warp + KSPLIT * u, loads[u]);
  };
  auto compute_round = [&](int base, const Loads (&loads)[UNROLL]) {
    if constexpr (XL == XLoad::kAhead) {
      StepX xs[UNROLL];
#pragma unroll
      for (int u = 0; u < UNROLL; ++u) load_x(base + warp + KSPLIT * u, xs[u]);
#pragma unroll
      for (int u = 0; u < UNROLL; ++u) {
        const int step = base + warp + KSPLIT * u;
        if (step < steps) compute_step(step, loads[u], &xs[u], u % CHAINS);  // warp-uniform
      }
    } else {
#pragma unroll
      for (int u = 0; u < UNROLL; ++u) {
        const int step = base + warp + KSPLIT * u;
        if (step < steps) compute_step(step, loads[u], nullptr, u % CHAINS);  // warp-uniform
      }
    }
  };
  if constexpr (PIPE) {
    // Software-pipelined rounds: round r + 1's loads are issued before round r is computed, so the conversion and
    // the mmas run under the next loads' latency (twice the load registers).
    static_assert(XL != XLoad::kShared, "the pipelined form reads x from registers");
    Loads cur[UNROLL], next[UNROLL];
    load_round(0, cur);
    pdl_wait();
    pdl_launch_dependents();
    for (int base = 0; base < steps; base += KSPLIT * UNROLL) {
      load_round(base + KSPLIT * UNROLL, next);
      compute_round(base, cur);
#pragma unroll
      for (int u = 0; u < UNROLL; ++u) cur[u] = next[u];
    }
  } else if constexpr (gemv_is_one_round<KSPLIT, UNROLL>()) {
    // One round (steps <= KSPLIT x UNROLL, host-checked), every weight load issued before the PDL wait. Written
    // without the round loop below: inside it this form took 80 registers plus 8-48 bytes of spills (per-group 112-128
    // registers), here 78-80 and none (per-group 100-110); Qwen2-7B int8 +0.7-1.7% across session 32's calls.
    Loads cur[UNROLL];
    load_round(0, cur);
    if (steps > 0) {  // always (K >= 1 is host-checked): in a block of its own, ptxas keeps the wait after the loads
      pdl_wait();     // (straight-line, it scheduled ACQBULK first and every load after it; check-sass-pdl-order.py)
      pdl_launch_dependents();
    }
    if constexpr (XL == XLoad::kShared) fill_x_shared();
    compute_round(0, cur);
  } else {
    for (int base = 0; base < steps; base += KSPLIT * UNROLL) {
      Loads cur[UNROLL];
      load_round(base, cur);
      if (base == 0) {
        pdl_wait();
        pdl_launch_dependents();
      }
      compute_round(base, cur);
    }
  }

#pragma unroll
  for (int c = 1; c < CHAINS; ++c)
#pragma unroll
    for (int r = 0; r < RT; ++r)
#pragma unroll
      for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) accs[0][r][i][e] += accs[c][r][i][e];
  float (&acc)[RT][MT][4] = accs[0];

  // Cross-warp reduction: [warp][token][row], rows padded by one float against bank conflicts.
  __shared__ float partial[KSPLIT][MT * 8][kRows + 1];
#pragma unroll
  for (int r = 0; r < RT; ++r) {
#pragma unroll
    for (int i = 0; i < MT; ++i) {
      partial[warp][i * 8 + 2 * t][16 * r + g] = acc[r][i][0];
      partial[warp][i * 8 + 2 * t + 1][16 * r + g] = acc[r][i][1];
      partial[warp][i * 8 + 2 * t][16 * r + g + 8] = acc[r][i][2];
      partial[warp][i * 8 + 2 * t + 1][16 * r + g + 8] = acc[r][i][3];
    }
  }
  __syncthreads();
  T* y = static_cast<T*>(p.y);
  const T* bias = static_cast<const T*>(p.bias);
  if constexpr (GATED) {
    // A row's sum before the ungated kernel's rounding (per-channel scale, bias applied in fp32, as below).
    auto row_sum = [&](int m, int r, int n) {
      float sum = 0.0f;
#pragma unroll
      for (int w = 0; w < KSPLIT; ++w) sum += partial[w][m][r];
      if constexpr (kInt8 && !PER_GROUP) sum *= __ldg(p.scales + n);
      if (bias != nullptr) sum += Traits::to_float(bias[n]);
      return sum;
    };
    // A block's outputs: 16 (RT = 2: the gate tile's rows r, its up rows 16 + r) or 8 (paired rows: gate r, up 8 + r).
    constexpr int kOut = RT == 2 ? 16 : 8;
    const int inter = p.N >> 1, n = blockIdx.x * kOut;
    for (int o = threadIdx.x; o < MT * 8 * kOut; o += KSPLIT * 32) {
      const int m = o / kOut, r = o % kOut;
      if (m >= p.M) continue;
      y[(int64_t)m * p.ldy + n + r] =
          gated_output<T>(row_sum(m, r, n + r), row_sum(m, kOut + r, inter + n + r), p.act);
    }
  } else {
    for (int o = threadIdx.x; o < MT * 8 * kRows; o += KSPLIT * 32) {
      const int m = o / kRows;
      const int r = o % kRows;
      const int n = n0 + r;
      if (m >= p.M || n >= p.N) continue;
      float sum = 0.0f;
#pragma unroll
      for (int w = 0; w < KSPLIT; ++w) sum += partial[w][m][r];
      if constexpr (kInt8 && !PER_GROUP) sum *= __ldg(p.scales + n);
      if (bias != nullptr) sum += Traits::to_float(bias[n]);
      y[(int64_t)m * p.ldy + n] = Traits::from_float(sum);
    }
  }
}

// A warp step's columns of W: 64 (int8) or 32 (dense); the steps of a row of k_weights columns.
template <WeightKind WK>
constexpr int64_t gemv_steps(int64_t k_weights) {
  constexpr int64_t kStepK = WK == WeightKind::kInt8 ? 64 : 32;
  return (k_weights + kStepK - 1) / kStepK;
}

// Whether a round's x fits in registers ahead of its first step (kAhead): four 16-byte vectors a lane. (Eight in the
// int8 two-token-tile form of two steps, 9..16 tokens on wide N, kept two blocks an SM at 100 registers and lost 1.6%
// at batch 16: Qwen2-7B int8 3832-3856 against 3903-3906 tok/s; session 31.)
template <WeightKind WK, int MT, int UNROLL>
constexpr bool gemv_x_ahead_fits() {
  return MT * UNROLL * (WK == WeightKind::kInt8 ? 2 : 1) <= 4;
}

// The x form of <WK, MT, KSPLIT, UNROLL> over rows of k_weights columns (XLoad): kShared for the one-round form; kAhead
// where a round's x fits and every warp has a second step in the first round (steps >= 2 KSPLIT), else kPerStep.
// Measured (BENCHMARKS.md, session 31, alternating in one call): kAhead Qwen2-7B bf16 +2.6% (gate_up 2614 -> 2527 us a
// step), int8 +0.5%, TinyLlama fp16 +3.4%, int8 +1%; on GPT-2 (K = 768: 12 int8 steps, 24 dense, over 16 warps: few
// or no second steps to wait for) it cost int8 8% and fp16 2%, hence the step bound. kShared: Qwen2-7B int8 +0.5% (o 181 -> 159 us a step),
// GPT-2 int8 +3%. QB_GEMV_X_AHEAD=0: kPerStep wherever kAhead would be taken (A/B); =int8: kAhead for int8 only;
// QB_GEMV_X_SHARED=0: the one-round form kPerStep.
template <WeightKind WK, int MT, int KSPLIT, int UNROLL>
XLoad gemv_x_load(int64_t k_weights) {
  static const bool off = env_equals("QB_GEMV_X_AHEAD", "0");
  static const bool int8_only = env_equals("QB_GEMV_X_AHEAD", "int8");
  static const bool shared_off = env_equals("QB_GEMV_X_SHARED", "0");
  if (gemv_is_one_round<KSPLIT, UNROLL>()) return shared_off ? XLoad::kPerStep : XLoad::kShared;
  if (!gemv_x_ahead_fits<WK, MT, UNROLL>() || off || (int8_only && WK != WeightKind::kInt8) ||
      gemv_steps<WK>(k_weights) < 2 * int64_t{KSPLIT}) {
    return XLoad::kPerStep;
  }
  return XLoad::kAhead;
}

// Dynamic shared memory of a block for M token rows over k_weights columns (kShared only).
template <typename T>
size_t gemv_x_shared_bytes(XLoad xl, int64_t M, int64_t k_weights) {
  return xl == XLoad::kShared ? static_cast<size_t>(M * gemv_x_shared_ld(k_weights)) * sizeof(T) : 0;
}

// Calls fn(kernel) with the instance that runs <WK, T, MT, RT, KSPLIT, UNROLL, PER_GROUP, GATED, PIPE> in the x form
// xl, and returns what fn returns: launch_gemv_mma launches it, occupancy queries ask about it (kAhead takes up to 16
// more registers, kShared shared memory). kShared instances may take up to 8 MT rows of x: their dynamic shared-memory
// ceiling is raised once, on first use, to what 8 MT rows of the longest one-round K (KSPLIT x UNROLL = 56 steps of 64)
// need.
template <WeightKind WK, typename T, int MT, int RT, int KSPLIT, int UNROLL, bool PER_GROUP, bool GATED, bool PIPE,
          typename Fn>
decltype(auto) with_gemv_kernel(XLoad xl, Fn&& fn) {
  if constexpr (!PIPE && gemv_is_one_round<KSPLIT, UNROLL>()) {
    if (xl == XLoad::kShared) {
      constexpr auto kernel = gemv_mma_kernel<WK, T, MT, RT, KSPLIT, UNROLL, PER_GROUP, GATED, PIPE, XLoad::kShared>;
      static const bool ceiling_raised = [&] {
        const int bytes = static_cast<int>(gemv_x_shared_bytes<T>(XLoad::kShared, MT * 8, int64_t{KSPLIT} * UNROLL * 64));
        QB_CUDA_CHECK(cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel),
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
        return true;
      }();
      (void)ceiling_raised;
      return fn(kernel);
    }
  }
  if constexpr (gemv_x_ahead_fits<WK, MT, UNROLL>()) {
    if (xl == XLoad::kAhead) return fn(gemv_mma_kernel<WK, T, MT, RT, KSPLIT, UNROLL, PER_GROUP, GATED, PIPE, XLoad::kAhead>);
  }
  return fn(gemv_mma_kernel<WK, T, MT, RT, KSPLIT, UNROLL, PER_GROUP, GATED, PIPE>);
}

// Whether `blocks` blocks of the (ungated) instance <WK, T, MT, RT, KSPLIT, UNROLL, PER_GROUP, PIPE> over rows of k_weights
// columns (which pick its x form) are all resident on the chip at once (an occupancy query, cached per instance).
template <WeightKind WK, typename T, int MT, int RT, int KSPLIT, int UNROLL, bool PER_GROUP, bool PIPE>
bool gemv_grid_resident(int64_t blocks, int64_t k_weights) {
  // kShared: sized for one token row (decode); a batch of 8 takes 8 x that, which three blocks an SM still hold.
  const XLoad xl = PIPE ? XLoad::kPerStep : gemv_x_load<WK, MT, KSPLIT, UNROLL>(k_weights);
  const void* kernel = with_gemv_kernel<WK, T, MT, RT, KSPLIT, UNROLL, PER_GROUP, false, PIPE>(
      xl, [](auto k) { return reinterpret_cast<const void*>(k); });
  const int per_sm =
      resident_blocks_per_sm(kernel, KSPLIT * 32, gemv_x_shared_bytes<T>(xl, 1, int64_t{KSPLIT} * UNROLL * 64));
  return blocks <= static_cast<int64_t>(per_sm) * sm_count();
}

// Whether the software-pipelined form (PIPE) of <WK, T, MT, RT, KSPLIT, UNROLL> should run `blocks` blocks over
// k_weights columns: where its blocks all fit on the chip at once and every warp has several rounds. Its extra load
// registers cost residency, which a grid of several waves pays for (Qwen2-7B int8 gate_up 1379 -> 1443 us a step, qkv
// 211 -> 328); a grid that fits anyway gained the overlap of the conversion and mmas with the next loads (o + down,
// 224 blocks: 1198 -> 1067 us; BENCHMARKS.md, session 26). The int8 M <= 8 form has taken 72 registers since then, so
// one 16-warp block fits an SM and Qwen2-7B's 224-block down runs the plain form; held to 64 registers (two blocks) it
// took down again and was slower (913 against 837 us a step; session 30). The dense form (56 registers) keeps it.
// QB_GEMV_PIPE=0: never (A/B); =int8: the int8 GEMV only.
template <WeightKind WK, typename T, int MT, int RT, int KSPLIT, int UNROLL, bool PER_GROUP>
bool gemv_pipeline_pays(int64_t blocks, int64_t k_weights) {
  static const bool off = env_equals("QB_GEMV_PIPE", "0");
  static const bool int8_only = env_equals("QB_GEMV_PIPE", "int8");
  // Every warp needs >= 6 steps (three rounds) for the overlap to pay: with every fitting grid pipelined GPT-2 lost
  // 11-13% (one round), and 6 steps for the busiest warp only (TinyLlama int8 down, 5.5 a warp) cost 1.2%.
  static const int min_steps = env_int("QB_GEMV_PIPE_MIN_STEPS", 6, 1);
  if (off || (int8_only && WK != WeightKind::kInt8) || gemv_steps<WK>(k_weights) < int64_t{min_steps} * KSPLIT) {
    return false;
  }
  return gemv_grid_resident<WK, T, MT, RT, KSPLIT, UNROLL, PER_GROUP, true>(blocks, k_weights);
}

// Whether <WK, T, MT, RT, KSPLIT, UNROLL> takes a row of k_weights columns in one round (every weight load of a
// warp issued before the PDL wait) with `blocks` blocks all resident at once, where the form it replaces
// (default_steps_a_round) would need more rounds: the short-K, few-block layers (Qwen2-7B int8 qkv and o at 1.55-2.5
// TB/s), whose second round's loads otherwise start only after the first round is computed.
// Measured (BENCHMARKS.md, session 29, alternating in one call): Qwen2-7B int8 +0.3-0.55% end to end. In the kernel
// trace qkv went 226 -> 132 us a step, but the attention after it took 60 us more and o ~34 us more. Grids of several
// waves lost 7% (gate_up 1430 -> 1480 us, o 157 -> 281). Blocks of three tile groups (768 threads, T / 3 blocks, so
// that the qkv grid leaves SMs free for the attention's whole-SM blocks to start their pre-wait prefetch) lost 1.8%:
// qkv 132 -> 162 us, o 155 -> 182, attention only 181 -> 169; so SM room is not what delays the attention.
// QB_GEMV_ONE_ROUND=0: never (A/B).
template <WeightKind WK, typename T, int MT, int RT, int KSPLIT, int UNROLL, bool PER_GROUP>
bool gemv_one_round_fits(int64_t blocks, int64_t k_weights, int default_steps_a_round) {
  static const bool off = env_equals("QB_GEMV_ONE_ROUND", "0");
  const int64_t steps = gemv_steps<WK>(k_weights);
  if (off || steps > int64_t{KSPLIT} * UNROLL || steps <= default_steps_a_round) return false;
  return gemv_grid_resident<WK, T, MT, RT, KSPLIT, UNROLL, PER_GROUP, false>(blocks, k_weights);
}

template <WeightKind WK, typename T, int MT, int RT, int KSPLIT, int UNROLL, bool PER_GROUP, bool GATED = false,
          bool PIPE = false>
inline void launch_gemv_mma(const GemvParams& params, cudaStream_t stream) {
  GemvParams p = params;
  p.weights_evict_first = weight_stream_evict_first();
  const unsigned blocks = static_cast<unsigned>((p.N + 16 * RT - 1) / (16 * RT));  // GATED: N / 32 or N / 16
  const XLoad xl = PIPE ? XLoad::kPerStep : gemv_x_load<WK, MT, KSPLIT, UNROLL>(p.k_weights);
  const size_t smem = gemv_x_shared_bytes<T>(xl, p.M, p.k_weights);
  constexpr bool kOneRound = !PIPE && gemv_is_one_round<KSPLIT, UNROLL>();
  QB_CHECK(!kOneRound || gemv_steps<WK>(p.k_weights) <= int64_t{KSPLIT} * UNROLL,
           kInternal, "gemv: the one-round form takes {} steps at most (got K = {})", KSPLIT * UNROLL, p.k_weights);
  with_gemv_kernel<WK, T, MT, RT, KSPLIT, UNROLL, PER_GROUP, GATED, PIPE>(
      xl, [&](auto kernel) { launch_pdl(kernel, blocks, KSPLIT * 32, smem, stream, p); });
}

}  // namespace qb::kernels::gemv
