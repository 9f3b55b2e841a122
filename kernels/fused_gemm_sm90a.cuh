// Dequantize-in-the-GEMM on Hopper (sm_90a): the block skeleton every weight format shares
// (kernels/q4_gemm_sm90a.cu, kernels/int8_gemm_sm90a.cu). y[M, N] = x[M, K] W[N, K]^T (+ bias): x, y, bias fp16
// or bf16, fp32 accumulation; W never exists in 16 bits outside the block: each 64-column step of its 128 rows is
// copied packed into shared memory and converted there by the format's Source, which provides
//   kPackedStepBytes                 bytes one step occupies in the packed ring (a multiple of 128)
//   Shared                           tables the converters read (codebooks), filled by init_shared
//   n() / k_steps()                  W's rows (__host__ __device__: the launch sizes the grid with it) / 64-column
//                                    steps
//   init_shared(Shared&, n0)         every thread of the block, before the role split (strided loops)
//   load_step(k, n0, dst, bar)       the loader lane: mbarrier expect-tx on bar, then the copy-engine copies of
//                                    step k of rows [n0, n0 + 128) into dst (plain stores allowed before the
//                                    expect-tx: the arrival releases them)
//   convert_step<Act, CW>(k, n0, src, b, shared, warp, lane)
//                                    each converter thread (CW warps): step k from src into the B stage b,
//                                    128 rows x 64 columns, 16-bit, 128B-swizzled (sm90::swizzled_offset)
//
// Block (one per SM; 32 CW + 288 threads): output tile 128 (M) x 128 (N), K in steps of 64, warp-specialized:
//   warps 0 .. CW-1, converters in kConverterGroups groups taking turns by step: the packed step -> B stage.
//   warps CW .. CW+7 (two aligned warpgroups), consumers: rows 0-63 / 64-127 of the tile, 4 x wgmma m64n128k16 per
//     step, fp32 accumulators in registers, one step of wgmma kept in flight; then the epilogue (+ bias, round).
//   warp CW+8, the loader (lane 0): every global -> shared copy through the copy engine: the step's packed W
//     (Source::load_step) into a ring of kPackedSteps slots, x's 128 x 64 box into the step's A stage by a tensor
//     map (128B-swizzled on the way, rows and columns outside x zero-filled). (With per-thread cp.async the
//     copies' issue held a block to ~1-2 us per step whatever it computed: NOTES-q4.md, "Fused prefill".)
// Stages (kStages, 32 KB each): A 128 x 64 then B 128 x 64, 16-bit, 128B-swizzled.
// Barriers: full[stage] (the loader's expect-tx arrival + A's bytes + every thread of the step's converter group
//   after its B stores and proxy fence), empty[stage] (256 consumer threads once their wgmmas on the stage
//   retired), packed_full[slot] (expect-tx arrival + the step's bytes), packed_empty[slot] (the step's converter
//   group read it).
//   A stage is claimed for step k by the loader and by the converters once step k - kStages retired; a slot
//   once the converters read step k - kPackedSteps. No waiter can see a barrier two phases ahead of the one it
//   waits for (each next phase needs the waiter's own work), so parity waits are exact.
// Grid: one block per (M tile, N tile), M tiles fastest, so the blocks that share W's rows run together and all
//   but the first read them from L2.
#pragma once

#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

#include "q4_common.cuh"  // ActOps: pack / convert the 16-bit activation types
#include "quantbench/core/env_switch.h"
#include "quantbench/kernels/cuda_check.h"
#include "sm90_async.cuh"

