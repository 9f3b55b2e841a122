// Which cut of the register-A fused prefill kernel (kernels/fused_gemm_rs_sm90a.cuh) a y[M, N] = x[M, K] W^T
// takes, and whether it should run at all instead of dequantize + cuBLAS. Shared by the 4-bit and int8 layers;
// pure host functions (CPU-tested), no device access.
#pragma once

#include <cstdint>

namespace qb::kernels {

// Tokens per block of the register-A kernel at M tokens: 128 up to M = 128, 256 above (H100: at M = 128 the
// 128-token block took gate_up in 113.6 us against 170.3, at M = 512 the 256-token one in 270.6 against 336.0).
inline int fused_prefill_tokens(int64_t M) { return M <= 128 ? 128 : 256; }

struct FusedPrefillCut {
  int tokens = 128;  // fused_prefill_tokens(M)
  int splits = 1;    // K ranges per output tile (split-K, summed in a fixed order by the tile's last block)
};

// A time model with constants measured on the H100 (kernels/NOTES-q4.md, "Split-K"): the fused kernel costs
// waves x steps-per-split x (time of one 64-column step of a block at full occupancy), plus a little per extra
// split; dequantize + cuBLAS costs the bf16 GEMM plus writing the 16-bit W. True (and *cut set) where the fused
// kernel's best cut is expected at least 10% faster, M <= 512 (larger M measured a tie: two-pass keeps it).
// max_splits caps the split count (1: no split-K).
bool fused_prefill_cut(int64_t M, int64_t N, int64_t K, int sm_count, int max_splits, FusedPrefillCut* cut);

// The split cap the environment names: QB_FUSED_SPLITS=n (n >= 1), else 8.
int fused_prefill_max_splits();

}  // namespace qb::kernels
