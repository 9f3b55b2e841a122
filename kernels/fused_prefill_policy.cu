// The register-A prefill kernel's cut and the fused / two-pass choice (include/quantbench/kernels/
// fused_prefill_policy.h). Host code only.
#include "quantbench/kernels/fused_prefill_policy.h"

#include <algorithm>

#include "quantbench/core/env_switch.h"
#include "quantbench/kernels/device_limits.h"

namespace qb::kernels {

namespace {
// The model's constants, fitted to bench_q4 --prefill and bench_int8 on the H100 (Qwen2-7B shapes at M = 128, 512;
// NOTES-q4.md "Split-K"). One block's 64-column step costs c_lo .. c_hi us, rising with the fraction of SMs the grid
// occupies (x's tiles from L2 compete): 128 tokens 0.59 .. 0.69 (down at 28 and 112 blocks, gate_up at 296 and
// 1184), 256 tokens 0.58 .. 0.92 (down at 56 and 112 blocks, gate_up at 592). Waves round up. Split-K adds its fp32
// partial tiles written and read back (~2.7 TB/s: gate_up at M = 512 lost 111 us to 2 splits' 310 MB) and ~1.5 us a
// split; a launch ~4 us of pipeline fill and epilogue. Dequantize + cuBLAS: the bf16 GEMM (700 TFLOP/s, or W's
// bytes at 2.5 TB/s where M is small) plus writing the 16-bit W at the source's dequantize rate.
constexpr double kStepLo128 = 0.59, kStepHi128 = 0.69, kStepLo256 = 0.58, kStepHi256 = 0.92;
constexpr double kPartialBytesPerUs = 2.7e6, kSplitUs = 1.5, kLaunchUs = 4.0;
constexpr double kCublasFlopsPerUs = 700e6, kCublasBytesPerUs = 2.5e6, kMargin = 0.9;
constexpr int64_t kRows = 128, kStep = 64, kMaxTokens = 512;
}  // namespace

double fused_prefill_two_pass_us(int64_t M, int64_t N, int64_t K, const FusedSourceCost& cost) {
  const double w16_bytes = 2.0 * static_cast<double>(N) * K;
  const double gemm = std::max(2.0 * static_cast<double>(M) * N * K / kCublasFlopsPerUs, w16_bytes / kCublasBytesPerUs);
  return gemm + w16_bytes / cost.dequant_bytes_per_us;
}

double fused_prefill_us(int64_t M, int64_t N, int64_t K, int sm_count, int splits, const FusedSourceCost& cost) {
  const int tokens = fused_prefill_tokens(M);
  const int64_t steps = (K + kStep - 1) / kStep;
  const int64_t per = (steps + splits - 1) / splits, cut = (steps + per - 1) / per;  // as the launch cuts them
  const int64_t tiles = (N + kRows - 1) / kRows * ((M + tokens - 1) / tokens);
  const int64_t blocks = tiles * cut;
  const double occupied = std::min(1.0, static_cast<double>(blocks) / sm_count);
  const double lo = tokens == 128 ? kStepLo128 : kStepLo256, hi = tokens == 128 ? kStepHi128 : kStepHi256;
  const double step_us = cost.step_factor * (lo + (hi - lo) * occupied);
  const int64_t waves = (blocks + sm_count - 1) / sm_count;
  double us = kLaunchUs + static_cast<double>(waves * per) * step_us;
  if (cut > 1) {
    const double partial_bytes = 2.0 * 4.0 * static_cast<double>(cut * tiles * kRows * tokens);  // written + read
    us += kSplitUs * cut + partial_bytes / kPartialBytesPerUs;
  }
  return us;
}

bool fused_prefill_cut(int64_t M, int64_t N, int64_t K, int sm_count, int max_splits, const FusedSourceCost& cost,
                       FusedPrefillCut* cut) {
  if (sm_count <= 0 || M <= 0 || N <= 0 || K <= 0 || M > kMaxTokens) return false;
  const int64_t steps = (K + kStep - 1) / kStep;
  double best = 0;
  int best_splits = 0;
  for (int64_t s = 1; s <= std::max(1, max_splits) && s <= steps; ++s) {
    const int64_t per = (steps + s - 1) / s;
    if ((steps + per - 1) / per != s) continue;  // the launch would cut fewer: that count was already tried
    const double us = fused_prefill_us(M, N, K, sm_count, static_cast<int>(s), cost);
    if (best_splits == 0 || us < best) {
      best = us;
      best_splits = static_cast<int>(s);
    }
  }
  if (best_splits == 0 || best > kMargin * fused_prefill_two_pass_us(M, N, K, cost)) return false;
  cut->tokens = fused_prefill_tokens(M);
  cut->splits = best_splits;
  return true;
}

bool fused_prefill_device_cut(int64_t M, int64_t N, int64_t K, const FusedSourceCost& cost, FusedPrefillCut* cut) {
  return compute_capability() == 90 && fused_prefill_cut(M, N, K, sm_count(), fused_prefill_max_splits(), cost, cut);
}

int fused_prefill_max_splits() {
  static const int cap = env_int("QB_FUSED_SPLITS", 8, 1);
  return cap;
}

}  // namespace qb::kernels
