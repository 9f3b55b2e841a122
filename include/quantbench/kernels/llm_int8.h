// LLM.int8() (bitsandbytes' MatMul8bitLt, inference path) on the device, graph-capturable: no host
// synchronisation, no data-dependent shapes.
//   Activations: a column k of x [M, K] is an outlier column when any |fp16(x[m, k])| >= threshold
//   (threshold > 0). Per row, SCA[m] = max |fp16(x[m, k])| over the elements below the threshold;
//   CA[m, k] = round-half-even(fp16(x[m, k]) * (127 * (1 / SCA[m]))), zero in outlier columns.
//   Weights: CB [N, K] int8 and SCB [N] fp32 (the absmax of the fp16 row), w ~= CB * SCB / 127.
//   y = (CA CB^T) * SCA SCB / 127^2 + x[:, outliers] (CB[:, outliers] * SCB / 127)^T + bias.
// Decode (M <= kGemvMaxM): one single-block kernel quantizes x, then one GEMV streams CB once,
// accumulating the int8 part in int32 (mma.sync s8) and the outlier part in fp32 (16-bit mma) only
// for the 64-wide k steps that hold an outlier column. At M = 1 (K <= 20480) there is no quantizing
// kernel: every GEMV block quantizes the row itself into shared memory, bit for bit the same, and the
// workspace is not written.
// Prefill: the same statistics by a multi-block kernel; x is rewritten as z = CA * SCA / 127 (or x
// itself in outlier columns) so that y = z (CB * SCB/127)^T, which int8_prefill_matmul computes.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "quantbench/kernels/int8_gemv.h"

namespace qb::kernels {

// bitsandbytes' constants: 1/127 (int8_vectorwise_dequant) and 1/127^2 (int8_mm_dequant).
constexpr float kBnbInvScale = 7.874015718698502e-3f;
constexpr float kBnbInvScaleSquared = 6.200124e-05f;

// The quantized activations, laid out in a caller-provided workspace.
struct LlmInt8Activations {
  int8_t* ca = nullptr;            // [M, ld] with ld = round_up(K, 32); zero beyond K
  int64_t ld = 0;
  float* sca = nullptr;            // [M]
  uint32_t* outlier_mask = nullptr;  // [ld / 32]; bit k % 32 of word k / 32 set: column k is an outlier
};

size_t llm_int8_activation_bytes(int64_t M, int64_t K);
LlmInt8Activations llm_int8_activation_layout(void* workspace, int64_t M, int64_t K);

// Quantizes x [M, ldx] (K % 8 == 0, ldx % 8 == 0, 16-byte aligned) into `out`. threshold <= 0
// disables the outlier split (every column goes through int8), as in bitsandbytes. Launched with
// programmatic dependent launch at decode sizes: the kernel launched next on the stream may start
// before this one has read x, so if it is launched with PDL too it must read nothing but constants
// before its own griddepcontrol.wait (kernels/pdl.cuh, rule 3); a plain launch is ordered as usual.
void llm_int8_quantize_activations(HalfType dtype, const void* x, int64_t ldx, int64_t M, int64_t K, float threshold,
                                   const LlmInt8Activations& out, cudaStream_t stream);

// Decode: quantize + fused GEMV. w.q = CB padded to round_up(K, 16), w.scales = SCB (per channel,
// scale_multiplier ignored). workspace >= llm_int8_activation_bytes(M, K), 256-byte aligned.
void llm_int8_gemv(HalfType dtype, const void* x, int64_t ldx, const Int8Weights& w, const void* bias, void* y,
                   int64_t ldy, int64_t M, float threshold, void* workspace, size_t workspace_bytes,
                   cudaStream_t stream);

// Prefill (any M): statistics, z, then int8_prefill_matmul with w.scales = SCB and multiplier 1/127.
size_t llm_int8_prefill_workspace_bytes(int64_t M, int64_t N, int64_t K, int64_t chunk_k);
void llm_int8_prefill(cublasHandle_t handle, HalfType dtype, const void* x, int64_t ldx, const Int8Weights& w,
                      const void* bias, void* y, int64_t ldy, int64_t M, float threshold, void* workspace,
                      size_t workspace_bytes, int64_t chunk_k, cudaStream_t stream);

}  // namespace qb::kernels
