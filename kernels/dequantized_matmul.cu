// The shared GEMM half of the two-pass prefill (contract in include/quantbench/kernels/dequantized_matmul.h).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "quantbench/core/error.h"
#include "quantbench/kernels/cublas_check.h"
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/dequantized_matmul.h"

namespace qb::kernels {
namespace {

template <typename T>
__global__ void fill_bias_kernel(T* __restrict__ y, int64_t ldy, const T* __restrict__ bias, int64_t M, int64_t N) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < M * N;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[(i / N) * ldy + i % N] = bias[i % N];
}

}  // namespace

cudaDataType_t cuda_data_type(DType dtype) {
  return dtype == DType::kF32 ? CUDA_R_32F : dtype == DType::kF16 ? CUDA_R_16F : CUDA_R_16BF;
}

void fill_bias_rows(DType dtype, void* y, int64_t ldy, const void* bias, int64_t M, int64_t N, cudaStream_t stream) {
  const unsigned grid = static_cast<unsigned>(std::clamp<int64_t>((M * N + 255) / 256, 1, 132 * 16));
  switch (dtype) {
    case DType::kF32:
      fill_bias_kernel<<<grid, 256, 0, stream>>>(static_cast<float*>(y), ldy, static_cast<const float*>(bias), M, N);
      break;
    case DType::kF16:
      fill_bias_kernel<<<grid, 256, 0, stream>>>(static_cast<__half*>(y), ldy, static_cast<const __half*>(bias), M, N);
      break;
    case DType::kBF16:
      fill_bias_kernel<<<grid, 256, 0, stream>>>(static_cast<__nv_bfloat16*>(y), ldy,
                                                 static_cast<const __nv_bfloat16*>(bias), M, N);
      break;
  }
  QB_CUDA_CHECK_LAUNCH();
}

void dequantized_matmul(cublasHandle_t handle, DType dtype, const void* w, int64_t ldw, int64_t N, int64_t K,
                        const void* x, int64_t ldx, const void* bias, void* y, int64_t ldy, int64_t M,
                        cudaStream_t stream) {
  constexpr int64_t kIntMax = (int64_t{1} << 31) - 1;
  QB_CHECK(M >= 1 && N >= 1 && K >= 1 && M <= kIntMax && N <= kIntMax && K <= kIntMax && ldw >= K && ldx >= K &&
               ldy >= N && ldw <= kIntMax && ldx <= kIntMax && ldy <= kIntMax,
           kInvalidInput, "dequantized_matmul: M = {}, N = {}, K = {}, ldw = {}, ldx = {}, ldy = {}", M, N, K, ldw,
           ldx, ldy);
  QB_CUBLAS_CHECK(cublasSetStream(handle, stream));
  float beta = 0.0f;
  if (bias != nullptr) {
    fill_bias_rows(dtype, y, ldy, bias, M, N, stream);
    beta = 1.0f;
  }
  // Column-major view: y^T (N x M, ld ldy) = W (K x N, ld ldw)^T x^T (K x M, ld ldx).
  const float alpha = 1.0f;
  const cudaDataType_t type = cuda_data_type(dtype);
  QB_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(N), static_cast<int>(M),
                               static_cast<int>(K), &alpha, w, type, static_cast<int>(ldw), x, type,
                               static_cast<int>(ldx), &beta, y, type, static_cast<int>(ldy), CUBLAS_COMPUTE_32F,
                               CUBLAS_GEMM_DEFAULT));
}

}  // namespace qb::kernels
