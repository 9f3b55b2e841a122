// 4-bit weights at large M (prefill) on Hopper: y[M, N] = x[M, K] W[N, K]^T (+ bias) in one kernel, the block
// skeleton of kernels/fused_gemm_sm90a.cuh with the 4-bit tile layout as its weight source. The 16-bit copy of W
// that the dequantize + cuBLAS path writes to DRAM and reads back (kernels/q4_prefill.cu, 1.8-2.1x the cuBLAS
// bf16 time on Qwen2-7B shapes at M = 512) never exists. Compiled for sm_90a only (CMakeLists.txt).
// Two forms over the same packed steps: the shared-B skeleton (fused_gemm_sm90a.cuh, Q4Source::convert_step) and the
// register-A one (fused_gemm_rs_sm90a.cuh, Q4RsSource::fragments).
// Status (NOTES-q4.md, "Fused prefill" and "Split-K"; BENCHMARKS.md): the register-A form is the default where
// fused_prefill_cut's time model says it is faster, with split-K where the tiles alone leave SMs idle (H100, M =
// 512: gate_up 1.19x cuBLAS against 1.76x for dequantize + cuBLAS, down with 2 splits 1.65x against 2.05x; M = 128:
// down with 4 splits 1.08x against 2.48x); QB_Q4_WGMMA=1|rs|ss force a form everywhere, QB_Q4_WGMMA=0 turns it off.
// The shared-B form loses to it everywhere.
//
// Contract: x, y, bias fp16 or bf16; W in the tile layout (quantbench/kernels/q4_layout.h, K % 64 == 0);
//   x 16-byte aligned with ldx % 8 == 0 (q4_tile_gemm_wgmma_supported); y any ld (pairs of outputs stored as one
//   32-bit word when ldy is even and y 4-byte aligned, else one by one).
//   Weight values are computed exactly as q4_tile_dequant computes them (fp32 product, one rounding to the
//   16-bit type), so W is bit-identical to the two-pass path; only the fp32 summation order differs.
//
// Packed step (one 64-column step of a block's 128 rows = 8 weight tiles): the 8 tile chunks' codes (4 KB, as the
// tile layout stores them), then the scales of the step's unit: fp32 absmax / awq words [8 tiles][8 g][2 h]
// (512 bytes); nested: the code bytes [8][8][2] (128 bytes), then the run of (nested absmax, offset) pairs the 128
// rows use (contiguous in the nested array from an even index; q4_nested_run). The loader copies it with two
// tensor-map copies (codes, scales) and one bulk copy (the nested run). Converter lane (g, t) of a warp
// takes rows g and g + 8 of a weight tile, columns 16t .. 16t + 16: the 16 bytes the tile layout gives it.
#include <climits>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "fused_gemm_rs_sm90a.cuh"
#include "fused_gemm_sm90a.cuh"
#include "q4_common.cuh"
#include "quantbench/core/env_switch.h"
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/device_limits.h"
#include "quantbench/kernels/fused_prefill_policy.h"
#include "quantbench/kernels/q4_gemm.h"
#include "quantbench/kernels/q4_layout.h"

namespace qb::kernels {
namespace {

using fused::kBK;
using fused::aligned;
using fused::kBN;
using q4::ActOps;

constexpr int kTilesPerBlock = kBN / 16;           // 16-row weight tiles per block
constexpr int kCodesBytes = kTilesPerBlock * 512;  // one tile chunk per weight tile
constexpr int kNestedValuesOffset = kCodesBytes + 128;
constexpr int kNestedRun = 512;                    // entries of the nested run a step can hold

struct Q4Tables {
  float codebook[16];
  float nested_code[256];
};

template <Q4ScaleMode MODE>
struct Q4Source {
  static constexpr int kPackedStepBytes =
      MODE == Q4ScaleMode::kAbsmaxNested ? kNestedValuesOffset + kNestedRun * 8 : kCodesBytes + kBN * 4;
  using Shared = Q4Tables;
  CUtensorMap codes_map;   // tiles as [n_tiles][k_chunks x 128] uint32, boxes of 128 x 8 (8 tiles' 512-byte chunks)
  CUtensorMap scales_map;  // tile scales as [n_tiles][units x 16] (uint32, or uint8 for nested), boxes of 16 x 8
  Q4TileWeights w;

