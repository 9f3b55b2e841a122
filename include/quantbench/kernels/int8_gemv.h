// INT8 weight-only decode GEMV: y[M, N] = x[M, K] (q[N, K] * scale)^T (+ bias[N]), x and y fp16 or
// bf16, M <= kGemvMaxM. Each weight byte is read once (16-byte streaming loads); int8 -> 16-bit
// conversion is exact and the products accumulate in fp32 on tensor cores. Scales: per output
// channel (applied once in the epilogue) or per group of 64*j inputs (applied per group, fp32).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "quantbench/kernels/dense_gemv.h"

namespace qb::kernels {

// The device layout shared by the "int8" and "llm.int8" formats.
//   q       [N, ldq] int8, row-major; columns K .. round_up(K, 16) are zero (ldq >= that, ldq % 16 == 0)
//   scales  fp32: per channel [N] (group_size == 0), or per group [N, groups] with group g covering
//           columns [g*group_size, (g+1)*group_size)
//   w[n, k] = q[n, k] * scales[n (, k / group_size)] * scale_multiplier
// (llm.int8 passes SCB with multiplier 1/127.)
struct Int8Weights {
  const int8_t* q = nullptr;
  int64_t ldq = 0;
  const float* scales = nullptr;
  int64_t group_size = 0;
  int64_t groups = 0;
  float scale_multiplier = 1.0f;
  int64_t N = 0;
  int64_t K = 0;
};

inline int64_t int8_padded_k(int64_t K) { return (K + 15) / 16 * 16; }

// Whether int8_gemv takes these operands: 1 <= M <= kGemvMaxM, K % 8 == 0, ldx % 8 == 0, x and q
// 16-byte aligned, per-group size a multiple of 64, scale_multiplier == 1. (Callers pad x to a
// multiple of 16 when K % 8 != 0, and use the prefill path otherwise.)
bool int8_gemv_supported(const void* x, int64_t ldx, const Int8Weights& w, int64_t M);

// Whether int8_gemv over M rows of these weights issues every weight load before its PDL wait (the one-round form,
// kernels/gemv_mma_tile.cuh): its whole weight can then be in flight beside the kernel before it.
bool int8_gemv_loads_weight_before_wait(HalfType dtype, const Int8Weights& w, int64_t M);

// Largest M with the gated epilogue (gated_epilogue.h): the one-token-tile forms, whose gated grid is the ungated one.
constexpr int64_t kInt8GemvGatedMaxM = 8;

// With gated.on, y [M, ldy >= N / 2] gets act(gate) * up (gated_epilogue.h; M <= kInt8GemvGatedMaxM,
// gated_epilogue_fits(N)), bit for bit the ungated GEMV followed by the activation kernel.
void int8_gemv(HalfType dtype, const void* x, int64_t ldx, const Int8Weights& w, const void* bias, void* y,
               int64_t ldy, int64_t M, cudaStream_t stream, const GatedEpilogue& gated = {});

}  // namespace qb::kernels
