// 4-bit weights at large M (prefill) on Hopper: y[M, N] = x[M, K] W[N, K]^T (+ bias) in one kernel. Each
// weight tile is dequantized into shared memory inside the GEMM main loop and multiplied there by wgmma, so
// the 16-bit copy of W that the dequantize + cuBLAS path writes to DRAM and reads back (kernels/q4_prefill.cu,
// 1.8-2.1x the cuBLAS bf16 time on Qwen2-7B shapes at M = 512) never exists. Compiled for sm_90a only
// (CMakeLists.txt). Status (NOTES-q4.md, "Fused prefill"): opt-in (QB_Q4_WGMMA=1); the cp.async versions were
// exact but 3-10x cuBLAS, limited by the copies' issue; this copy-engine version has not run on a GPU yet.
//
// Contract: x, y, bias fp16 or bf16; W in the tile layout (quantbench/kernels/q4_layout.h, K % 64 == 0);
//   x 16-byte aligned with ldx % 8 == 0 (q4_tile_gemm_wgmma_supported); y any ld (pairs of outputs stored as one
//   32-bit word when ldy is even and y 4-byte aligned, else one by one).
//   Weight values are computed exactly as q4_tile_dequant computes them (fp32 product, one rounding to the
//   16-bit type), so W is bit-identical to the two-pass path; only the fp32 summation order differs.
//
// Block (one per SM): output tile 128 (M) x 128 (N), K in steps of 64; warp-specialized:
//   loader warp (lane 0): every global -> shared copy through the copy engine: x[m0 .. m0+128, k .. k+64] by a
//     tensor map into the step's A stage (rows past M zero-filled), the step's packed codes + scales by bulk
//     copies into a ring of kPackedSteps slots.
//   converter warps (8; QB_Q4_WGMMA_CONVERTERS=4 for 4): dequantize a packed slot into the step's B stage.
//   two consumer warpgroups: rows 0-63 / 64-127 of the tile, 4 x wgmma m64n128k16 per step, fp32 accumulators
//     in registers, one step of wgmma kept in flight.
// Stages (kStages, 32 KB each): A 128 x 64 then B 128 x 64, 16-bit, 128B-swizzled (kernels/sm90_async.cuh).
// Barriers: full[stage] (the loader's expect-tx arrival + A's bytes + every converter thread after its B stores
//   and proxy fence), empty[stage] (256 consumer threads once their wgmmas on the stage retired),
//   packed_full[slot] (expect-tx arrival + the bulk copies' bytes), packed_empty[slot] (every converter thread
//   read it).
// Grid: one block per (M tile, N tile), M tiles fastest, so the blocks that share a weight tile run together
//   and all but the first read its codes from L2.
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "q4_common.cuh"
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/device_limits.h"
#include "quantbench/kernels/q4_gemm.h"
#include "sm90_async.cuh"

