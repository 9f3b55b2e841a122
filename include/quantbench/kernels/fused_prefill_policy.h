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

// What differs between weight sources in the model: a block step's cost relative to the 4-bit source's, and how
// fast the two-pass path's dequantize writes the 16-bit W (bytes per us).
struct FusedSourceCost {
  double step_factor;
  double dequant_bytes_per_us;
};
// H100 (bench_q4 --prefill, bench_int8): int8's step moves twice the weight bytes but, with the exact integer
// conversion (session 30), costs what the 4-bit one does (gate_up at M = 512: 258.0 us against nf4's 251-256; 289.0
// with the float conversion before); its dequantize is a widening copy (down: 70 us for 136 MB against nf4's ~94).
inline constexpr FusedSourceCost kQ4FusedCost{1.0, 1.6e6};
inline constexpr FusedSourceCost kInt8FusedCost{1.0, 1.8e6};

// A time model with constants fitted to the H100 (kernels/fused_prefill_policy.cu; NOTES-q4.md "Split-K"): the fused
// kernel's time for each split count up to max_splits against dequantize + cuBLAS. True (and *cut set) where the
// best cut is expected at least 10% faster, M <= 512 (at M = 2048 two-pass measured faster on every shape).
bool fused_prefill_cut(int64_t M, int64_t N, int64_t K, int sm_count, int max_splits, const FusedSourceCost& cost,
                       FusedPrefillCut* cut);
// The model's two estimates (us), exposed for the benchmarks' tables and the tests.
double fused_prefill_us(int64_t M, int64_t N, int64_t K, int sm_count, int splits, const FusedSourceCost& cost);
double fused_prefill_two_pass_us(int64_t M, int64_t N, int64_t K, const FusedSourceCost& cost);

// fused_prefill_cut on this process's GPU: false unless it has compute capability 9.0 (the kernels are sm_90a);
// its SM count, and the split cap fused_prefill_max_splits names. (Reads the device, unlike the rest.)
bool fused_prefill_device_cut(int64_t M, int64_t N, int64_t K, const FusedSourceCost& cost, FusedPrefillCut* cut);

// The split cap the environment names: QB_FUSED_SPLITS=n (n >= 1), else 8.
int fused_prefill_max_splits();

}  // namespace qb::kernels
