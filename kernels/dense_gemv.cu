// Dense decode GEMV (fp16 / bf16 weights and activations).
//
// Contract: y[m, n] = sum_k x[m, k] W[n, k] (+ bias[n]) for m < M <= 32, n < N.
//   x [M, ldx], W [N, ldw] row-major (nn.Linear orientation), bias [N] or null, y [M, ldy]; one dtype.
//   K % 8 == 0, ldx % 8 == 0, ldw % 8 == 0, x and W 16-byte aligned (16-byte loads per lane).
//   fp32 accumulation (mma.sync m16n8k16), one rounding of the output. Tiling: gemv_mma_tile.cuh.
#include "gemv_mma_tile.cuh"
#include "quantbench/core/env_switch.h"
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/dense_gemv.h"

namespace qb::kernels {
namespace {

using gemv::GemvParams;
using gemv::WeightKind;

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

// Block shape (kernels/NOTES-int8.md has the sweeps): one 8-token tile per warp up to M = 8, 16
// warps per block splitting K, two 16-byte loads per row per lane per round (four on very wide N,
// where the grid has many waves). Above 8 tokens two row tiles per warp, so that each activation
// load feeds 32 rows.
// Small grids (N / 16 <= 160 blocks, about one per SM: TinyLlama's and GPT-2's layers) are latency-bound:
// there the unroll is chosen so that a warp's whole share of K is in flight in one or two rounds
// (QB_BENCH_SHAPES=small sweep, H100: TinyLlama o 5.07 -> 4.03 us, down 12.0 -> 9.9 us, GPT-2 c_proj 4.74 ->
// 3.21 us; Qwen2-7B's 224+-block layers keep u2).
template <typename T>
void launch_typed(const GemvParams& p, bool gated, cudaStream_t stream) {
  constexpr auto kDense = WeightKind::kHalf16;
  if (gated) {
    // Two row tiles per block (gate, up) in 8-warp blocks: four fit per SM, so TinyLlama's 352 gated blocks run in
    // one wave (16-warp blocks, two per SM: 1.33 waves; fp16 976.6-977.1 vs 945.8-945.9 tok/s in one call, 932.5-932.8
    // ungated). QB_DENSE_GATED_WARPS=16 for the A/B.
    static const int warps = env_int("QB_DENSE_GATED_WARPS", 8, 1);
    if (warps == 16) {
      gemv::launch_gemv_mma<kDense, T, 1, 2, 16, 2, false, true>(p, stream);
    } else {
      gemv::launch_gemv_mma<kDense, T, 1, 2, 8, 2, false, true>(p, stream);
    }
  } else if (p.M <= 8) {
    const int64_t blocks = (p.N + 15) / 16;
    const int64_t steps_per_warp = ((p.K + 31) / 32 + 15) / 16;  // 32 k per warp step, 16 warps
    if (blocks <= 160 && steps_per_warp >= 5 && steps_per_warp <= 8) {
      gemv::launch_gemv_mma<kDense, T, 1, 1, 16, 8, false>(p, stream);
    } else if (blocks <= 160 && steps_per_warp >= 3) {
      gemv::launch_gemv_mma<kDense, T, 1, 1, 16, 4, false>(p, stream);
    } else if (p.N < 16384) {
      if (gemv::gemv_pipeline_pays<kDense, T, 1, 1, 16, 2, false>(blocks, p.k_weights)) {
        gemv::launch_gemv_mma<kDense, T, 1, 1, 16, 2, false, false, true>(p, stream);
      } else {
        gemv::launch_gemv_mma<kDense, T, 1, 1, 16, 2, false>(p, stream);
      }
    } else {
      gemv::launch_gemv_mma<kDense, T, 1, 1, 16, 4, false>(p, stream);
    }
  } else if (p.M <= 16) {
    gemv::launch_gemv_mma<kDense, T, 2, 2, 8, 2, false>(p, stream);
  } else {
    gemv::launch_gemv_mma<kDense, T, 4, 2, 8, 4, false>(p, stream);
  }
}

}  // namespace

bool dense_gemv_supported(const void* x, int64_t ldx, const void* w, int64_t ldw, int64_t M, int64_t K) {
  return M >= 1 && M <= kGemvMaxM && K % 8 == 0 && ldx % 8 == 0 && ldw % 8 == 0 && aligned16(x) && aligned16(w);
}

void dense_gemv(HalfType dtype, const void* x, int64_t ldx, const void* w, int64_t ldw, const void* bias, void* y,
                int64_t ldy, int64_t M, int64_t N, int64_t K, cudaStream_t stream, const GatedEpilogue& gated) {
  QB_CHECK(M >= 1 && M <= kGemvMaxM, kInvalidInput, "dense_gemv: M = {} outside 1..{}", M, kGemvMaxM);
  QB_CHECK(N >= 1 && N < (int64_t{1} << 31) && K >= 1 && K < (int64_t{1} << 31), kInvalidInput,
           "dense_gemv: N = {} and K = {} must be in 1..2^31-1", N, K);
  QB_CHECK(K % 8 == 0, kInvalidInput, "dense_gemv: K = {} is not a multiple of 8 (16-byte loads)", K);
  QB_CHECK(ldx >= K && ldx % 8 == 0 && ldw >= K && ldw % 8 == 0 && ldy >= (gated.on ? N / 2 : N), kInvalidInput,
           "dense_gemv: strides ldx = {}, ldw = {} must be >= K = {} and multiples of 8; ldy = {} >= the output "
           "width (N = {})",
           ldx, ldw, K, ldy, N);
  QB_CHECK(aligned16(x) && aligned16(w), kInvalidInput, "dense_gemv: x and W must be 16-byte aligned");
  QB_CHECK(!gated.on || (M <= kGemvGatedMaxM && gated_epilogue_fits(N)), kInvalidInput,
           "dense_gemv: the gated epilogue needs M <= {} (got {}) and N a multiple of 32 (got {})", kGemvGatedMaxM, M,
           N);
  GemvParams p;
  p.x = x;
  p.ldx = ldx;
  p.w = w;
  p.ldw = ldw;
  p.bias = bias;
  p.y = y;
  p.ldy = ldy;
  p.M = static_cast<int>(M);
  p.N = static_cast<int>(N);
  p.K = static_cast<int>(K);
  p.k_weights = static_cast<int>(K);
  p.act = gated.act;
  if (dtype == HalfType::kF16) {
    launch_typed<__half>(p, gated.on, stream);
  } else {
    launch_typed<__nv_bfloat16>(p, gated.on, stream);
  }
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace qb::kernels