  __host__ __device__ __forceinline__ int64_t n() const { return w.N; }
  __device__ __forceinline__ int k_steps() const { return static_cast<int>(w.K / kBK); }
  __device__ __forceinline__ int64_t units() const { return w.K >> (6 + w.unit_shift); }
  __device__ __forceinline__ int valid_tiles(int64_t n0) const {
    return static_cast<int>(min(static_cast<int64_t>(kTilesPerBlock), (w.N + 15) / 16 - n0 / 16));
  }

  __device__ __forceinline__ void init_shared(Q4Tables& t, int64_t /*n0*/) const {
    if (threadIdx.x < 16) t.codebook[threadIdx.x] = w.codebook[threadIdx.x];
    if constexpr (MODE == Q4ScaleMode::kAbsmaxNested) {
      for (int i = threadIdx.x; i < 256; i += blockDim.x) t.nested_code[i] = w.nested_code[i];
    }
  }

  // Three copy-engine instructions per step: the 8 tiles' code chunks (tensor map over [n_tiles][k_chunks x 512
  // bytes]), their scale records of the unit (tensor map over [n_tiles][units x 16 values]), and for nested the
  // run of (nested absmax, offset) pairs (a bulk copy of its whole 16-byte pairs; an odd last entry stored by
  // this lane). Tiles past n_tiles arrive as zeros. (One bulk copy per tile and record would put 16-17 issues per
  // step on this one thread.)
  __device__ __forceinline__ void load_step(int k, int64_t n0, uint8_t* dst, uint64_t* bar) const {
    const int64_t unit = k >> w.unit_shift, tile0 = n0 / 16;
    uint32_t bytes = kCodesBytes + kTilesPerBlock * q4::scale_record_bytes(MODE);
    int64_t run_bytes = 0;
    Q4NestedRun run{};
    if constexpr (MODE == Q4ScaleMode::kAbsmaxNested) {
      run = q4_nested_run(n0, min(n0 + kBN, w.N), units(), unit);
      run_bytes = (run.count & ~int64_t{1}) * 8;
      if (run.count & 1) {
        const int64_t last = run.first + run.count - 1;
        *reinterpret_cast<float2*>(dst + kNestedValuesOffset + (last - run.first) * 8) = w.nested[last];
      }
      bytes += static_cast<uint32_t>(run_bytes);
    }
    sm90::mbar_arrive_expect_tx(bar, bytes);
    sm90::tma_load_2d(dst, &codes_map, k * 128, static_cast<int>(tile0), bar);
    sm90::tma_load_2d(dst + kCodesBytes, &scales_map, static_cast<int>(unit * 16), static_cast<int>(tile0), bar);
    if (run_bytes > 0)
      sm90::bulk_load(dst + kNestedValuesOffset, w.nested + run.first, static_cast<uint32_t>(run_bytes), bar);
  }

  // kAbsmax16: the 16-bit absmax of rows g (low half) and g + 8 (high half) of weight tile j in the packed step.
  __device__ __forceinline__ static uint32_t absmax16_word(const uint8_t* src, int j, int g) {
    return *reinterpret_cast<const uint32_t*>(src + kCodesBytes + j * 32 + g * 4);
  }
  // kAffine: the (fp16 scale | zero << 16) words of rows g (.x) and g + 8 (.y) of weight tile j in the packed step.
  __device__ __forceinline__ static uint2 affine_words(const uint8_t* src, int j, int g) {
    return *reinterpret_cast<const uint2*>(src + kCodesBytes + j * 64 + g * 8);
  }