namespace qb::kernels::fused {

constexpr int kBM = 128, kBN = 128, kBK = 64;
// Pipeline depths; QB_FUSED_STAGES / QB_FUSED_PACKED_STEPS at compile time for depth experiments (shared memory:
// stages x 32 KB + packed steps x the source's step must stay under the 227 KB a block may use).
#ifndef QB_FUSED_STAGES
#define QB_FUSED_STAGES 5
#endif
#ifndef QB_FUSED_PACKED_STEPS
#define QB_FUSED_PACKED_STEPS 6
#endif
// Converter warps form kConverterGroups groups; group g converts steps g, g + kConverterGroups, ... (each step by
// all the warps of one group), so that one group's proxy fence and barrier round trip overlap the other groups'
// conversions instead of adding to every step.
#ifndef QB_FUSED_CONVERTER_GROUPS
#define QB_FUSED_CONVERTER_GROUPS 4
#endif
constexpr int kConverterGroups = QB_FUSED_CONVERTER_GROUPS;
constexpr int kStages = QB_FUSED_STAGES;              // A + B stages in shared memory
constexpr int kPackedSteps = QB_FUSED_PACKED_STEPS;   // depth of the packed-weight ring
constexpr int kOperandBytes = kBM * kBK * 2;    // one 16-bit 128 x 64 tile
constexpr int kStageBytes = 2 * kOperandBytes;  // A, then B
constexpr int kConsumers = 256;

template <class Source>
constexpr int shared_table_bytes() {
  return (static_cast<int>(sizeof(typename Source::Shared)) + 15) / 16 * 16;
}
template <class Source>
constexpr int dynamic_smem_bytes() {
  return 1024 /* alignment slack */ + kStages * kStageBytes + kPackedSteps * Source::kPackedStepBytes +
         shared_table_bytes<Source>() + (2 * kStages + 2 * kPackedSteps) * 8;
}

template <class Source>
struct Smem {
  uint8_t* stages;
  uint8_t* packed;
  typename Source::Shared* tables;
  uint64_t* full;          // [kStages]: A landed and B converted
  uint64_t* empty;         // [kStages]: the consumers' wgmmas on the stage retired
  uint64_t* packed_full;   // [kPackedSteps]: the loader's copies landed
  uint64_t* packed_empty;  // [kPackedSteps]: the converters read the slot