namespace qb::kernels {
namespace {

using q4::ActOps;

constexpr int kBM = 128, kBN = 128, kBK = 64;
constexpr int kTilesPerBlock = kBN / 16;                      // 16-row weight tiles per block
constexpr int kStages = 5;                                    // A + B stages in shared memory
constexpr int kPackedSteps = 6;                               // depth of the packed-code ring
constexpr int kOperandBytes = kBM * kBK * 2;                  // one 16-bit 128 x 64 tile
constexpr int kStageBytes = 2 * kOperandBytes;                // A, then B
constexpr int kCodesBytes = kTilesPerBlock * 512;             // one tile chunk per weight tile
constexpr int kConsumers = 256;

// A packed step: the 8 tile chunks' codes (4 KB), then the scales of the step's unit for the block's 128 rows,
// as the tile layout stores them: fp32 absmax / awq words [8 tiles][8 g][2 h] (512 bytes); nested: the code
// bytes [8][8][2] (128 bytes), then the (nested absmax, offset) pairs the 128 rows use, a contiguous run of the
// nested array starting at an even index (at most kNestedRun entries: q4_tile_gemm_wgmma_supported checks).
constexpr int kNestedValuesOffset = kCodesBytes + 128;
constexpr int kNestedRun = 512;
constexpr int packed_step_bytes(Q4ScaleMode mode) {
  return mode == Q4ScaleMode::kAbsmaxNested ? kNestedValuesOffset + kNestedRun * 8 : kCodesBytes + kBN * 4;
}
// First nested index of the run a block's rows [row0, row0 + 128) use at unit u, aligned down to 16 bytes.
__host__ __device__ constexpr int64_t nested_run_start(int64_t row0, int64_t units, int64_t u) {
  return ((row0 * units + u) >> 8) & ~int64_t{1};
}
constexpr int tables_bytes = (16 + 256) * 4;
constexpr int dynamic_smem_bytes(Q4ScaleMode mode) {
  return 1024 /* alignment slack */ + kStages * kStageBytes + kPackedSteps * packed_step_bytes(mode) + tables_bytes +
         (2 * kStages + 2 * kPackedSteps) * 8;
}

struct Smem {
  uint8_t* stages;
  uint8_t* packed;
  float* codebook;
  float* nested_code;
  uint64_t* full;           // [kStages]: A landed and B converted
  uint64_t* empty;          // [kStages]: the consumers' wgmmas on the stage retired
  uint64_t* packed_full;    // [kPackedSteps]: the loader's copies landed
  uint64_t* packed_empty;   // [kPackedSteps]: the converters read the slot
};

template <Q4ScaleMode MODE>
__device__ __forceinline__ Smem carve(uint8_t* raw) {
  Smem s;
  const uint32_t pad = (1024u - (sm90::smem_addr(raw) & 1023u)) & 1023u;
  s.stages = raw + pad;
  s.packed = s.stages + kStages * kStageBytes;
  s.codebook = reinterpret_cast<float*>(s.packed + kPackedSteps * packed_step_bytes(MODE));
  s.nested_code = s.codebook + 16;
  s.full = reinterpret_cast<uint64_t*>(s.nested_code + 256);
  s.empty = s.full + kStages;
  s.packed_full = s.empty + kStages;
  s.packed_empty = s.packed_full + kPackedSteps;
  return s;
}

struct BlockCoords {
  int m0;           // first row of x / y
  int64_t tile0;    // first 16-row weight tile
  int k_steps;      // K / 64
};

// ---- loader warp ------------------------------------------------------------------------------------------------
// Lane 0 issues every global -> shared copy through the copy engine: x's 128 x 64 box into the step's A stage by
// the tensor map (swizzled on the way, rows past M zero-filled) once the consumers release the stage, and the
// step's packed codes + scales into the ring once the converters release the slot. Completion is counted in
// bytes on the stage's / slot's barrier. (With cp.async from the threads instead, the issuing warps' load
// throughput held every step to ~1-2 us: NOTES-q4.md.)
template <Q4ScaleMode MODE>
__device__ __forceinline__ void load(const Q4TileWeights& w, const void* x_map, int M, BlockCoords bc, const Smem& s) {
  if ((threadIdx.x & 31) != 0) return;
  const int64_t n_tiles = (w.N + 15) / 16, units = w.K >> (6 + w.unit_shift);
  const int valid_tiles = static_cast<int>(min(static_cast<int64_t>(kTilesPerBlock), n_tiles - bc.tile0));
  for (int k = 0; k < bc.k_steps; ++k) {
    const int slot = k % kPackedSteps;
    if (k >= kPackedSteps) sm90::mbar_wait(&s.packed_empty[slot], ((k / kPackedSteps) - 1) & 1);
    uint8_t* dst = s.packed + slot * packed_step_bytes(MODE);
    uint64_t* bar = &s.packed_full[slot];
    const int64_t unit = k >> w.unit_shift;
    uint32_t bytes = valid_tiles * (512 + (MODE == Q4ScaleMode::kAbsmaxNested ? 16 : 64));
    int64_t run0 = 0, run_bytes = 0, tail = -1;
    if constexpr (MODE == Q4ScaleMode::kAbsmaxNested) {
      const int64_t row0 = bc.tile0 * 16, last_row = min(row0 + kBN, w.N) - 1;
      run0 = nested_run_start(row0, units, unit);
      const int64_t entries = ((last_row * units + unit) >> 8) - run0 + 1;
      run_bytes = (entries & ~int64_t{1}) * 8;        // whole 16-byte pairs by the copy engine,
      if (entries & 1) tail = run0 + entries - 1;     // an odd last entry by this lane (never read past the array)
      bytes += static_cast<uint32_t>(run_bytes);
    }
    if (tail >= 0) {
      *reinterpret_cast<float2*>(dst + kNestedValuesOffset + (tail - run0) * 8) = w.nested[tail];
    }
    sm90::mbar_arrive_expect_tx(bar, bytes);
    for (int j = 0; j < valid_tiles; ++j) {
      const int64_t tile = bc.tile0 + j;
      sm90::bulk_load(dst + j * 512, w.tiles + (tile * bc.k_steps + k) * 512, 512, bar);
      if constexpr (MODE == Q4ScaleMode::kAbsmaxNested) {
        sm90::bulk_load(dst + kCodesBytes + j * 16, static_cast<const uint8_t*>(w.scales) + (tile * units + unit) * 16,
                        16, bar);
      } else {
        sm90::bulk_load(dst + kCodesBytes + j * 64, static_cast<const uint8_t*>(w.scales) + (tile * units + unit) * 64,
                        64, bar);
      }
    }
    if (run_bytes > 0) sm90::bulk_load(dst + kNestedValuesOffset, w.nested + run0, static_cast<uint32_t>(run_bytes), bar);

    const int stage = k % kStages;
    if (k >= kStages) sm90::mbar_wait(&s.empty[stage], ((k / kStages) - 1) & 1);
    sm90::mbar_arrive_expect_tx(&s.full[stage], kOperandBytes);
    sm90::tma_load_2d(s.stages + stage * kStageBytes, x_map, k * kBK, bc.m0, &s.full[stage]);
  }
}

// ---- converters -------------------------------------------------------------------------------------------------
// CW converter warps (4 or 8): warp cw dequantizes weight tiles cw * (8 / CW) .. + 8 / CW of each packed step into
// the B stage. Lane (g, t) takes rows g and g + 8 of a tile, columns 16t .. 16t + 16: the 16 bytes the tile layout
// gives it. Same arithmetic as q4_tile_dequant_kernel (kernels/q4_dequant.cu).
template <typename Act, Q4ScaleMode MODE, int CW>
__device__ __forceinline__ void convert(const Q4TileWeights& w, BlockCoords bc, const Smem& s) {
  constexpr int kTilesPerWarp = kTilesPerBlock / CW;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int64_t n_tiles = (w.N + 15) / 16, units = w.K >> (6 + w.unit_shift);
  for (int k = 0; k < bc.k_steps; ++k) {
    const int slot = k % kPackedSteps, stage = k % kStages;
    sm90::mbar_wait(&s.packed_full[slot], (k / kPackedSteps) & 1);
    if (k >= kStages) sm90::mbar_wait(&s.empty[stage], ((k / kStages) - 1) & 1);
    const uint8_t* src = s.packed + slot * packed_step_bytes(MODE);
    uint8_t* b = s.stages + stage * kStageBytes + kOperandBytes;
    const int64_t unit = k >> w.unit_shift, run0 = nested_run_start(bc.tile0 * 16, units, unit);
#pragma unroll
    for (int jj = 0; jj < kTilesPerWarp; ++jj) {
      const int j = kTilesPerWarp * warp + jj;
      uint4 codes = make_uint4(0, 0, 0, 0);
      float scale[2] = {0.f, 0.f}, zero[2] = {0.f, 0.f};
      if (bc.tile0 + j < n_tiles) {
        codes = *reinterpret_cast<const uint4*>(src + j * 512 + lane * 16);
        if constexpr (MODE == Q4ScaleMode::kAbsmaxF32) {
          const float2 v = *reinterpret_cast<const float2*>(src + kCodesBytes + j * 64 + g * 8);
          scale[0] = v.x;
          scale[1] = v.y;
        } else if constexpr (MODE == Q4ScaleMode::kAffine) {
          const uint2 v = *reinterpret_cast<const uint2*>(src + kCodesBytes + j * 64 + g * 8);
          scale[0] = q4::affine_scale(v.x);
          zero[0] = q4::affine_zero(v.x);
          scale[1] = q4::affine_scale(v.y);
          zero[1] = q4::affine_zero(v.y);
        } else {
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const uint32_t code = src[kCodesBytes + j * 16 + g * 2 + h];
            const int64_t n = min(bc.tile0 * 16 + 16 * j + g + 8 * h, w.N - 1);
            const int64_t entry = ((n * units + unit) >> 8) - run0;
            scale[h] = q4::nested_absmax(s.nested_code[code],
                                         *reinterpret_cast<const float2*>(src + kNestedValuesOffset + entry * 8));
          }
        }
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const uint32_t lo_word = h ? codes.z : codes.x, hi_word = h ? codes.w : codes.y;
        uint32_t out[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const uint32_t byte = ((i < 4 ? lo_word : hi_word) >> (8 * (i & 3))) & 0xFFu;
          float first, second;
          if constexpr (MODE == Q4ScaleMode::kAffine) {
            first = (s.codebook[byte >> 4] - zero[h]) * scale[h];
            second = (s.codebook[byte & 15] - zero[h]) * scale[h];
          } else {
            first = __fmul_rn(s.codebook[byte >> 4], scale[h]);
            second = __fmul_rn(s.codebook[byte & 15], scale[h]);
          }
          out[i] = ActOps<Act>::pack(first, second);
        }
        const uint32_t r = 16 * j + g + 8 * h;
        *reinterpret_cast<uint4*>(b + sm90::swizzled_offset(r, 2 * t)) = make_uint4(out[0], out[1], out[2], out[3]);
        *reinterpret_cast<uint4*>(b + sm90::swizzled_offset(r, 2 * t + 1)) =
            make_uint4(out[4], out[5], out[6], out[7]);
      }
    }
    sm90::mbar_arrive(&s.packed_empty[slot]);
    sm90::fence_proxy_async();
    sm90::mbar_arrive(&s.full[stage]);
  }
}

// ---- consumers ------------------------------------------------------------------------------------------------
template <typename Act, int PW>
__device__ __forceinline__ void consume(const Smem& s, BlockCoords bc, int M, int64_t N, const Act* __restrict__ bias,
                                        Act* __restrict__ y, int64_t ldy, bool pair_stores) {
  const int ct = threadIdx.x - 32 * PW, wg = ct >> 7, warp = (ct >> 5) & 3, lane = ct & 31;
  float d[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) d[i] = 0.f;
  for (int k = 0; k < bc.k_steps; ++k) {
    const int stage = k % kStages;
    sm90::mbar_wait(&s.full[stage], (k / kStages) & 1);
    const uint8_t* base = s.stages + stage * kStageBytes;
    const uint64_t desc_a = sm90::make_desc(base + wg * 64 * 128), desc_b = sm90::make_desc(base + kOperandBytes);
    sm90::wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk) sm90::Wgmma<Act>::m64n128k16(d, desc_a + 2 * kk, desc_b + 2 * kk);
    sm90::wgmma_commit();
    sm90::wgmma_wait<1>();
    if (k >= 1) sm90::mbar_arrive(&s.empty[(k - 1) % kStages]);
  }
  sm90::wgmma_wait<0>();

