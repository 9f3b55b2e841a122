// The register-A prefill kernel's cut and the fused / two-pass choice (include/quantbench/kernels/
// fused_prefill_policy.h). Host code only.
#include "quantbench/kernels/fused_prefill_policy.h"

#include <algorithm>
#include <cstdlib>

namespace qb::kernels {

namespace {
// H100 figures behind the model (NOTES-q4.md): one block's 64-column step at full occupancy, in us, for 128 and
// 256 tokens (bench_q4 --prefill, gate_up nf4: 336.0 us / (9 waves x 56 steps), 270.6 us / (4.5 waves x 56));
// cuBLAS bf16 at ~700 TFLOP/s; the two-pass path's dequantize writing W's 16 bits at ~1.6 TB/s (qkv 17.5 us, down
// 88 us); split-K's fp32 partial tiles written and read back as if at DRAM speed (~3 TB/s: many do not fit in L2),
// plus ~1 us a split for the tile's last block summing them.
constexpr double kStepUs128 = 0.68, kStepUs256 = 1.07, kCublasFlopsPerUs = 700e6, kDequantBytesPerUs = 1.6e6,
                 kPartialBytesPerUs = 3e6, kSplitUs = 1.0, kMargin = 0.9;
constexpr int64_t kRows = 128, kStep = 64, kMaxTokens = 512;
}  // namespace

bool fused_prefill_cut(int64_t M, int64_t N, int64_t K, int sm_count, int max_splits, FusedPrefillCut* cut) {
  if (sm_count <= 0 || M <= 0 || N <= 0 || K <= 0 || M > kMaxTokens) return false;
  const int tokens = fused_prefill_tokens(M);
  const double step_us = tokens == 128 ? kStepUs128 : kStepUs256;
  const int64_t steps = (K + kStep - 1) / kStep;
  const int64_t tiles = (N + kRows - 1) / kRows * ((M + tokens - 1) / tokens);
  double best = 0;
  int best_splits = 0;
  for (int64_t s = 1; s <= std::max(1, max_splits) && s <= steps; ++s) {
    const int64_t per = (steps + s - 1) / s, splits = (steps + per - 1) / per;  // as the launch cuts them
    if (splits != s) continue;
    const int64_t waves = (tiles * splits + sm_count - 1) / sm_count;
    const double partial_bytes = 2.0 * 4.0 * static_cast<double>(splits * tiles * kRows * tokens);
    const double us = static_cast<double>(waves * per) * step_us +
                      (splits > 1 ? kSplitUs * splits + partial_bytes / kPartialBytesPerUs : 0.0);
    if (best_splits == 0 || us < best) {
      best = us;
      best_splits = static_cast<int>(splits);
    }
  }
  const double two_pass = 2.0 * static_cast<double>(M) * N * K / kCublasFlopsPerUs + 2.0 * N * K / kDequantBytesPerUs;
  if (best_splits == 0 || best > kMargin * two_pass) return false;
  cut->tokens = tokens;
  cut->splits = best_splits;
  return true;
}

int fused_prefill_max_splits() {
  static const int cap = [] {
    const char* v = std::getenv("QB_FUSED_SPLITS");
    const int n = v != nullptr ? std::atoi(v) : 0;
    return n >= 1 ? n : 8;
  }();
  return cap;
}

}  // namespace qb::kernels
