// INT8 weight-only decode GEMV.
//
// Contract: y[m, n] = sum_k x[m, k] q[n, k] s[n(, k/gs)] (+ bias[n]) for m < M <= 32, n < N.
//   x [M, ldx] fp16/bf16 (K % 8 == 0, ldx % 8 == 0, 16-byte aligned); q [N, ldq] int8, zero padded
//   from K to round_up(K, 16), ldq % 16 == 0, 16-byte aligned; s fp32 per channel [N] or per group
//   [N, groups] with gs % 64 == 0; bias [N] and y [M, ldy] in x's dtype.
//   int8 -> fp16/bf16 is exact; fp32 accumulation; per-channel scale applied once to the fp32 sum,
//   per-group scale applied to each 64-wide partial sum. Tiling: gemv_mma_tile.cuh.
#include <type_traits>

#include "gemv_mma_tile.cuh"
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/int8_gemv.h"

namespace qb::kernels {
namespace {

using gemv::GemvParams;
using gemv::WeightKind;

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

// Block shape (kernels/NOTES-int8.md has the sweeps): up to M = 8 one 8-token tile per warp, 16
// warps per block splitting K, two 16-byte loads per row per lane per round, software-pipelined where the
// grid fits on the chip and K is long (gemv_pipeline_pays); where K is at most 56 steps of 64 and the grid fits,
// 8 warps taking 7 steps each in one round (gemv_one_round_fits); 9..16 tokens one row tile and four loads (two row
// tiles on very wide N); 17..32 two row tiles. GATED (M <= 8 only): the same forms with paired rows (gate row and up
// row in one 16-row tile: gemv_mma_tile.cuh), so the gated grid is the ungated one and each sum is its bits.
constexpr auto kInt8 = WeightKind::kInt8;
constexpr int kWarps = 16, kUnroll = 2;       // the M <= 8 default form: rounds of 16 warps x 2 steps
constexpr int kOneWarps = 8, kOneUnroll = 7;  // the M <= 8 one-round form

// Whether M <= 8 rows over N x k_weights take the one-round form, every weight load issued before the PDL wait.
template <typename T, bool PER_GROUP>
bool takes_one_round(int64_t M, int64_t N, int64_t k_weights) {
  return M <= 8 && gemv::gemv_one_round_fits<kInt8, T, 1, 1, kOneWarps, kOneUnroll, PER_GROUP>((N + 15) / 16, k_weights,
                                                                                              kWarps * kUnroll);
}

template <typename T, bool PER_GROUP, bool GATED>
void launch_typed(const GemvParams& p, cudaStream_t stream) {
  if (p.M <= 8) {
    if (takes_one_round<T, PER_GROUP>(p.M, p.N, p.k_weights)) {
      gemv::launch_gemv_mma<kInt8, T, 1, 1, kOneWarps, kOneUnroll, PER_GROUP, GATED>(p, stream);
    } else if (gemv::gemv_pipeline_pays<kInt8, T, 1, 1, kWarps, kUnroll, PER_GROUP>((p.N + 15) / 16, p.k_weights)) {
      gemv::launch_gemv_mma<kInt8, T, 1, 1, kWarps, kUnroll, PER_GROUP, GATED, true>(p, stream);
    } else {
      gemv::launch_gemv_mma<kInt8, T, 1, 1, kWarps, kUnroll, PER_GROUP, GATED>(p, stream);
    }
  } else if constexpr (GATED) {
    fail(ErrorKind::kInternal, "int8_gemv: the gated epilogue takes at most 8 rows (checked by the caller)");
  } else if (p.M <= 16) {
    if (p.N < 16384) {
      gemv::launch_gemv_mma<kInt8, T, 2, 1, 8, 4, PER_GROUP>(p, stream);
    } else {
      gemv::launch_gemv_mma<kInt8, T, 2, 2, 8, 2, PER_GROUP>(p, stream);
    }
  } else {
    gemv::launch_gemv_mma<kInt8, T, 4, 2, 8, 2, PER_GROUP>(p, stream);
  }
}

}  // namespace

bool int8_gemv_loads_weight_before_wait(HalfType dtype, const Int8Weights& w, int64_t M) {
  const int64_t k_weights = int8_padded_k(w.K);
  const bool per_group = w.group_size > 0;
  if (dtype == HalfType::kF16) {
    return per_group ? takes_one_round<__half, true>(M, w.N, k_weights) : takes_one_round<__half, false>(M, w.N, k_weights);
  }
  return per_group ? takes_one_round<__nv_bfloat16, true>(M, w.N, k_weights)
                   : takes_one_round<__nv_bfloat16, false>(M, w.N, k_weights);
}

bool int8_gemv_supported(const void* x, int64_t ldx, const Int8Weights& w, int64_t M) {
  return M >= 1 && M <= kGemvMaxM && w.K % 8 == 0 && ldx % 8 == 0 && aligned16(x) && aligned16(w.q) &&
         w.ldq % 16 == 0 && (w.group_size == 0 || w.group_size % 64 == 0) && w.scale_multiplier == 1.0f;
}

void int8_gemv(HalfType dtype, const void* x, int64_t ldx, const Int8Weights& w, const void* bias, void* y,
               int64_t ldy, int64_t M, cudaStream_t stream, const GatedEpilogue& gated) {
  QB_CHECK(M >= 1 && M <= kGemvMaxM, kInvalidInput, "int8_gemv: M = {} outside 1..{}", M, kGemvMaxM);
  QB_CHECK(w.N >= 1 && w.N < (int64_t{1} << 31) && w.K >= 1 && w.K < (int64_t{1} << 30), kInvalidInput,
           "int8_gemv: N = {} and K = {} out of range", w.N, w.K);
  QB_CHECK(w.K % 8 == 0, kInvalidInput, "int8_gemv: K = {} is not a multiple of 8 (pad x first)", w.K);
  QB_CHECK(ldx >= w.K && ldx % 8 == 0 && ldy >= (gated.on ? w.N / 2 : w.N), kInvalidInput,
           "int8_gemv: ldx = {} must be >= K = {} and a multiple of 8; ldy = {} >= the {} outputs", ldx, w.K, ldy,
           gated.on ? w.N / 2 : w.N);
  QB_CHECK(!gated.on || (M <= kInt8GemvGatedMaxM && gated_epilogue_fits(w.N)), kInvalidInput,
           "int8_gemv: the gated epilogue needs M <= {} (got {}) and N a multiple of 32 (got {})", kInt8GemvGatedMaxM,
           M, w.N);
  QB_CHECK(w.ldq >= int8_padded_k(w.K) && w.ldq % 16 == 0, kInvalidInput,
           "int8_gemv: ldq = {} must be a multiple of 16 and >= round_up(K = {}, 16)", w.ldq, w.K);
  QB_CHECK(aligned16(x) && aligned16(w.q), kInvalidInput, "int8_gemv: x and q must be 16-byte aligned");
  QB_CHECK(w.group_size == 0 || (w.group_size % 64 == 0 && w.groups * w.group_size >= w.K), kInvalidInput,
           "int8_gemv: group size {} must be a multiple of 64 with groups = {} covering K = {}", w.group_size,
           w.groups, w.K);
  QB_CHECK(w.scale_multiplier == 1.0f, kInvalidInput, "int8_gemv: scale_multiplier must be 1 (fold it into scales)");
  GemvParams p;
  p.x = x;
  p.ldx = ldx;
  p.w = w.q;
  p.ldw = w.ldq;
  p.scales = w.scales;
  p.scale_ld = w.groups;
  p.group_steps = w.group_size > 0 ? static_cast<int>(w.group_size / 64) : 0;
  p.bias = bias;
  p.y = y;
  p.ldy = ldy;
  p.M = static_cast<int>(M);
  p.N = static_cast<int>(w.N);
  p.K = static_cast<int>(w.K);
  p.k_weights = static_cast<int>(int8_padded_k(w.K));
  p.act = gated.act;
  const bool per_group = w.group_size > 0;
  auto launch = [&](auto per_group_tag, auto gated_tag) {
    constexpr bool kPerGroup = decltype(per_group_tag)::value, kGated = decltype(gated_tag)::value;
    if (dtype == HalfType::kF16) {
      launch_typed<__half, kPerGroup, kGated>(p, stream);
    } else {
      launch_typed<__nv_bfloat16, kPerGroup, kGated>(p, stream);
    }
  };
  using On = std::true_type;
  using Off = std::false_type;
  if (gated.on) {
    per_group ? launch(On{}, On{}) : launch(Off{}, On{});
  } else {
    per_group ? launch(On{}, Off{}) : launch(Off{}, Off{});
  }
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace qb::kernels
