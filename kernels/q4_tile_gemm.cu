// 4-bit decode / small-batch GEMM on tensor cores: nf4, fp4 (bitsandbytes) and awq in the tile layout.
//
// Contract
//   y[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]),  0 <= m < M <= 64, 0 <= n < N.
//   x   [M, ldx]  fp16 or bf16 (Act), row-major, 16-byte aligned, ldx % 8 == 0; columns >= K never read.
//   w   tile layout (quantbench/kernels/q4_layout.h): K % 64 == 0, codes in [n_tiles][K/64][32][16] bytes
//       (canonical bytes: even column in the HIGH nibble), scales [n_tiles][K/U][16] with U = 64 << shift:
//         kAbsmaxF32    float absmax                    w = codebook[c] * absmax
//         kAbsmaxNested uint8 code, nested (abs, off)   w = codebook[c] * (nested_code[u8] * abs + off)
//         kAffine       uint32 fp16 scale | zero << 16   w = (c - zero) * scale   (codebook = 0..15)
//   bias [N] Act or null; y [M, ldy] Act.
//   Accumulation: fp32. The codebook values are rounded to Act once (fp16: <= 2^-12 relative, bf16:
//   2^-9; awq's integers are exact); the per-row scale multiplies each 64-column partial sum in fp32.
//
// Tiling. A block of 8 warps owns 8/S tiles of 16 rows; S warps ("split", 1, 2, 4 or 8, chosen per shape) share
// a tile and split its K/64 chunks into S contiguous ranges. Each warp keeps WS-1 chunks of weight loads in
// flight (one 16-byte streaming load and two scales per lane) and XS-1 chunks of x (two 16-byte loads per lane
// per 8-row slice of x, NT slices; L1/L2 hits). Per chunk a lane turns its 16 code bytes into 16 mma A registers
// with one shared-memory load each: the table holds, for every byte value b, the pair (codebook[b >> 4],
// codebook[b & 15]) as two Act values, replicated 32 times ([256][32] words, lane l reads column l) so a warp's
// 32 lookups never conflict; a lookup costs a shift, an and-or, an add and the LDS. Four mma.m16n8k16 per x
// slice give the chunk's 16 x (8*NT) partial sums, scaled per row into the fp32 accumulators. With S = 1 a warp
// writes its tile directly; otherwise the S partial sums are added in shared memory in a fixed order
// (deterministic) and one rounding to Act writes y. Versions and measurements: kernels/NOTES-q4.md.
#include <algorithm>

#include "q4_common.cuh"
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/q4_gemm.h"
#include "quantbench/kernels/q4_layout.h"