  __device__ explicit Smem(uint8_t* raw) {
    const uint32_t pad = (1024u - (sm90::smem_addr(raw) & 1023u)) & 1023u;
    stages = raw + pad;
    packed = stages + kStages * kStageBytes;
    tables = reinterpret_cast<typename Source::Shared*>(packed + kPackedSteps * Source::kPackedStepBytes);
    full = reinterpret_cast<uint64_t*>(reinterpret_cast<uint8_t*>(tables) + shared_table_bytes<Source>());
    empty = full + kStages;
    packed_full = empty + kStages;
    packed_empty = packed_full + kPackedSteps;
  }
};

// ---- loader lane ---------------------------------------------------------------------------------------------------
template <class Source>
__device__ __forceinline__ void load(const Source& src, const void* x_map, int m0, int64_t n0, const Smem<Source>& s) {
  for (int k = 0; k < src.k_steps(); ++k) {
    const int slot = k % kPackedSteps;
    if (k >= kPackedSteps) sm90::mbar_wait(&s.packed_empty[slot], ((k / kPackedSteps) - 1) & 1);
    src.load_step(k, n0, s.packed + slot * Source::kPackedStepBytes, &s.packed_full[slot]);
    const int stage = k % kStages;
    if (k >= kStages) sm90::mbar_wait(&s.empty[stage], ((k / kStages) - 1) & 1);
    sm90::mbar_arrive_expect_tx(&s.full[stage], kOperandBytes);
    sm90::tma_load_2d(s.stages + stage * kStageBytes, x_map, k * kBK, m0, &s.full[stage]);
  }
}

// ---- converters ----------------------------------------------------------------------------------------------------
template <typename Act, class Source, int CW>
__device__ __forceinline__ void convert(const Source& src, int64_t n0, const Smem<Source>& s) {
  static_assert(CW % kConverterGroups == 0, "converter warps must split evenly into groups");
  constexpr int kWarpsPerGroup = CW / kConverterGroups;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  for (int k = warp / kWarpsPerGroup; k < src.k_steps(); k += kConverterGroups) {
    const int slot = k % kPackedSteps, stage = k % kStages;
    sm90::mbar_wait(&s.packed_full[slot], (k / kPackedSteps) & 1);
    if (k >= kStages) sm90::mbar_wait(&s.empty[stage], ((k / kStages) - 1) & 1);
    src.template convert_step<Act, kWarpsPerGroup>(k, n0, s.packed + slot * Source::kPackedStepBytes,
                                                   s.stages + stage * kStageBytes + kOperandBytes, *s.tables,
                                                   warp % kWarpsPerGroup, lane);
    sm90::mbar_arrive(&s.packed_empty[slot]);
    // The B stores, visible to wgmma (async proxy) before the stage is published. (Measured necessary: without it
    // 12 of bench_q4's 32 prefill checks failed on the H100.)
    sm90::fence_proxy_async();
    sm90::mbar_arrive(&s.full[stage]);
  }
}

// ---- consumers -----------------------------------------------------------------------------------------------------
template <typename Act, class Source, int CW>
__device__ __forceinline__ void consume(const Smem<Source>& s, int k_steps, int m0, int64_t n0, int M, int64_t N,
                                        const Act* __restrict__ bias, Act* __restrict__ y, int64_t ldy,
                                        bool pair_stores) {
  using q4::ActOps;
  const int ct = threadIdx.x - 32 * CW, wg = ct >> 7, warp = (ct >> 5) & 3, lane = ct & 31;
  float d[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) d[i] = 0.f;
  for (int k = 0; k < k_steps; ++k) {
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
  const int row0 = m0 + wg * 64 + warp * 16 + (lane >> 2);
  const int64_t col0 = n0 + 2 * (lane & 3);
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

template <typename Act, class Source, int CW>
__global__ void __launch_bounds__(32 * CW + kConsumers + 32, 1)
    fused_gemm_kernel(const __grid_constant__ Source src, const __grid_constant__ CUtensorMap x_map,
                      const Act* __restrict__ bias, Act* __restrict__ y, int64_t ldy, int M, bool pair_stores) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ uint8_t smem_raw[];
  const Smem<Source> s(smem_raw);
  const int m_tiles = (M + kBM - 1) / kBM;
  const int m0 = static_cast<int>(blockIdx.x % m_tiles) * kBM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x / m_tiles) * kBN;
  src.init_shared(*s.tables, n0);
  if (threadIdx.x == 0) {
    for (int i = 0; i < kStages; ++i) {
      sm90::mbar_init(&s.full[i], 1 + 32 * CW / kConverterGroups);  // the loader's expect-tx + one converter group
      sm90::mbar_init(&s.empty[i], kConsumers);
    }
    for (int i = 0; i < kPackedSteps; ++i) {
      sm90::mbar_init(&s.packed_full[i], 1);
      sm90::mbar_init(&s.packed_empty[i], 32 * CW / kConverterGroups);
    }
    sm90::mbar_init_fence();
  }
  __syncthreads();
  const int warp = threadIdx.x >> 5;
  if (warp < CW) {
    convert<Act, Source, CW>(src, n0, s);
  } else if (warp < CW + kConsumers / 32) {
    consume<Act, Source, CW>(s, src.k_steps(), m0, n0, M, src.n(), bias, y, ldy, pair_stores);
  } else if ((threadIdx.x & 31) == 0) {
    load<Source>(src, &x_map, m0, n0, s);
  }
#endif
}

// ---- host ----------------------------------------------------------------------------------------------------------
// A 2-D row-major tensor [rows, cols] (row stride ld elements of elem_bytes) as a tensor map with boxes of
// box_cols x box_rows; elements outside the tensor read as zeros. The driver entry point is looked up once through
// the runtime (no libcuda link).
inline CUtensorMap tensor_map_2d(const void* base, CUtensorMapDataType type, int elem_bytes, int64_t rows,
                                 int64_t cols, int64_t ld, int box_cols, int box_rows, CUtensorMapSwizzle swizzle,
                                 const char* what) {
  static PFN_cuTensorMapEncodeTiled_v12000 encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult status{};
    QB_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &status));
    QB_CHECK(fn != nullptr && status == cudaDriverEntryPointSuccess, kDevice,
             "fused GEMM: the CUDA driver has no cuTensorMapEncodeTiled");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
  }();
  CUtensorMap map;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(ld) * static_cast<cuuint64_t>(elem_bytes)};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(box_cols), static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t element_strides[2] = {1, 1};
  const CUresult r = encode(&map, type, 2, const_cast<void*>(base), dims, strides, box, element_strides,
                            CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  QB_CHECK(r == CUDA_SUCCESS, kDevice, "fused GEMM: cuTensorMapEncodeTiled failed ({}) for {} [{}, {}] ld {}",
           static_cast<int>(r), what, rows, cols, ld);
  return map;
}