  // The scales of rows g and g + 8 (lane = 4g + t) of weight tile j at step k, from the packed step src: absmax
  // (nested absmax resolved as bitsandbytes rounds it) or awq's scale and zero point. Tiles past the weight: 0.
  __device__ __forceinline__ void row_scales(int k, int64_t n0, const uint8_t* src, const Q4Tables& t, int j, int lane,
                                             float (&scale)[2], float (&zero)[2]) const {
    const int g = lane >> 2;
    scale[0] = scale[1] = zero[0] = zero[1] = 0.f;
    if (j >= valid_tiles(n0)) return;
    if constexpr (MODE == Q4ScaleMode::kAbsmaxF32) {
      const float2 v = *reinterpret_cast<const float2*>(src + kCodesBytes + j * 64 + g * 8);
      scale[0] = v.x;
      scale[1] = v.y;
    } else if constexpr (MODE == Q4ScaleMode::kAbsmax16) {
      const uint32_t v = absmax16_word(src, j, g);
      scale[0] = q4::absmax16(v, w.absmax_f16);
      scale[1] = q4::absmax16(v >> 16, w.absmax_f16);
    } else if constexpr (MODE == Q4ScaleMode::kAffine) {
      const uint2 v = affine_words(src, j, g);
      scale[0] = q4::affine_scale(v.x);
      zero[0] = q4::affine_zero(v.x);
      scale[1] = q4::affine_scale(v.y);
      zero[1] = q4::affine_zero(v.y);
    } else {
      const int64_t unit = k >> w.unit_shift, units_ = units();
      const int64_t run_first = q4_nested_run(n0, min(n0 + kBN, w.N), units_, unit).first;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const uint32_t code = src[kCodesBytes + j * 16 + g * 2 + h];
        const int64_t n = min(n0 + 16 * j + g + 8 * h, w.N - 1);  // padding rows: any entry (dropped)
        const int64_t entry = q4_nested_index(n, units_, unit) - run_first;
        scale[h] = q4::nested_absmax(t.nested_code[code],
                                     *reinterpret_cast<const float2*>(src + kNestedValuesOffset + entry * 8));
      }
    }
  }

  // Same arithmetic as q4_tile_dequant_kernel (kernels/q4_dequant.cu). Warp cw takes tiles cw * (8 / CW) ...
  template <typename Act, int CW>
  __device__ __forceinline__ void convert_step(int k, int64_t n0, const uint8_t* src, uint8_t* b,
                                               const Q4Tables& t, int warp, int lane) const {
    constexpr int kTilesPerWarp = kTilesPerBlock / CW;
    const int g = lane >> 2, q = lane & 3;
#pragma unroll
    for (int jj = 0; jj < kTilesPerWarp; ++jj) {
      const int j = kTilesPerWarp * warp + jj;
      float scale[2], zero[2];
      row_scales(k, n0, src, t, j, lane, scale, zero);
      const uint4 codes =
          j < valid_tiles(n0) ? *reinterpret_cast<const uint4*>(src + j * 512 + lane * 16) : make_uint4(0, 0, 0, 0);
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const uint32_t lo_word = h ? codes.z : codes.x, hi_word = h ? codes.w : codes.y;
        uint32_t out[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const uint32_t byte = ((i < 4 ? lo_word : hi_word) >> (8 * (i & 3))) & 0xFFu;
          float first, second;
          if constexpr (MODE == Q4ScaleMode::kAffine) {
            first = (t.codebook[byte >> 4] - zero[h]) * scale[h];
            second = (t.codebook[byte & 15] - zero[h]) * scale[h];
          } else {
            first = __fmul_rn(t.codebook[byte >> 4], scale[h]);
            second = __fmul_rn(t.codebook[byte & 15], scale[h]);
          }
          out[i] = ActOps<Act>::pack(first, second);
        }
        const uint32_t r = 16 * j + g + 8 * h;
        *reinterpret_cast<uint4*>(b + sm90::swizzled_offset(r, 2 * q)) = make_uint4(out[0], out[1], out[2], out[3]);
        *reinterpret_cast<uint4*>(b + sm90::swizzled_offset(r, 2 * q + 1)) =
            make_uint4(out[4], out[5], out[6], out[7]);
      }
    }
  }
};