namespace qb::kernels {
namespace {

using q4::ActOps;

constexpr int kMaxWarps = 8;
constexpr int kTableWords = 256 * 32;

// In-flight loads of one chunk. Weights and their scales are requested WS-1 chunks ahead, x (and the
// nested absmax pair, an L2 hit) XS-1 chunks ahead.
template <Q4ScaleMode MODE>
struct WeightSlot {
  uint4 w;
  uint32_t s[2];  // rows g, g+8: float bits | u8 code | fp16 scale | zero << 16
};

template <int NT, Q4ScaleMode MODE>
struct XSlot {
  uint4 x[NT][2];                                           // x[nt*8 + g][16t .. 16t+16) of the chunk
  float2 nest[MODE == Q4ScaleMode::kAbsmaxNested ? 2 : 1];  // nested (absmax, offset), rows g, g+8
};

// Byte k of a code word, as a byte offset into the [256][32] table for this lane: b * 128 + lane * 4.
// Two integer ops (shift, and-or); the table base folds into the LDS immediate (static shared array).
template <int K>
__device__ __forceinline__ uint32_t table_offset(uint32_t word, uint32_t lane4) {
  const uint32_t moved = K == 0 ? word << 7 : word >> (8 * K - 7);
  return (moved & 0x7F80u) | lane4;
}

__device__ __forceinline__ uint32_t table_lookup(const uint32_t* table, uint32_t byte_offset) {
  return *reinterpret_cast<const uint32_t*>(reinterpret_cast<const char*>(table) + byte_offset);
}

template <typename Act, Q4ScaleMode MODE, int NT>
__device__ __forceinline__ void compute_chunk(const WeightSlot<MODE>& ws, const XSlot<NT, MODE>& xs,
                                              const uint32_t* __restrict__ table,
                                              const float* __restrict__ nested_code, uint32_t lane4,
                                              float (&acc)[NT][4]) {
  const uint32_t wd[4] = {ws.w.x, ws.w.y, ws.w.z, ws.w.w};
  uint32_t zero_g = 0, zero_g8 = 0;
  if constexpr (MODE == Q4ScaleMode::kAffine) {
    const float zg = q4::affine_zero(ws.s[0]), zg8 = q4::affine_zero(ws.s[1]);
    zero_g = ActOps<Act>::pack(zg, zg);
    zero_g8 = ActOps<Act>::pack(zg8, zg8);
  }
  float part[NT][4];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) part[nt][0] = part[nt][1] = part[nt][2] = part[nt][3] = 0.f;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const uint32_t rg = wd[j >> 1], rg8 = wd[2 + (j >> 1)];
    uint32_t a[4];
    if ((j & 1) == 0) {
      a[0] = table_lookup(table, table_offset<0>(rg, lane4));   // row g,   columns 16t+4j+{0,1}
      a[1] = table_lookup(table, table_offset<0>(rg8, lane4));  // row g+8, columns 16t+4j+{0,1}
      a[2] = table_lookup(table, table_offset<1>(rg, lane4));   // row g,   columns 16t+4j+{2,3}
      a[3] = table_lookup(table, table_offset<1>(rg8, lane4));  // row g+8, columns 16t+4j+{2,3}
    } else {
      a[0] = table_lookup(table, table_offset<2>(rg, lane4));
      a[1] = table_lookup(table, table_offset<2>(rg8, lane4));
      a[2] = table_lookup(table, table_offset<3>(rg, lane4));
      a[3] = table_lookup(table, table_offset<3>(rg8, lane4));
    }
    if constexpr (MODE == Q4ScaleMode::kAffine) {
      a[0] = ActOps<Act>::sub(a[0], zero_g);  // (code - zero) is an exact small integer
      a[2] = ActOps<Act>::sub(a[2], zero_g);
      a[1] = ActOps<Act>::sub(a[1], zero_g8);
      a[3] = ActOps<Act>::sub(a[3], zero_g8);
    }
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      const uint4& xv = xs.x[nt][j >> 1];
      ActOps<Act>::mma(part[nt], a, (j & 1) ? xv.z : xv.x, (j & 1) ? xv.w : xv.y);
    }
  }
  float sg, sg8;
  if constexpr (MODE == Q4ScaleMode::kAbsmaxF32) {
    sg = __uint_as_float(ws.s[0]);
    sg8 = __uint_as_float(ws.s[1]);
  } else if constexpr (MODE == Q4ScaleMode::kAbsmaxNested) {
    sg = q4::nested_absmax(nested_code[ws.s[0]], xs.nest[0]);
    sg8 = q4::nested_absmax(nested_code[ws.s[1]], xs.nest[1]);
  } else {
    sg = q4::affine_scale(ws.s[0]);
    sg8 = q4::affine_scale(ws.s[1]);
  }
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    acc[nt][0] = fmaf(sg, part[nt][0], acc[nt][0]);
    acc[nt][1] = fmaf(sg, part[nt][1], acc[nt][1]);
    acc[nt][2] = fmaf(sg8, part[nt][2], acc[nt][2]);
    acc[nt][3] = fmaf(sg8, part[nt][3], acc[nt][3]);
  }
}

