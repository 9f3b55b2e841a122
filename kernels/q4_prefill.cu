// 4-bit weights at large M (prefill): dequantize into a re-used scratch, multiply with cuBLAS.
//
// Contract
//   y[M, ldy] = x[M, ldx] W^T (+ bias), dtype fp32 / fp16 / bf16 for x, y, bias and the scratch.
//   Accumulation fp32 (cuBLAS compute type 32F; the column split also accumulates across chunks in an
//   fp32 buffer). The caller owns the handle (its stream must be `stream`) and the scratch/accum buffers
//   (q4_prefill_scratch_bytes / q4_prefill_accum_bytes). No allocation, no host sync: capturable.
// The idea of chunks was to keep the 16-bit copy in L2 (re-used scratch of a few MB): measured on H100 it
// does not pay (NOTES-q4.md): chunk GEMMs under ~32 MB no longer fill 132 SMs and the dequantize pass is no
// cheaper; the default plan dequantizes all of W (up to 320 MB of scratch), then one GEMM.
//   kRows: chunk = rows of W; y[:, rows] = x W[rows]^T directly (bias pre-filled into y, beta = 1).
//   kCols: chunk = columns (K); fp32 accum += x[:, cols] W[:, cols]^T, then y = accum + bias.
#include <cublas_v2.h>

#include <algorithm>

#include "q4_common.cuh"
#include "quantbench/kernels/cublas_check.h"
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/dequantized_matmul.h"
#include "quantbench/kernels/q4_gemm.h"
#include "quantbench/kernels/q4_layout.h"

namespace qb::kernels {
namespace {

using q4::ActOps;

size_t dtype_bytes(DType dtype) { return dtype == DType::kF32 ? 4 : 2; }

template <typename T>
__global__ void finish_accum_kernel(const float* __restrict__ accum, const T* __restrict__ bias, T* __restrict__ y,
                                    int64_t ldy, int64_t M, int64_t N) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < M * N;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float v = accum[i];
    if (bias != nullptr) v += ActOps<T>::to_float(bias[i % N]);
    y[(i / N) * ldy + i % N] = ActOps<T>::from_float(v);
  }
}

unsigned grid_for(int64_t n) { return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((n + 255) / 256, 132 * 16))); }

void finish_accum(DType dtype, const float* accum, const void* bias, void* y, int64_t ldy, int64_t M, int64_t N,
                  cudaStream_t stream) {
  switch (dtype) {
    case DType::kF32:
      finish_accum_kernel<<<grid_for(M * N), 256, 0, stream>>>(accum, static_cast<const float*>(bias),
                                                               static_cast<float*>(y), ldy, M, N);
      break;
    case DType::kF16:
      finish_accum_kernel<<<grid_for(M * N), 256, 0, stream>>>(accum, static_cast<const __half*>(bias),
                                                               static_cast<__half*>(y), ldy, M, N);
      break;
    case DType::kBF16:
      finish_accum_kernel<<<grid_for(M * N), 256, 0, stream>>>(accum, static_cast<const __nv_bfloat16*>(bias),
                                                               static_cast<__nv_bfloat16*>(y), ldy, M, N);
      break;
  }
  QB_CUDA_CHECK_LAUNCH();
}

// Column-major view: C (rows x M, ld ldc) = A^T B with A = chunk (k x rows, ld lda), B = x (k x M, ld ldx).
void gemm(cublasHandle_t handle, DType dtype, int64_t rows, int64_t M, int64_t k, const void* a, int64_t lda,
          const void* b, int64_t ldb, float beta, void* c, cudaDataType_t c_type, int64_t ldc) {
  const float alpha = 1.0f;
  QB_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rows), static_cast<int>(M),
                               static_cast<int>(k), &alpha, a, cuda_data_type(dtype), static_cast<int>(lda), b,
                               cuda_data_type(dtype), static_cast<int>(ldb), &beta, c, c_type, static_cast<int>(ldc),
                               CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace

int64_t q4_prefill_scratch_bytes(const Q4PrefillPlan& plan, DType dtype, int64_t N, int64_t K) {
  const int64_t elements = plan.split == Q4PrefillSplit::kRows ? std::min(plan.chunk, N) * K : N * std::min(plan.chunk, K);
  return elements * static_cast<int64_t>(dtype_bytes(dtype));
}

