// The GEMM half of the two-pass prefill path that every quantized format shares: the weight is already dequantized
// to a plain matrix (a format's own dequantize pass, or a weight prepared ahead by Linear::prepare), and cuBLAS does
// the rest. One function for every format, so that "prepared ahead" and "dequantize, then multiply" give the same
// bits by construction.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "quantbench/kernels/decode_ops.h"  // DType
#include "quantbench/kernels/dense_gemv.h"  // HalfType

namespace qb::kernels {

// The DType of a 16-bit activation type (the int8 kernels name theirs HalfType).
inline DType dtype_of_half(HalfType type) { return type == HalfType::kF16 ? DType::kF16 : DType::kBF16; }

// cuBLAS's name for the element type (CUDA_R_32F / 16F / 16BF).
cudaDataType_t cuda_data_type(DType dtype);

// y[m, n] = bias[n] for m < M, n < N (y [M, ldy], bias [N], both in `dtype`).
void fill_bias_rows(DType dtype, void* y, int64_t ldy, const void* bias, int64_t M, int64_t N, cudaStream_t stream);

// y [M, ldy] = x [M, ldx] W^T (+ bias [N]), W [N, ldw] (ldw >= K, e.g. int8's K padded to 16): one cublasGemmEx with
// fp32 compute and `dtype` operands; a bias is broadcast into y first and enters as C (beta = 1). The handle's stream is
// set to `stream`. Capturable (no allocation, no host sync).
void dequantized_matmul(cublasHandle_t handle, DType dtype, const void* w, int64_t ldw, int64_t N, int64_t K,
                        const void* x, int64_t ldx, const void* bias, void* y, int64_t ldy, int64_t M,
                        cudaStream_t stream);

}  // namespace qb::kernels