template <typename Act, Q4ScaleMode MODE, int NT, int WS, int XS>
__global__ void __launch_bounds__(kMaxWarps * 32)
    q4_tile_gemm_kernel(const __grid_constant__ Q4TileWeights w, const Act* __restrict__ x, int64_t ldx,
                        const Act* __restrict__ bias, Act* __restrict__ y, int64_t ldy, int M, int split) {
  static_assert(WS % XS == 0, "ring indices must be compile-time constants");
  __shared__ __align__(16) uint32_t table[kTableWords];  // [256 byte values][32 lanes]
  __shared__ float nested_code[MODE == Q4ScaleMode::kAbsmaxNested ? 256 : 1];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const uint32_t lane4 = static_cast<uint32_t>(lane) * 4;

  for (int i = threadIdx.x; i < kTableWords / 4; i += blockDim.x) {
    const int b = i >> 3;  // 8 uint4 (32 words) per byte value
    const uint32_t v = ActOps<Act>::pack(w.codebook[b >> 4], w.codebook[b & 15]);
    reinterpret_cast<uint4*>(table)[i] = make_uint4(v, v, v, v);
  }
  if constexpr (MODE == Q4ScaleMode::kAbsmaxNested) {
    for (int i = threadIdx.x; i < 256; i += blockDim.x) nested_code[i] = w.nested_code[i];
  }
  __syncthreads();

  // `split` warps share a tile's K (split = 8: one tile per block; split = 1: each warp streams a whole tile
  // and writes it alone). Warps of a tile past N idle but still meet the barriers.
  const int tiles_per_block = warps / split;
  const int64_t tile = static_cast<int64_t>(blockIdx.x) * tiles_per_block + warp / split;
  const bool tile_valid = tile * 16 < w.N;
  const int k_chunks = static_cast<int>(w.K / 64);
  const int units = static_cast<int>(w.K >> (6 + w.unit_shift));
  const int per_warp = (k_chunks + split - 1) / split;
  const int part = warp % split;
  const int c_begin = tile_valid ? min(k_chunks, part * per_warp) : 0;
  const int c_end = tile_valid ? min(k_chunks, c_begin + per_warp) : 0;

  // Per-lane streams; chunk c lives at a fixed stride from these (immediate offsets in the unrolled loop).
  const uint8_t* w_stream = w.tiles + ((tile * k_chunks + c_begin) * 32 + lane) * 16;
  const int64_t scale_base = tile * units * 16 + g;
  const Act* x_stream[NT];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const int m = min(nt * 8 + g, M - 1);  // rows past M load row M-1 and are zeroed (keeps loads unpredicated)
    x_stream[nt] = x + static_cast<int64_t>(m) * ldx + static_cast<int64_t>(c_begin) * 64 + 16 * t;
  }
  bool x_row_valid[NT];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) x_row_valid[nt] = nt * 8 + g < M;
  int64_t nest_row[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) nest_row[h] = min(tile * 16 + g + 8 * h, w.N - 1) * units;

  auto load_weights = [&](WeightSlot<MODE>& slot, int rel) {  // rel = chunk - c_begin
    slot.w = q4::load_stream16(w_stream + static_cast<int64_t>(rel) * 512);
    const int64_t sidx = scale_base + static_cast<int64_t>((c_begin + rel) >> w.unit_shift) * 16;
    if constexpr (MODE == Q4ScaleMode::kAbsmaxNested) {
      const uint8_t* codes = static_cast<const uint8_t*>(w.scales);
      slot.s[0] = __ldg(codes + sidx);
      slot.s[1] = __ldg(codes + sidx + 8);
    } else {
      const uint32_t* words = static_cast<const uint32_t*>(w.scales);
      slot.s[0] = __ldg(words + sidx);
      slot.s[1] = __ldg(words + sidx + 8);
    }
  };
  auto load_x = [&](XSlot<NT, MODE>& slot, int rel) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      const Act* p = x_stream[nt] + static_cast<int64_t>(rel) * 64;
      slot.x[nt][0] = q4::load_cached16(p);
      slot.x[nt][1] = q4::load_cached16(p + 8);
      if (!x_row_valid[nt]) slot.x[nt][0] = slot.x[nt][1] = make_uint4(0, 0, 0, 0);
    }
    if constexpr (MODE == Q4ScaleMode::kAbsmaxNested) {
      const int64_t unit = (c_begin + rel) >> w.unit_shift;
      slot.nest[0] = __ldg(w.nested + ((nest_row[0] + unit) >> 8));
      slot.nest[1] = __ldg(w.nested + ((nest_row[1] + unit) >> 8));
    }
  };

  float acc[NT][4];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.f;

  // Ring of WS weight slots (WS-1 chunks in flight) and XS x slots (XS-1 in flight): the load for chunk
  // c+WS-1 goes into the slot chunk c-1 used, so no slot is ever copied.
  const int count = c_end - c_begin;
  WeightSlot<MODE> wring[WS];
  XSlot<NT, MODE> xring[XS];
#pragma unroll
  for (int s = 0; s < WS - 1; ++s)
    if (s < count) load_weights(wring[s], s);
