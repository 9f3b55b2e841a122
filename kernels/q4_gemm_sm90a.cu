// 4-bit weights at large M (prefill) on Hopper: y[M, N] = x[M, K] W[N, K]^T (+ bias) in one kernel. Each
// weight tile is dequantized into shared memory inside the GEMM main loop and multiplied there by wgmma, so
// the 16-bit copy of W that the dequantize + cuBLAS path writes to DRAM and reads back (kernels/q4_prefill.cu,
// ~1.5x the cuBLAS time on Qwen2-7B shapes) never exists. Compiled for sm_90a only (CMakeLists.txt).
//
// Contract: x, y, bias fp16 or bf16; W in the tile layout (quantbench/kernels/q4_layout.h, K % 64 == 0);
//   x 16-byte aligned with ldx % 8 == 0 (q4_tile_gemm_wgmma_supported); y any ld (pairs of outputs stored as one
//   32-bit word when ldy is even and y 4-byte aligned, else one by one).
//   Weight values are computed exactly as q4_tile_dequant computes them (fp32 product, one rounding to the
//   16-bit type), so W is bit-identical to the two-pass path; only the fp32 summation order differs.
//
// Block (384 threads, one per SM): output tile 128 (M) x 128 (N), K in steps of 64.
//   warpgroup 0, the producer: per step, cp.async of x[m0 .. m0+128, k .. k+64] into the step's A stage
//     (rows past M zero-filled), cp.async of the packed codes and scales kPackedSteps - 1 steps ahead into a
//     ring that each lane reads back only where it wrote (no cross-lane sync), then the dequantized B stage.
//     Lane (g, t) of producer warp pw converts weight tiles 2pw, 2pw + 1 (16 rows each): rows g and g + 8,
//     columns 16t .. 16t + 16 of the step, i.e. the 16 bytes the tile layout gives it.
//   warpgroups 1, 2, the consumers: rows 0-63 / 64-127 of the tile, 4 x wgmma m64n128k16 per step, fp32
//     accumulators in registers, one step of wgmma kept in flight.
// Stages (kStages, 32 KB each): A 128 x 64 then B 128 x 64, 16-bit, 128B-swizzled (kernels/sm90_async.cuh).
// Barriers per stage: full (128 arrivals from the A copies landing + 128 after the B stores), empty (256
//   consumer threads, once the wgmmas that read the stage have retired).
// Grid: one block per (M tile, N tile), M tiles fastest, so the blocks that share a weight tile run together
//   and all but the first read its codes from L2.
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
constexpr int kScaleRecords = 2 * 128;                      // (producer lane, weight tile) pairs per step

// Per producer lane and weight tile, the scale record copied with the codes: fp32 absmax pair / awq word pair
// (rows g, g + 8) in 8 bytes; nested: the 4-byte word holding the two code bytes, then the two rows' (nested
// absmax, offset) at +8 and +16.
constexpr int scale_record_bytes(Q4ScaleMode mode) { return mode == Q4ScaleMode::kAbsmaxNested ? 24 : 8; }
constexpr int packed_step_bytes(Q4ScaleMode mode) { return kCodesBytes + kScaleRecords * scale_record_bytes(mode); }
constexpr int tables_bytes = (16 + 256) * 4;
constexpr int dynamic_smem_bytes(Q4ScaleMode mode) {
  return 1024 /* alignment slack */ + kStages * kStageBytes + kPackedSteps * packed_step_bytes(mode) + tables_bytes +
         2 * kStages * 8;
}

struct Smem {
  uint8_t* stages;
  uint8_t* packed;
  float* codebook;
  float* nested_code;
  uint64_t* full;
  uint64_t* empty;
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
  return s;
}

struct BlockCoords {
  int m0;           // first row of x / y
  int64_t tile0;    // first 16-row weight tile
  int k_steps;      // K / 64
};

// ---- producer -------------------------------------------------------------------------------------------------
// PW producer warps (4 or 8): warp pw converts weight tiles pw * (8 / PW) .. + 8 / PW.
template <typename Act, Q4ScaleMode MODE, int PW>
struct Producer {
  static constexpr int kThreads = 32 * PW, kTilesPerWarp = kTilesPerBlock / PW;
  const Q4TileWeights& w;
  const Act* x;
  int64_t ldx;
  int M;
  BlockCoords bc;
  const Smem& s;
  int tid, lane, warp, g, t;
  int64_t n_tiles, units;