// The same weights as the A operand of the register form (fused_gemm_rs_sm90a.cuh).
struct Q4RsTables {
  Q4Tables base;
  uint32_t pairs[q4::kPairTableWords];  // (codebook[hi], codebook[lo]) in Act, per lane (q4_common.cuh)
};

// A pair of codes (Act, the earlier column in the low half) times the row's scale, in fp32, rounded once.
template <typename Act, Q4ScaleMode MODE>
__device__ __forceinline__ uint32_t scaled_pair(uint32_t pair, float scale, float zero) {
  const float2 c = ActOps<Act>::to_float2(pair);
  if constexpr (MODE == Q4ScaleMode::kAffine) {
    return ActOps<Act>::pack((c.x - zero) * scale, (c.y - zero) * scale);
  } else {
    return ActOps<Act>::pack(__fmul_rn(c.x, scale), __fmul_rn(c.y, scale));
  }
}

// awq's (code - zero) * scale as packed Act arithmetic with the fp32 path's one rounding of the exact product
// (scaled_pair): code - zero is a small integer, exact in Act (one fma2 with 1 and -zero). fp16: the scale's bits
// are Act bits, so one packed multiply (fma with -0) rounds the exact product once. bf16 cannot hold the fp16
// scale s, but s = hi + lo with hi = bf16(s) and lo = s - hi (at most 3 significant bits: exact in bf16), and
// d * lo (4 x 3 bits) is exact too, so fma(d, hi, d * lo) is the exact d * s rounded once.
template <typename Act>
struct AffinePairScale {
  uint32_t neg_zero, hi, lo;  // (-zero, -zero), (hi, hi), (lo, lo) in Act

  __device__ __forceinline__ explicit AffinePairScale(uint32_t record) {
    const float z = q4::affine_zero(record);
    neg_zero = ActOps<Act>::pack(-z, -z);
    if constexpr (std::is_same_v<Act, __half>) {
      hi = (record & 0xFFFFu) * 0x10001u;
      lo = 0u;
    } else {
      const float s = q4::affine_scale(record);
      const float s_hi = __bfloat162float(__float2bfloat16_rn(s));
      hi = ActOps<Act>::pack(s_hi, s_hi);
      lo = ActOps<Act>::pack(s - s_hi, s - s_hi);
    }
  }

  __device__ __forceinline__ uint32_t apply(uint32_t codes) const {
    constexpr uint32_t kOne = std::is_same_v<Act, __half> ? 0x3C003C00u : 0x3F803F80u, kNegZero = 0x80008000u;
    const uint32_t d = ActOps<Act>::fma2(codes, kOne, neg_zero);
    if constexpr (std::is_same_v<Act, __half>) {
      return ActOps<Act>::fma2(d, hi, kNegZero);
    } else {
      return ActOps<Act>::fma2(d, hi, ActOps<Act>::fma2(d, lo, kNegZero));
    }
  }
};

template <Q4ScaleMode MODE>
struct Q4RsSource : Q4Source<MODE> {
  using Shared = Q4RsTables;
  static constexpr bool kRowScaled = false;  // the fragments are W's values
  using Q4Source<MODE>::w;
  bool packed_affine = true;  // kAffine: AffinePairScale (false: scaled_pair's fp32 arithmetic, the A/B and test)

  template <typename Act>
  __device__ __forceinline__ void init_shared(Q4RsTables& t, int64_t n0) const {
    Q4Source<MODE>::init_shared(t.base, n0);
    q4::fill_pair_table<Act>(t.pairs, w.codebook);
  }