#pragma unroll
  for (int s = 0; s < XS - 1; ++s)
    if (s < count) load_x(xring[s], s);
  for (int base = 0; base < count; base += WS) {
#pragma unroll
    for (int s = 0; s < WS; ++s) {
      const int rel = base + s;
      if (rel >= count) break;
      if (rel + WS - 1 < count) load_weights(wring[(s + WS - 1) % WS], rel + WS - 1);
      if (rel + XS - 1 < count) load_x(xring[(s + XS - 1) % XS], rel + XS - 1);
      compute_chunk<Act, MODE, NT>(wring[s], xring[s % XS], table, nested_code, lane4, acc);
    }
  }

  if (split == 1) {  // the warp owns its tile: write its accumulators directly
    if (!tile_valid) return;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t row = tile * 16 + g + 8 * (e >> 1);
        const int m = nt * 8 + 2 * t + (e & 1);
        if (row < w.N && m < M) {
          float sum = acc[nt][e];
          if (bias != nullptr) sum += ActOps<Act>::to_float(bias[row]);
          y[static_cast<int64_t>(m) * ldy + row] = ActOps<Act>::from_float(sum);
        }
      }
    return;
  }
  // Sum the partial results of each tile's `split` warps (fixed order), one rounding to Act.
  __syncthreads();  // the table is dead; its space holds [warps][NT*4][32] floats
  float* partial = reinterpret_cast<float*>(table);
#pragma unroll
  for (int nt = 0; nt < NT; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) partial[((warp * NT + nt) * 4 + e) * 32 + lane] = acc[nt][e];
  __syncthreads();
  for (int o = threadIdx.x; o < tiles_per_block * NT * 4 * 32; o += blockDim.x) {
    const int local = o / (NT * 4 * 32), oo = o % (NT * 4 * 32);
    const int64_t otile = static_cast<int64_t>(blockIdx.x) * tiles_per_block + local;
    float sum = 0.f;
    for (int p = 0; p < split; ++p) sum += partial[(local * split + p) * NT * 4 * 32 + oo];
    const int ol = oo & 31, ne = oo >> 5, nt = ne >> 2, e = ne & 3;
    const int64_t row = otile * 16 + (ol >> 2) + 8 * (e >> 1);
    const int m = nt * 8 + 2 * (ol & 3) + (e & 1);
    if (row < w.N && m < M) {
      if (bias != nullptr) sum += ActOps<Act>::to_float(bias[row]);
      y[static_cast<int64_t>(m) * ldy + row] = ActOps<Act>::from_float(sum);
    }
  }
}

template <typename Act, Q4ScaleMode MODE, int NT, int WS, int XS>
void launch(const Q4TileWeights& w, const void* x, int64_t ldx, const void* bias, void* y, int64_t ldy, int M,
            int split, cudaStream_t stream) {
  static_assert(kMaxWarps * 8 * 4 * 32 <= kTableWords, "reduction buffer must fit in the table");
  const int64_t tiles_per_block = kMaxWarps / split;
  const unsigned blocks = static_cast<unsigned>((q4_n_tiles(w.N) + tiles_per_block - 1) / tiles_per_block);
  q4_tile_gemm_kernel<Act, MODE, NT, WS, XS><<<blocks, kMaxWarps * 32, 0, stream>>>(
      w, static_cast<const Act*>(x), ldx, static_cast<const Act*>(bias), static_cast<Act*>(y), ldy, M, split);
  QB_CUDA_CHECK_LAUNCH();
}

// depth = weight ring slots (depth - 1 chunks in flight per warp). Registers (sm_90, NT = 1 / 2): depth 4:
// 80-107 / 119-128, depth 6: 109-123 / 128-155; 8 warps per block.
template <typename Act, Q4ScaleMode MODE>
void dispatch_m(const Q4TileWeights& w, const void* x, int64_t ldx, const void* bias, void* y, int64_t ldy, int M,
                int warps, int depth, cudaStream_t stream) {
  if (M <= 8) {
    if (depth == 4) {
      launch<Act, MODE, 1, 4, 2>(w, x, ldx, bias, y, ldy, M, warps, stream);
    } else {
      launch<Act, MODE, 1, 6, 2>(w, x, ldx, bias, y, ldy, M, warps, stream);
    }
  } else if (M <= 16) {
    if (depth == 4) {
      launch<Act, MODE, 2, 4, 2>(w, x, ldx, bias, y, ldy, M, warps, stream);
    } else {
      launch<Act, MODE, 2, 6, 2>(w, x, ldx, bias, y, ldy, M, warps, stream);
    }
  } else if (M <= 32) {
    launch<Act, MODE, 4, 4, 2>(w, x, ldx, bias, y, ldy, M, warps, stream);
  } else {
    launch<Act, MODE, 8, 2, 2>(w, x, ldx, bias, y, ldy, M, warps, stream);
  }
}