int64_t q4_prefill_accum_bytes(const Q4PrefillPlan& plan, int64_t M, int64_t N) {
  return plan.split == Q4PrefillSplit::kCols ? M * N * 4 : 0;
}

Q4PrefillPlan q4_default_prefill_plan(int64_t M, int64_t N, int64_t K) {
  // Measured on H100 (kernels/NOTES-q4.md, runs 1-4, M = 512): the whole W dequantized once, then one GEMM, is
  // the fastest (1.7-1.95x cuBLAS bf16); row chunks cost more as soon as the chunk GEMMs stop filling the chip
  // (32 MB: 1.8-2.6x, 16 MB: 2.3-3.2x), L2 hints on the chunk did not help, column chunks pay the fp32
  // accumulator traffic. So: all at once while the 16-bit copy stays under 320 MB, else 32 MB row chunks.
  constexpr int64_t kWholeLimitBytes = int64_t{320} << 20, kChunkBytes = int64_t{32} << 20;
  Q4PrefillPlan plan;
  plan.split = Q4PrefillSplit::kRows;
  const int64_t padded_rows = (N + 15) / 16 * 16;
  if (2 * N * K <= kWholeLimitBytes) {
    plan.chunk = padded_rows;
  } else {
    plan.chunk = std::min(padded_rows, std::max<int64_t>(16, kChunkBytes / (2 * K) / 16 * 16));
  }
  return plan;
}

void q4_tile_matmul_cublas(cublasHandle_t handle, DType dtype, const Q4TileWeights& w, const Q4PrefillPlan& plan,
                           const void* x, int64_t ldx, const void* bias, void* y, int64_t ldy, int64_t M,
                           void* scratch, float* accum, cudaStream_t stream) {
  QB_CHECK(M > 0 && ldx >= w.K && ldy >= w.N && plan.chunk > 0, kInvalidInput,
           "q4_tile_matmul_cublas: bad sizes M={} ldx={} ldy={} chunk={}", M, ldx, ldy, plan.chunk);
  const size_t esize = dtype_bytes(dtype);
  if (plan.split == Q4PrefillSplit::kRows) {
    QB_CHECK(plan.chunk % 16 == 0, kInvalidInput, "q4 prefill: row chunk {} not a multiple of 16", plan.chunk);
    float beta = 0.f;
    if (bias != nullptr) {
      fill_bias_rows(dtype, y, ldy, bias, M, w.N, stream);
      beta = 1.f;
    }
    for (int64_t r0 = 0; r0 < w.N; r0 += plan.chunk) {
      const int64_t rows = std::min(plan.chunk, w.N - r0);
      q4_tile_dequant(dtype, w, r0, rows, 0, w.K, scratch, w.K, stream, plan.l2_hints);
      gemm(handle, dtype, rows, M, w.K, scratch, w.K, x, ldx, beta, static_cast<char*>(y) + r0 * esize,
           cuda_data_type(dtype), ldy);
    }
  } else {
    QB_CHECK(plan.chunk % 64 == 0 && accum != nullptr, kInvalidInput,
             "q4 prefill: column chunk {} not a multiple of 64, or no fp32 accumulator", plan.chunk);
    for (int64_t c0 = 0; c0 < w.K; c0 += plan.chunk) {
      const int64_t cols = std::min(plan.chunk, w.K - c0);
      q4_tile_dequant(dtype, w, 0, w.N, c0, cols, scratch, cols, stream, plan.l2_hints);
      gemm(handle, dtype, w.N, M, cols, scratch, cols, static_cast<const char*>(x) + c0 * esize, ldx,
           c0 == 0 ? 0.f : 1.f, accum, CUDA_R_32F, w.N);
    }
    finish_accum(dtype, accum, bias, y, ldy, M, w.N, stream);
  }
}

void q4_flat_matmul_cublas(cublasHandle_t handle, DType dtype, const Q4FlatWeights& w, const void* x, int64_t ldx,
                           const void* bias, void* y, int64_t ldy, int64_t M, void* scratch, cudaStream_t stream) {
  QB_CHECK(M > 0 && ldx >= w.K && ldy >= w.N, kInvalidInput, "q4_flat_matmul_cublas: bad sizes M={} ldx={} ldy={}",
           M, ldx, ldy);
  q4_flat_dequant(dtype, w, scratch, stream);
  dequantized_matmul(handle, dtype, scratch, w.K, w.N, w.K, x, ldx, bias, y, ldy, M, stream);
}

}  // namespace qb::kernels