  // Weight values: awq's exactly q4_tile_dequant's ((code - zero) * scale, one rounding; AffinePairScale); nf4 /
  // fp4 from the codebook rounded to Act (the pair table), times the fp32 absmax, rounded: within 2 roundings of
  // the dequantized weight.
  // The tile layout gives lane (g, t) columns 16t .. 16t + 15 of rows g and g + 8 (byte b of a row: columns 16t +
  // 2b, 16t + 2b + 1), wgmma's k16 step kk wants from it columns 16kk + {2t, 2t + 1, 2t + 8, 2t + 9}: byte t and
  // t + 4 of lane (g, kk)'s rows. So the quad (t = 0..3) transposes: locally, word y[u] = byte u of each of the
  // lane's four code words (PRMT); then across the quad, lane t gathers y[t] of lanes kk = 0..3 (two
  // butterfly exchanges, shuffles by lane ^ 2 then lane ^ 1).
  template <typename Act>
  __device__ __forceinline__ void fragments(int k, int64_t n0, const uint8_t* src, const Q4RsTables& t, int j,
                                            int lane, uint32_t (&a)[4][4]) const {
    const uint4 codes = *reinterpret_cast<const uint4*>(src + j * 512 + lane * 16);
    // codes.x / .y: row g bytes 0-3 / 4-7; .z / .w: row g + 8. y[u] = (x.b[u], y.b[u], z.b[u], w.b[u]).
    const uint32_t t0 = __byte_perm(codes.x, codes.y, 0x5140), t1 = __byte_perm(codes.x, codes.y, 0x7362);
    const uint32_t t2 = __byte_perm(codes.z, codes.w, 0x5140), t3 = __byte_perm(codes.z, codes.w, 0x7362);
    uint32_t y[4] = {__byte_perm(t0, t2, 0x5410), __byte_perm(t0, t2, 0x7632), __byte_perm(t1, t3, 0x5410),
                     __byte_perm(t1, t3, 0x7632)};
    fused::quad_transpose(y, lane);
    // y[kk]: bytes (row g: t, t + 4; row g + 8: t, t + 4) of lane (g, kk)'s columns.
    const uint32_t lane_base = sm90::smem_addr(t.pairs) + static_cast<uint32_t>(lane) * 4u;
    if constexpr (MODE == Q4ScaleMode::kAbsmax16) {
      if (w.absmax_f16 == std::is_same_v<Act, __half>) {
        // The absmax bits are Act bits: one packed multiply a pair (fma with -0), whose single rounding of the
        // exact product is the fp32 path's (a 16-bit codebook value times a 16-bit absmax is exact in fp32).
        const uint32_t v = j < this->valid_tiles(n0) ? this->absmax16_word(src, j, lane >> 2) : 0u;
        const uint32_t s0 = (v & 0xFFFFu) * 0x10001u, s1 = (v >> 16) * 0x10001u, neg_zero = 0x80008000u;
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
          a[kk][0] = ActOps<Act>::fma2(q4::table_pair<0>(lane_base, y[kk]), s0, neg_zero);
          a[kk][1] = ActOps<Act>::fma2(q4::table_pair<2>(lane_base, y[kk]), s1, neg_zero);
          a[kk][2] = ActOps<Act>::fma2(q4::table_pair<1>(lane_base, y[kk]), s0, neg_zero);
          a[kk][3] = ActOps<Act>::fma2(q4::table_pair<3>(lane_base, y[kk]), s1, neg_zero);
        }
        return;
      }
    }
    if constexpr (MODE == Q4ScaleMode::kAffine) {
      if (packed_affine) {
        const uint2 v = j < this->valid_tiles(n0) ? this->affine_words(src, j, lane >> 2) : make_uint2(0u, 0u);
        const AffinePairScale<Act> row0(v.x), row1(v.y);  // rows g and g + 8
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
          a[kk][0] = row0.apply(q4::table_pair<0>(lane_base, y[kk]));
          a[kk][1] = row1.apply(q4::table_pair<2>(lane_base, y[kk]));
          a[kk][2] = row0.apply(q4::table_pair<1>(lane_base, y[kk]));
          a[kk][3] = row1.apply(q4::table_pair<3>(lane_base, y[kk]));
        }
        return;
      }
    }
    float scale[2], zero[2];
    this->row_scales(k, n0, src, t.base, j, lane, scale, zero);
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      a[kk][0] = scaled_pair<Act, MODE>(q4::table_pair<0>(lane_base, y[kk]), scale[0], zero[0]);
      a[kk][1] = scaled_pair<Act, MODE>(q4::table_pair<2>(lane_base, y[kk]), scale[1], zero[1]);
      a[kk][2] = scaled_pair<Act, MODE>(q4::table_pair<1>(lane_base, y[kk]), scale[0], zero[0]);
      a[kk][3] = scaled_pair<Act, MODE>(q4::table_pair<3>(lane_base, y[kk]), scale[1], zero[1]);
    }
  }
};