template <typename Act>
void dispatch_mode(const Q4TileWeights& w, const void* x, int64_t ldx, const void* bias, void* y, int64_t ldy, int M,
                   int warps, int depth, cudaStream_t stream) {
  switch (w.mode) {
    case Q4ScaleMode::kAbsmaxF32:
      dispatch_m<Act, Q4ScaleMode::kAbsmaxF32>(w, x, ldx, bias, y, ldy, M, warps, depth, stream);
      break;
    case Q4ScaleMode::kAbsmaxNested:
      dispatch_m<Act, Q4ScaleMode::kAbsmaxNested>(w, x, ldx, bias, y, ldy, M, warps, depth, stream);
      break;
    case Q4ScaleMode::kAffine:
      dispatch_m<Act, Q4ScaleMode::kAffine>(w, x, ldx, bias, y, ldy, M, warps, depth, stream);
      break;
  }
}

}  // namespace

bool q4_tile_gemm_supported(DType dtype, const void* x, int64_t ldx, int64_t M) {
  return (dtype == DType::kF16 || dtype == DType::kBF16) && M >= 1 && M <= kQ4GemvMaxM && ldx % 8 == 0 &&
         reinterpret_cast<uintptr_t>(x) % 16 == 0;
}

void q4_tile_gemm(DType dtype, const Q4TileWeights& w, const void* x, int64_t ldx, const void* bias, void* y,
                  int64_t ldy, int64_t M, cudaStream_t stream, int warps_per_tile, int pipeline_depth) {
  QB_CHECK(q4_tile_gemm_supported(dtype, x, ldx, M), kInvalidInput,
           "q4_tile_gemm: needs fp16/bf16 x, 1 <= M <= {} (got {}), ldx % 8 == 0 (got {}) and 16-byte aligned x",
           kQ4GemvMaxM, M, ldx);
  QB_CHECK(w.K > 0 && w.K % 64 == 0 && w.N > 0, kInvalidInput, "q4_tile_gemm: tile layout needs K % 64 == 0 (K={}, N={})",
           w.K, w.N);
  QB_CHECK(ldx >= w.K && ldy >= w.N, kInvalidInput, "q4_tile_gemm: ldx {} < K {} or ldy {} < N {}", ldx, w.K, ldy, w.N);
  QB_CHECK(w.N * (w.K >> (6 + w.unit_shift)) < (int64_t{1} << 31) && w.K % (int64_t{64} << w.unit_shift) == 0,
           kInvalidInput, "q4_tile_gemm: unit of {} columns does not divide K = {}", int64_t{64} << w.unit_shift, w.K);
  QB_CHECK(w.mode != Q4ScaleMode::kAbsmaxNested || (w.nested != nullptr && w.nested_code != nullptr), kInvalidInput,
           "q4_tile_gemm: nested absmax needs the nested arrays");
  const int64_t n_tiles = q4_n_tiles(w.N);
  QB_CHECK(warps_per_tile == 0 || warps_per_tile == 1 || warps_per_tile == 2 || warps_per_tile == 4 ||
               warps_per_tile == 8,
           kInvalidInput, "q4_tile_gemm: warps_per_tile must be 0 (auto), 1, 2, 4 or 8, got {}", warps_per_tile);
  QB_CHECK(pipeline_depth == 0 || pipeline_depth == 4 || pipeline_depth == 6, kInvalidInput,
           "q4_tile_gemm: pipeline_depth must be 0 (auto), 4 or 6, got {}", pipeline_depth);
  // Measured on H100 (NOTES-q4.md, run 5, sweep of warps per tile x ring depth): the best split keeps about
  // 10^4 warps over the grid (lm_head 9504 tiles: 1; gate_up 2368: 4; 224-288 tiles: 8); a 6-deep ring pays
  // when a warp streams >= 16 chunks at M <= 8, else 4 (fewer registers, more blocks per SM).
  int warps = warps_per_tile;
  if (warps == 0) {
    warps = 8;
    while (warps > 1 && n_tiles * warps > 12000) warps /= 2;
  }
  const int64_t chunks_per_warp = (w.K / 64 + warps - 1) / warps;
  const int depth = pipeline_depth != 0 ? pipeline_depth : (M <= 8 && chunks_per_warp >= 16 ? 6 : 4);
  if (dtype == DType::kF16) {
    dispatch_mode<__half>(w, x, ldx, bias, y, ldy, static_cast<int>(M), warps, depth, stream);
  } else {
    dispatch_mode<__nv_bfloat16>(w, x, ldx, bias, y, ldy, static_cast<int>(M), warps, depth, stream);
  }
}

}  // namespace qb::kernels