  // d[4i + 2j + c]: row 16 warp + lane / 4 + 8 j of this warpgroup's 64, column 8 i + 2 (lane % 4) + c.
  const int row0 = bc.m0 + wg * 64 + warp * 16 + (lane >> 2);
  const int64_t col0 = bc.tile0 * 16 + 2 * (lane & 3);
#pragma unroll
  for (int i = 0; i < 16; ++i) {
    const int64_t col = col0 + 8 * i;
    if (col >= N) continue;
    const bool pair = col + 1 < N, store_pair = pair && pair_stores;
    float b0 = 0.f, b1 = 0.f;
    if (bias != nullptr) {
      b0 = ActOps<Act>::to_float(bias[col]);
      if (pair) b1 = ActOps<Act>::to_float(bias[col + 1]);
    }
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int row = row0 + 8 * j;
      if (row >= M) continue;
      Act* dst = y + static_cast<int64_t>(row) * ldy + col;
      const float v0 = d[4 * i + 2 * j] + b0, v1 = d[4 * i + 2 * j + 1] + b1;
      if (store_pair) {
        *reinterpret_cast<uint32_t*>(dst) = ActOps<Act>::pack(v0, v1);
      } else {
        dst[0] = ActOps<Act>::from_float(v0);
        if (pair) dst[1] = ActOps<Act>::from_float(v1);
      }
    }
  }
}