template <Q4ScaleMode MODE>
Q4Source<MODE> make_source(const Q4TileWeights& w) {
  Q4Source<MODE> src;
  const int64_t n_tiles = (w.N + 15) / 16, k_chunks = w.K / 64, units = w.K >> (6 + w.unit_shift);
  src.codes_map = fused::tensor_map_2d(w.tiles, CU_TENSOR_MAP_DATA_TYPE_UINT32, 4, n_tiles, k_chunks * 128,
                                       k_chunks * 128, 128, kTilesPerBlock, CU_TENSOR_MAP_SWIZZLE_NONE, "4-bit codes");
  if constexpr (MODE == Q4ScaleMode::kAbsmaxNested) {
    src.scales_map = fused::tensor_map_2d(w.scales, CU_TENSOR_MAP_DATA_TYPE_UINT8, 1, n_tiles, units * 16, units * 16,
                                          16, kTilesPerBlock, CU_TENSOR_MAP_SWIZZLE_NONE, "nested absmax codes");
  } else if constexpr (MODE == Q4ScaleMode::kAbsmax16) {
    src.scales_map = fused::tensor_map_2d(w.scales, CU_TENSOR_MAP_DATA_TYPE_UINT16, 2, n_tiles, units * 16, units * 16,
                                          16, kTilesPerBlock, CU_TENSOR_MAP_SWIZZLE_NONE, "16-bit absmax");
  } else {
    src.scales_map = fused::tensor_map_2d(w.scales, CU_TENSOR_MAP_DATA_TYPE_UINT32, 4, n_tiles, units * 16,
                                          units * 16, 16, kTilesPerBlock, CU_TENSOR_MAP_SWIZZLE_NONE, "4-bit scales");
  }
  src.w = w;
  return src;
}

template <template <Q4ScaleMode> class Source, Q4ScaleMode MODE>
Source<MODE> make_source(const Q4TileWeights& w) {
  Source<MODE> src;
  static_cast<Q4Source<MODE>&>(src) = make_source<MODE>(w);
  return src;
}

// The split-K arguments of the register-A launches.
struct SplitArgs {
  int splits;
  void* workspace;
  size_t bytes;
};