  __device__ Producer(const Q4TileWeights& w_, const Act* x_, int64_t ldx_, int M_, BlockCoords bc_, const Smem& s_)
      : w(w_), x(x_), ldx(ldx_), M(M_), bc(bc_), s(s_) {
    tid = threadIdx.x;
    lane = tid & 31;
    warp = tid >> 5;
    g = lane >> 2;
    t = lane & 3;
    n_tiles = (w.N + 15) / 16;
    units = w.K >> (6 + w.unit_shift);
  }

  // x[m0 + r, 64 step + 8c ..] -> A stage, chunk (r, c): this thread takes r = tid / 8 + (kThreads / 8) i,
  // c = tid % 8, so a warp reads four whole 128-byte rows. The barrier arrival fires once these copies landed.
  __device__ __forceinline__ void issue_a(int step) {
    uint8_t* dst = s.stages + (step % kStages) * kStageBytes;
    const int c = tid & 7;
#pragma unroll
    for (int i = 0; i < kBM * 8 / kThreads; ++i) {
      const int r = (tid >> 3) + (kThreads / 8) * i, m = bc.m0 + r;
      const Act* src = m < M ? x + static_cast<int64_t>(m) * ldx + step * kBK + c * 8 : x;
      sm90::cp_async16(dst + sm90::swizzled_offset(r, c), src, m < M ? 16u : 0u);
    }
    sm90::mbar_arrive_on_cp_async(&s.full[step % kStages]);
  }

  __device__ __forceinline__ uint8_t* record(uint8_t* slot, int jj) const {
    return slot + kCodesBytes + (tid * kTilesPerWarp + jj) * scale_record_bytes(MODE);
  }

  __device__ __forceinline__ void issue_packed(int step) {
    uint8_t* slot = s.packed + (step % kPackedSteps) * packed_step_bytes(MODE);
    const int64_t unit = step >> w.unit_shift;
#pragma unroll
    for (int jj = 0; jj < kTilesPerWarp; ++jj) {
      const int j = kTilesPerWarp * warp + jj;
      const int64_t tile = bc.tile0 + j;
      if (tile >= n_tiles) continue;
      sm90::cp_async16(slot + j * 512 + lane * 16, w.tiles + ((tile * bc.k_steps + step) * 32 + lane) * 16);
      uint8_t* rec = record(slot, jj);
      const int64_t sidx = ((tile * units + unit) * 8 + g) * 2;  // [tile][unit][g][h], h = 0
      if constexpr (MODE == Q4ScaleMode::kAbsmaxF32) {
        sm90::cp_async8(rec, static_cast<const float*>(w.scales) + sidx);
      } else if constexpr (MODE == Q4ScaleMode::kAffine) {
        sm90::cp_async8(rec, static_cast<const uint32_t*>(w.scales) + sidx);
      } else {
        sm90::cp_async4(rec, static_cast<const uint8_t*>(w.scales) + (sidx & ~int64_t{3}));
        // Rows past N (tile padding) have no nested entry: any in-range one serves, their outputs are dropped.
        const int64_t n = tile * 16 + g, last = w.N - 1;
        sm90::cp_async8(rec + 8, w.nested + ((min(n, last) * units + unit) >> 8));
        sm90::cp_async8(rec + 16, w.nested + ((min(n + 8, last) * units + unit) >> 8));
      }
    }
  }