// Warps 0 .. CW-1 convert, warps CW .. CW+7 (two aligned warpgroups) multiply, warp CW+8 loads.
template <typename Act, Q4ScaleMode MODE, int CW>
__global__ void __launch_bounds__(32 * CW + kConsumers + 32, 1)
    q4_gemm_sm90a_kernel(const __grid_constant__ Q4TileWeights w, const __grid_constant__ CUtensorMap x_map,
                         const Act* __restrict__ bias, Act* __restrict__ y, int64_t ldy, int M, bool pair_stores) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ uint8_t smem_raw[];
  const Smem s = carve<MODE>(smem_raw);
  const int m_tiles = (M + kBM - 1) / kBM;
  BlockCoords bc;
  bc.m0 = static_cast<int>(blockIdx.x % m_tiles) * kBM;
  bc.tile0 = static_cast<int64_t>(blockIdx.x / m_tiles) * kTilesPerBlock;
  bc.k_steps = static_cast<int>(w.K / kBK);
  if (threadIdx.x < 16) s.codebook[threadIdx.x] = w.codebook[threadIdx.x];
  if constexpr (MODE == Q4ScaleMode::kAbsmaxNested) {
    for (int i = threadIdx.x; i < 256; i += blockDim.x) s.nested_code[i] = w.nested_code[i];
  }
  if (threadIdx.x == 0) {
    for (int i = 0; i < kStages; ++i) {
      sm90::mbar_init(&s.full[i], 1 + 32 * CW);  // the loader's expect-tx arrival + the converter threads
      sm90::mbar_init(&s.empty[i], kConsumers);
    }
    for (int i = 0; i < kPackedSteps; ++i) {
      sm90::mbar_init(&s.packed_full[i], 1);
      sm90::mbar_init(&s.packed_empty[i], 32 * CW);
    }
    sm90::mbar_init_fence();
  }
  __syncthreads();
  const int warp = threadIdx.x >> 5;
  if (warp < CW) {
    convert<Act, MODE, CW>(w, bc, s);
  } else if (warp < CW + kConsumers / 32) {
    consume<Act, CW>(s, bc, M, w.N, bias, y, ldy, pair_stores);
  } else {
    load<MODE>(w, &x_map, M, bc, s);
  }