template <typename Act, Q4ScaleMode MODE>
void launch_mode(Q4WgmmaForm form, const Q4TileWeights& w, const void* x, int64_t ldx, const void* bias, void* y,
                 int64_t ldy, int64_t M, cudaStream_t stream, const SplitArgs& sk) {
  if (form != Q4WgmmaForm::kSharedB) {
    Q4RsSource<MODE> source = make_source<Q4RsSource, MODE>(w);
    // awq layers read the switch per launch (one getenv a layer of a prefill) so that a test can compare both.
    if constexpr (MODE == Q4ScaleMode::kAffine) source.packed_affine = env_on_unless_zero("QB_Q4_AFFINE_PACKED");
    if (form == Q4WgmmaForm::kRegisterA128) {
      fused::launch_rs<Act, Q4RsSource<MODE>, 128>(source, x, ldx, w.K, bias, y, ldy, M, stream, sk.splits,
                                                   sk.workspace, sk.bytes);
    } else {
      fused::launch_rs<Act, Q4RsSource<MODE>, 256>(source, x, ldx, w.K, bias, y, ldy, M, stream, sk.splits,
                                                   sk.workspace, sk.bytes);
    }
  } else {
    fused::launch<Act>(make_source<MODE>(w), x, ldx, w.K, bias, y, ldy, M, stream);
  }
}

template <typename Act>
void dispatch_mode(Q4WgmmaForm form, const Q4TileWeights& w, const void* x, int64_t ldx, const void* bias, void* y,
                   int64_t ldy, int64_t M, cudaStream_t stream, const SplitArgs& sk) {
  switch (w.mode) {
    case Q4ScaleMode::kAbsmaxF32:
      return launch_mode<Act, Q4ScaleMode::kAbsmaxF32>(form, w, x, ldx, bias, y, ldy, M, stream, sk);
    case Q4ScaleMode::kAbsmaxNested:
      return launch_mode<Act, Q4ScaleMode::kAbsmaxNested>(form, w, x, ldx, bias, y, ldy, M, stream, sk);
    case Q4ScaleMode::kAffine:
      return launch_mode<Act, Q4ScaleMode::kAffine>(form, w, x, ldx, bias, y, ldy, M, stream, sk);
    case Q4ScaleMode::kAbsmax16:
      return launch_mode<Act, Q4ScaleMode::kAbsmax16>(form, w, x, ldx, bias, y, ldy, M, stream, sk);
  }
}

template <Q4ScaleMode MODE>
int smem_bytes_of(Q4WgmmaForm form) {
  switch (form) {
    case Q4WgmmaForm::kRegisterA128: return fused::rs_dynamic_smem_bytes<Q4RsSource<MODE>, 128>();
    case Q4WgmmaForm::kRegisterA256: return fused::rs_dynamic_smem_bytes<Q4RsSource<MODE>, 256>();
    case Q4WgmmaForm::kSharedB: return fused::dynamic_smem_bytes<Q4Source<MODE>>();
  }
  return INT_MAX;
}

int smem_bytes(Q4ScaleMode mode, Q4WgmmaForm form) {
  switch (mode) {
    case Q4ScaleMode::kAbsmaxF32: return smem_bytes_of<Q4ScaleMode::kAbsmaxF32>(form);
    case Q4ScaleMode::kAbsmaxNested: return smem_bytes_of<Q4ScaleMode::kAbsmaxNested>(form);
    case Q4ScaleMode::kAffine: return smem_bytes_of<Q4ScaleMode::kAffine>(form);
    case Q4ScaleMode::kAbsmax16: return smem_bytes_of<Q4ScaleMode::kAbsmax16>(form);
  }
  return INT_MAX;
}

// QB_Q4_WGMMA=1 (or rs): the register-A form (QB_FUSED_RS_TOKENS=256: 256-token blocks); QB_Q4_WGMMA=ss: the
// shared-B form.
bool q4_tile_gemm_wgmma_enabled() {
  static const bool enabled = fused::env_is_one("QB_Q4_WGMMA") || fused::env_equals("QB_Q4_WGMMA", "rs") ||
                              fused::env_equals("QB_Q4_WGMMA", "ss");
  return enabled;
}

}  // namespace

