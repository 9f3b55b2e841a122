// INT8 prefill (large M): y[M, N] = x[M, K] W^T (+ bias) with W = q * scale held as int8 on the device.
// Two variants, measured in kernels/NOTES-int8.md:
//  - chunk_k <= 0 (kInt8PrefillChunkK, the fastest): all of W dequantized into a 16-bit scratch
//    [N, round_up(K, 16)] with the scales folded in (one rounding, as bitsandbytes does), then one
//    cuBLAS GEMM that writes y directly (the bias pre-filled into y, beta = 1).
//  - chunk_k > 0: K in chunks of chunk_k through a reused [N, chunk_k] scratch (the same address each
//    chunk, so it stays in the 50 MB L2), cuBLAS into an fp32 accumulator [M, N] (beta = 1 after the
//    first chunk), then an epilogue applying the per-channel scale (q stays exact) and the bias.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "quantbench/kernels/int8_gemv.h"

namespace qb::kernels {

// The variant the measurements chose (kernels/NOTES-int8.md): whole W, scales folded, direct output.
constexpr int64_t kInt8PrefillChunkK = 0;

// Scratch the prefill needs: the dequantized weights [N, round_up(K, 16)] (chunk_k <= 0), or the
// dequantized chunk [N, chunk] and the fp32 accumulator [M, N].
size_t int8_prefill_workspace_bytes(int64_t M, int64_t N, int64_t K, int64_t chunk_k);

// x [M, ldx] (ldx >= K, x 16-byte aligned, K % 8 == 0), bias [N] or null, y [M, ldy]; all in `dtype`.
// `handle` must be usable on `stream` (it is set to it). chunk_k > 0 is rounded up to a multiple of 64.
void int8_prefill_matmul(cublasHandle_t handle, HalfType dtype, const void* x, int64_t ldx, const Int8Weights& w,
                         const void* bias, void* y, int64_t ldy, int64_t M, void* workspace, size_t workspace_bytes,
                         int64_t chunk_k, cudaStream_t stream);

// Large-M path on Hopper (sm_90a, kernels/int8_gemm_sm90a.cu): one kernel, each 64-column step of W converted to
// 16 bits inside the GEMM main loop (wgmma, fp32 accumulation): shared-B with int8_dequantize's values bit for bit,
// register-A with the exact integers and the per-channel scale applied to the fp32 sums. Supported: compute
// capability 9.0, per-channel scales, K % 8 == 0, q 16-byte aligned with ldq % 16 == 0, x 16-byte aligned with
// ldx % 8 == 0, any ldy. No host sync; a workspace only for split-K. The
// shared-B form measured slower than the two-pass path on the H100 (NOTES-int8.md); the int8 layers take the form
// int8_prefill_fused_form names.
// Two forms over the same step: kSharedB (W converted into a shared-memory B stage) and kRegisterA (W converted
// straight into wgmma's A registers, kernels/fused_gemm_rs_sm90a.cuh; QB_INT8_WGMMA=rs).
enum class Int8WgmmaForm { kSharedB, kRegisterA };
// The fused form (and split-K count) int8 prefill takes at M rows, or none (dequantize + cuBLAS): unset or auto,
// the register-A cut fused_prefill_cut names (fused_prefill_policy.h); QB_INT8_WGMMA=1 the shared-B form and rs the
// register-A form on every call (no split); 0 (any other value) never.
bool int8_prefill_fused_form(const Int8Weights& w, int64_t M, Int8WgmmaForm* form, int* splits);
// The weights' half of int8_gemm_wgmma_supported (device, per-channel scales, layout): whether a layer can take the
// fused kernel at all, before any activation exists (Linear::prepare).
bool int8_gemm_wgmma_weights_supported(const Int8Weights& w, Int8WgmmaForm form);
bool int8_gemm_wgmma_supported(const void* x, int64_t ldx, const Int8Weights& w, const void* y, int64_t ldy,
                               int64_t M, Int8WgmmaForm form);
// Split-K (register-A only): `splits` K ranges per output tile, fp32 partial tiles in `workspace`
// (int8_gemm_wgmma_workspace_bytes, 16-byte aligned; 0 bytes for splits = 1).
size_t int8_gemm_wgmma_workspace_bytes(int64_t M, int64_t N, Int8WgmmaForm form, int splits);
void int8_gemm_wgmma(HalfType dtype, const void* x, int64_t ldx, const Int8Weights& w, const void* bias, void* y,
                     int64_t ldy, int64_t M, cudaStream_t stream, Int8WgmmaForm form, int splits = 1,
                     void* workspace = nullptr, size_t workspace_bytes = 0);

// The dequantization alone, for tests, the generic path and a weight prepared ahead (Linear::prepare): out [N, ld_out]
// (ld_out >= K) in `dtype`, out[n, k] = q[n, k] * scale (rounded once to 16 bits).
void int8_dequantize(HalfType dtype, const Int8Weights& w, void* out, int64_t ld_out, cudaStream_t stream);

}  // namespace qb::kernels