#endif
}

// x [M, K] (row stride ldx elements, 16-bit) as a tensor map: boxes of 64 columns x 128 rows, 128B-swizzled (the
// A-stage layout), rows past M read as zeros. The driver entry point is looked up once (no libcuda link).
CUtensorMap activation_map(const void* x, int64_t ldx, int64_t K, int64_t M) {
  static PFN_cuTensorMapEncodeTiled_v12000 encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult status{};
    QB_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &status));
    QB_CHECK(fn != nullptr && status == cudaDriverEntryPointSuccess, kDevice,
             "q4_tile_gemm_wgmma: the driver has no cuTensorMapEncodeTiled");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
  }();
  CUtensorMap map;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(K), static_cast<cuuint64_t>(M)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(ldx) * 2};
  const cuuint32_t box[2] = {kBK, kBM}, element_strides[2] = {1, 1};
  const CUresult r = encode(&map, CU_TENSOR_MAP_DATA_TYPE_UINT16, 2, const_cast<void*>(x), dims, strides, box,
                            element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                            CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  QB_CHECK(r == CUDA_SUCCESS, kDevice, "q4_tile_gemm_wgmma: cuTensorMapEncodeTiled failed ({}) for x [{}, {}] ld {}",
           static_cast<int>(r), M, K, ldx);
  return map;
}

template <typename Act, Q4ScaleMode MODE, int PW>
void launch_pw(const Q4TileWeights& w, const void* x, int64_t ldx, const void* bias, void* y, int64_t ldy, int64_t M,
               cudaStream_t stream) {
  auto kernel = q4_gemm_sm90a_kernel<Act, MODE, PW>;
  constexpr int smem = dynamic_smem_bytes(MODE);
  static std::once_flag once;
  std::call_once(once, [&] {
    QB_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  });
  const int64_t blocks = (M + kBM - 1) / kBM * ((w.N + kBN - 1) / kBN);
  const CUtensorMap x_map = activation_map(x, ldx, w.K, M);
  kernel<<<static_cast<unsigned>(blocks), 32 * PW + kConsumers + 32, smem, stream>>>(
      w, x_map, static_cast<const Act*>(bias), static_cast<Act*>(y), ldy,
      static_cast<int>(M), ldy % 2 == 0 && reinterpret_cast<uintptr_t>(y) % 4 == 0);
  QB_CUDA_CHECK_LAUNCH();
}