inline bool aligned(const void* p, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

using qb::env_equals;  // the switches of the fused kernels (quantbench/core/env_switch.h)
inline bool env_is_one(const char* name) { return env_equals(name, "1"); }

// QB_WGMMA_CONVERTERS=4: four converter warps instead of eight (an A/B of the conversion's latency hiding).
inline int converter_warps() {
  static const int warps = env_equals("QB_WGMMA_CONVERTERS", "4") ? 4 : 8;
  return warps;
}

// Lets `Kernel` take `bytes` of dynamic shared memory (once per process: device 0's limit is every device's here).
template <auto Kernel>
void allow_dynamic_smem(int bytes) {
  static std::once_flag once;
  std::call_once(once, [bytes] {
    QB_CUDA_CHECK(cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  });
}

// x [M, K] (16-bit, row stride ldx) as the fused kernels' tensor map: boxes of 64 columns x box_rows rows,
// 128B-swizzled (the wgmma operand layout), rows past M read as zeros.
inline CUtensorMap x_tensor_map(const void* x, int64_t M, int64_t K, int64_t ldx, int box_rows) {
  return tensor_map_2d(x, CU_TENSOR_MAP_DATA_TYPE_UINT16, 2, M, K, ldx, kBK, box_rows, CU_TENSOR_MAP_SWIZZLE_128B,
                       "x");
}

// x [M, K] (16-bit, row stride ldx, 16-byte aligned, ldx % 8 == 0) times the Source's W, one block per tile.
template <typename Act, class Source, int CW>
void launch_cw(const Source& src, const void* x, int64_t ldx, int64_t K, const void* bias, void* y, int64_t ldy,
               int64_t M, cudaStream_t stream) {
  constexpr auto kernel = fused_gemm_kernel<Act, Source, CW>;
  constexpr int smem = dynamic_smem_bytes<Source>();
  allow_dynamic_smem<kernel>(smem);
  const CUtensorMap x_map = x_tensor_map(x, M, K, ldx, kBM);
  const int64_t blocks = (M + kBM - 1) / kBM * ((src.n() + kBN - 1) / kBN);
  kernel<<<static_cast<unsigned>(blocks), 32 * CW + kConsumers + 32, smem, stream>>>(
      src, x_map, static_cast<const Act*>(bias), static_cast<Act*>(y), ldy, static_cast<int>(M),
      ldy % 2 == 0 && reinterpret_cast<uintptr_t>(y) % 4 == 0);
  QB_CUDA_CHECK_LAUNCH();
}

template <typename Act, class Source>
void launch(const Source& src, const void* x, int64_t ldx, int64_t K, const void* bias, void* y, int64_t ldy,
            int64_t M, cudaStream_t stream) {
  if (converter_warps() == 4) {
    launch_cw<Act, Source, 4>(src, x, ldx, K, bias, y, ldy, M, stream);
  } else {
    launch_cw<Act, Source, 8>(src, x, ldx, K, bias, y, ldy, M, stream);
  }
}

}  // namespace qb::kernels::fused