  // The packed step -> 16-bit B stage. Same arithmetic as q4_tile_dequant_kernel (kernels/q4_dequant.cu).
  __device__ __forceinline__ void convert(int step) {
    uint8_t* slot = s.packed + (step % kPackedSteps) * packed_step_bytes(MODE);
    uint8_t* b = s.stages + (step % kStages) * kStageBytes + kOperandBytes;
#pragma unroll
    for (int jj = 0; jj < kTilesPerWarp; ++jj) {
      const int j = kTilesPerWarp * warp + jj;
      uint4 codes = make_uint4(0, 0, 0, 0);
      float scale[2] = {0.f, 0.f}, zero[2] = {0.f, 0.f};
      if (bc.tile0 + j < n_tiles) {
        codes = *reinterpret_cast<const uint4*>(slot + j * 512 + lane * 16);
        const uint8_t* rec = record(slot, jj);
        if constexpr (MODE == Q4ScaleMode::kAbsmaxF32) {
          const float2 v = *reinterpret_cast<const float2*>(rec);
          scale[0] = v.x;
          scale[1] = v.y;
        } else if constexpr (MODE == Q4ScaleMode::kAffine) {
          const uint2 v = *reinterpret_cast<const uint2*>(rec);
          scale[0] = q4::affine_scale(v.x);
          zero[0] = q4::affine_zero(v.x);
          scale[1] = q4::affine_scale(v.y);
          zero[1] = q4::affine_zero(v.y);
        } else {
          const uint32_t word = *reinterpret_cast<const uint32_t*>(rec);
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const uint32_t code = (word >> (8 * (2 * (g & 1) + h))) & 0xFFu;
            scale[h] = q4::nested_absmax(s.nested_code[code], *reinterpret_cast<const float2*>(rec + 8 + 8 * h));
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
  }

  // Step k: wait for its packed data, convert it, publish the stage; then claim the stage that step
  // k + kStages - 2 will use (its previous user, step k - 2, was released while this thread converted k - 1 and
  // k: waiting for step k - 1 instead would put a consumer round trip on every step) for that step's A, and
  // queue the packed data of step k + kPackedSteps - 1. One cp.async group per step keeps the wait count fixed.
  __device__ void run() {
    for (int step = 0; step < kStages - 2 && step < bc.k_steps; ++step) issue_a(step);
    for (int step = 0; step < kPackedSteps - 1; ++step) {
      if (step < bc.k_steps) issue_packed(step);
      sm90::cp_async_commit();
    }
    for (int k = 0; k < bc.k_steps; ++k) {
      sm90::cp_async_wait<kPackedSteps - 2>();
      convert(k);
      sm90::fence_proxy_async();
      sm90::mbar_arrive(&s.full[k % kStages]);
      const int next_a = k + kStages - 2;
      if (next_a < bc.k_steps) {
        if (k >= 2) sm90::mbar_wait(&s.empty[(k - 2) % kStages], ((k - 2) / kStages) & 1);
        issue_a(next_a);
      }
      if (k + kPackedSteps - 1 < bc.k_steps) issue_packed(k + kPackedSteps - 1);
      sm90::cp_async_commit();
    }
    sm90::cp_async_wait<0>();
  }
};

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
    sm90::fence_proxy_async();
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

template <typename Act, Q4ScaleMode MODE, int PW>
__global__ void __launch_bounds__(32 * PW + kConsumers, 1)
    q4_gemm_sm90a_kernel(const __grid_constant__ Q4TileWeights w, const Act* __restrict__ x, int64_t ldx,
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
      sm90::mbar_init(&s.full[i], 2 * 32 * PW);
      sm90::mbar_init(&s.empty[i], kConsumers);
    }
  }
  __syncthreads();
  if (threadIdx.x < 32 * PW) {
    Producer<Act, MODE, PW>(w, x, ldx, M, bc, s).run();
  } else {
    consume<Act, PW>(s, bc, M, w.N, bias, y, ldy, pair_stores);
  }
#endif
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
  kernel<<<static_cast<unsigned>(blocks), 32 * PW + kConsumers, smem, stream>>>(
      w, static_cast<const Act*>(x), ldx, static_cast<const Act*>(bias), static_cast<Act*>(y), ldy,
      static_cast<int>(M), ldy % 2 == 0 && reinterpret_cast<uintptr_t>(y) % 4 == 0);
  QB_CUDA_CHECK_LAUNCH();
}

// QB_Q4_WGMMA_PRODUCERS=8: eight producer warps instead of four (an A/B of the conversion's latency hiding).
template <typename Act, Q4ScaleMode MODE>
void launch(const Q4TileWeights& w, const void* x, int64_t ldx, const void* bias, void* y, int64_t ldy, int64_t M,
            cudaStream_t stream) {
  static const int producers = [] {
    const char* v = std::getenv("QB_Q4_WGMMA_PRODUCERS");
    return v != nullptr && std::strcmp(v, "8") == 0 ? 8 : 4;
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

bool q4_tile_gemm_wgmma_supported(DType dtype, const Q4TileWeights& w, const void* x, int64_t ldx, const void* y,
                                  int64_t ldy, int64_t M) {
  // QB_Q4_WGMMA=0 keeps the dequantize + cuBLAS path (the A/B switch of the benchmarks).
  static const bool enabled = [] {
    const char* v = std::getenv("QB_Q4_WGMMA");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return enabled && compute_capability() == 90 && (dtype == DType::kF16 || dtype == DType::kBF16) &&
         w.tiles != nullptr && w.K > 0 && w.K % kBK == 0 && w.N > 0 && M > 0 && M <= INT_MAX - kBM &&
         aligned(x, 16) && ldx % 8 == 0 && ldx >= w.K && aligned(y, 2) && ldy >= w.N &&
         max_shared_per_block_optin() >= dynamic_smem_bytes(w.mode);
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