// QB_Q4_WGMMA_CONVERTERS=4: four converter warps instead of eight (an A/B of the conversion's latency hiding).
template <typename Act, Q4ScaleMode MODE>
void launch(const Q4TileWeights& w, const void* x, int64_t ldx, const void* bias, void* y, int64_t ldy, int64_t M,
            cudaStream_t stream) {
  static const int producers = [] {
    const char* v = std::getenv("QB_Q4_WGMMA_CONVERTERS");
    return v != nullptr && std::strcmp(v, "4") == 0 ? 4 : 8;
  }();
  if (producers == 8) {
    launch_pw<Act, MODE, 8>(w, x, ldx, bias, y, ldy, M, stream);
  } else {
    launch_pw<Act, MODE, 4>(w, x, ldx, bias, y, ldy, M, stream);
  }
}

template <typename Act>
void dispatch_mode(const Q4TileWeights& w, const void* x, int64_t ldx, const void* bias, void* y, int64_t ldy,
                   int64_t M, cudaStream_t stream) {
  switch (w.mode) {
    case Q4ScaleMode::kAbsmaxF32: return launch<Act, Q4ScaleMode::kAbsmaxF32>(w, x, ldx, bias, y, ldy, M, stream);
    case Q4ScaleMode::kAbsmaxNested:
      return launch<Act, Q4ScaleMode::kAbsmaxNested>(w, x, ldx, bias, y, ldy, M, stream);
    case Q4ScaleMode::kAffine: return launch<Act, Q4ScaleMode::kAffine>(w, x, ldx, bias, y, ldy, M, stream);
  }
}

bool aligned(const void* p, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace

bool q4_tile_gemm_wgmma_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("QB_Q4_WGMMA");
    return v != nullptr && std::strcmp(v, "1") == 0;
  }();
  return enabled;
}

bool q4_tile_gemm_wgmma_supported(DType dtype, const Q4TileWeights& w, const void* x, int64_t ldx, const void* y,
                                  int64_t ldy, int64_t M) {
  // The bulk copies need 16-byte aligned sources (every offset into these arrays is a multiple of 16).
  const bool weights_aligned = aligned(w.tiles, 16) && aligned(w.scales, 16) &&
                               (w.mode != Q4ScaleMode::kAbsmaxNested || aligned(w.nested, 16));
  return weights_aligned && compute_capability() == 90 && (dtype == DType::kF16 || dtype == DType::kBF16) &&
         w.tiles != nullptr && w.K > 0 && w.K % kBK == 0 && w.N > 0 && M > 0 && M <= INT_MAX - kBM &&
         aligned(x, 16) && ldx % 8 == 0 && ldx >= w.K && aligned(y, 2) && ldy >= w.N &&
         max_shared_per_block_optin() >= dynamic_smem_bytes(w.mode) &&
         (w.mode != Q4ScaleMode::kAbsmaxNested ||
          (kBN * (w.K >> (6 + w.unit_shift))) / 256 + 3 <= kNestedRun);  // a block's nested run fits its slot
}

void q4_tile_gemm_wgmma(DType dtype, const Q4TileWeights& w, const void* x, int64_t ldx, const void* bias, void* y,
                        int64_t ldy, int64_t M, cudaStream_t stream) {
  QB_CHECK(q4_tile_gemm_wgmma_supported(dtype, w, x, ldx, y, ldy, M), kInvalidInput,
           "q4_tile_gemm_wgmma: operands not supported (dtype, alignment, M={}, ldx={}, ldy={}, or not sm_90)", M,
           ldx, ldy);
  if (dtype == DType::kF16) {
    dispatch_mode<__half>(w, x, ldx, bias, y, ldy, M, stream);
  } else {
    dispatch_mode<__nv_bfloat16>(w, x, ldx, bias, y, ldy, M, stream);
  }
}

}  // namespace qb::kernels