bool q4_prefill_fused_form(const Q4TileWeights& w, int64_t M, Q4WgmmaForm* form, int* splits) {
  // Unset (or auto): the measured policy. 0: never (dequantize + cuBLAS everywhere, the A/B baseline).
  static const bool automatic = env_unset_or("QB_Q4_WGMMA", "auto");
  *splits = 1;
  if (q4_tile_gemm_wgmma_enabled()) {
    *form = q4_tile_gemm_wgmma_form();
    return true;
  }
  FusedPrefillCut cut;
  if (!automatic || !fused_prefill_device_cut(M, w.N, w.K, kQ4FusedCost, &cut)) return false;
  *form = cut.tokens == 128 ? Q4WgmmaForm::kRegisterA128 : Q4WgmmaForm::kRegisterA256;
  *splits = cut.splits;
  return true;
}

Q4WgmmaForm q4_tile_gemm_wgmma_form() {
  static const Q4WgmmaForm form = fused::env_equals("QB_Q4_WGMMA", "ss")             ? Q4WgmmaForm::kSharedB
                                  : fused::env_equals("QB_FUSED_RS_TOKENS", "256") ? Q4WgmmaForm::kRegisterA256
                                                                                   : Q4WgmmaForm::kRegisterA128;
  return form;
}

bool q4_tile_gemm_wgmma_supported(DType dtype, const Q4TileWeights& w, const void* x, int64_t ldx, const void* y,
                                  int64_t ldy, int64_t M, Q4WgmmaForm form) {
  // The copy engine needs 16-byte aligned sources (tensor maps over tiles and scales, the nested run's bulk copy).
  const bool weights_aligned = aligned(w.tiles, 16) && aligned(w.scales, 16) &&
                               (w.mode != Q4ScaleMode::kAbsmaxNested || aligned(w.nested, 16));
  const int64_t units = w.K > 0 ? w.K >> (6 + w.unit_shift) : 0;
  return weights_aligned && compute_capability() == 90 && (dtype == DType::kF16 || dtype == DType::kBF16) &&
         w.tiles != nullptr && w.K > 0 && w.K % kBK == 0 && w.N > 0 && M > 0 && M <= INT_MAX - fused::kBM &&
         aligned(x, 16) && ldx % 8 == 0 && ldx >= w.K && aligned(y, 2) && ldy >= w.N &&
         max_shared_per_block_optin() >= smem_bytes(w.mode, form) &&
         (w.mode != Q4ScaleMode::kAbsmaxNested || q4_nested_run_bound(kBN, units) <= kNestedRun);
}

size_t q4_tile_gemm_wgmma_workspace_bytes(int64_t M, int64_t N, Q4WgmmaForm form, int splits) {
  if (splits <= 1 || form == Q4WgmmaForm::kSharedB) return 0;
  return fused::rs_split_workspace_bytes(M, N, form == Q4WgmmaForm::kRegisterA128 ? 128 : 256, splits);
}

void q4_tile_gemm_wgmma(DType dtype, const Q4TileWeights& w, const void* x, int64_t ldx, const void* bias, void* y,
                        int64_t ldy, int64_t M, cudaStream_t stream, Q4WgmmaForm form, int splits, void* workspace,
                        size_t workspace_bytes) {
  QB_CHECK(splits == 1 || form != Q4WgmmaForm::kSharedB, kInvalidInput,
           "q4_tile_gemm_wgmma: split-K ({} splits) needs a register-A form", splits);
  const SplitArgs sk{splits, workspace, workspace_bytes};
  QB_CHECK(q4_tile_gemm_wgmma_supported(dtype, w, x, ldx, y, ldy, M, form), kInvalidInput,
           "q4_tile_gemm_wgmma: operands not supported (dtype, alignment, M={}, ldx={}, ldy={}, or not sm_90)", M,
           ldx, ldy);
  if (dtype == DType::kF16) {
    dispatch_mode<__half>(form, w, x, ldx, bias, y, ldy, M, stream, sk);
  } else {
    dispatch_mode<__nv_bfloat16>(form, w, x, ldx, bias, y, ldy, M, stream, sk);
  }
}

}  // namespace qb::kernels
