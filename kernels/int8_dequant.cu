// INT8 dequantization kernels and the chunked dequantize-then-cuBLAS prefill.
//
// dequant_chunk_kernel
//   out[n, c] (c < width) = q[n, k0 + c] (* s[n, (k0+c)/gs] when per group) in T (fp16/bf16).
//   q [N, ldq] int8, out [N, ld_out]; width % 16 == 0, k0 % 16 == 0, ld_out % 16 == 0 (16-byte
//   loads of q, two 16-byte stores of out per thread). Per channel: the values are exact integers.
// epilogue_kernel
//   y[m, n] = T(acc[m, n] * (per channel ? s[n] * mult : 1) + bias[n]); acc fp32 [M, N] contiguous.
// int8_prefill_matmul, chunk_k <= 0 (the default): W dequantized whole with its scales folded in
//   (w = q * s rounded once to 16 bits, as bitsandbytes does) into the scratch, then dequantized_matmul
//   (the GEMM every format's two-pass path shares: bias broadcast into y, one cublasGemmEx).
//   chunk_k > 0: for each chunk [k0, k0 + w) of K: dequant chunk -> cublasGemmEx into an fp32 accumulator, then the epilogue (exact q, fp32 scale).
//   All on one stream; the chunk buffer is reused so its lines are still in L2 when cuBLAS reads them.
#include <cublas_v2.h>

#include <algorithm>
#include <cstring>

#include "gemv_mma_tile.cuh"
#include "quantbench/kernels/cublas_check.h"
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/dequantized_matmul.h"
#include "quantbench/kernels/int8_dequant.h"

namespace qb::kernels {
namespace {

constexpr size_t kAlign = 256;
size_t align_up(size_t v) { return (v + kAlign - 1) / kAlign * kAlign; }
int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

template <typename T, bool PER_GROUP>
__global__ void dequant_chunk_kernel(const int8_t* __restrict__ q, int64_t ldq, const float* __restrict__ scales,
                                     int64_t groups, int64_t group_size, float multiplier, int64_t N, int64_t k0,
                                     int64_t width, T* __restrict__ out, int64_t ld_out) {
  using Traits = gemv::HalfTraits<T>;
  const int64_t vecs_per_row = width / 16;
  const int64_t total = N * vecs_per_row;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t n = i / vecs_per_row;
    const int64_t c = (i % vecs_per_row) * 16;
    const uint4 packed = gemv::load_stream16(q + n * ldq + k0 + c);
    uint32_t halves[8];
#pragma unroll
    for (int j = 0; j < 4; ++j) Traits::int8x4_to_pairs(gemv::word_of(packed, j), halves[2 * j], halves[2 * j + 1]);
    // int8x4_to_pairs yields (e0,e1),(e2,e3): element order is preserved.
    if constexpr (PER_GROUP) {
      const float s = scales[n * groups + (k0 + c) / group_size] * multiplier;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        T pair[2];
        memcpy(pair, &halves[j], 4);
        pair[0] = Traits::from_float(Traits::to_float(pair[0]) * s);
        pair[1] = Traits::from_float(Traits::to_float(pair[1]) * s);
        memcpy(&halves[j], pair, 4);
      }
    }
    uint4* dst = reinterpret_cast<uint4*>(out + n * ld_out + c);
    dst[0] = make_uint4(halves[0], halves[1], halves[2], halves[3]);
    dst[1] = make_uint4(halves[4], halves[5], halves[6], halves[7]);
  }
}

template <typename T, bool PER_CHANNEL_SCALE>
__global__ void epilogue_kernel(const float* __restrict__ acc, const float* __restrict__ scales, float multiplier,
                                const T* __restrict__ bias, int64_t M, int64_t N, T* __restrict__ y, int64_t ldy) {
  using Traits = gemv::HalfTraits<T>;
  const int64_t total = M * N;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t m = i / N;
    const int64_t n = i % N;
    float v = acc[i];
    if constexpr (PER_CHANNEL_SCALE) v *= scales[n] * multiplier;
    if (bias != nullptr) v += Traits::to_float(bias[n]);
    y[m * ldy + n] = Traits::from_float(v);
  }
}


unsigned grid_for(int64_t work, int threads) {
  const int64_t blocks = (work + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 132 * 16 ? (blocks > 0 ? blocks : 1) : 132 * 16);
}

template <typename T>
void launch_dequant(const Int8Weights& w, int64_t k0, int64_t width, T* out, int64_t ld_out, cudaStream_t stream) {
  const int64_t work = w.N * (width / 16);
  const unsigned grid = grid_for(work, 256);
  if (w.group_size > 0) {
    dequant_chunk_kernel<T, true><<<grid, 256, 0, stream>>>(w.q, w.ldq, w.scales, w.groups, w.group_size,
                                                            w.scale_multiplier, w.N, k0, width, out, ld_out);
  } else {
    dequant_chunk_kernel<T, false><<<grid, 256, 0, stream>>>(w.q, w.ldq, w.scales, w.groups, 1, 1.0f, w.N, k0,
                                                             width, out, ld_out);
  }
  QB_CUDA_CHECK_LAUNCH();
}


void check_weights(const Int8Weights& w, const char* what) {
  QB_CHECK(w.q != nullptr && w.scales != nullptr && w.N >= 1 && w.K >= 1 && w.N < (int64_t{1} << 31) &&
               w.K < (int64_t{1} << 31),
           kInvalidInput, "{}: empty or oversized int8 weights (N = {}, K = {})", what, w.N, w.K);
  QB_CHECK(w.ldq % 16 == 0 && w.ldq >= int8_padded_k(w.K) && reinterpret_cast<uintptr_t>(w.q) % 16 == 0,
           kInvalidInput, "{}: q must be 16-byte aligned with ldq = {} a multiple of 16 >= round_up(K = {}, 16)",
           what, w.ldq, w.K);
  QB_CHECK(w.group_size == 0 || (w.group_size % 16 == 0 && w.groups * w.group_size >= w.K), kInvalidInput,
           "{}: group size {} must be a multiple of 16 and {} groups must cover K = {}", what, w.group_size,
           w.groups, w.K);
}

}  // namespace

size_t int8_prefill_workspace_bytes(int64_t M, int64_t N, int64_t K, int64_t chunk_k) {
  if (chunk_k <= 0) return align_up(static_cast<size_t>(N * int8_padded_k(K) * 2));
  const int64_t chunk = std::min(round_up(std::max<int64_t>(chunk_k, 64), 64), round_up(K, 16));
  return align_up(static_cast<size_t>(N * chunk * 2)) + align_up(static_cast<size_t>(M * N * 4));
}

void int8_dequantize(HalfType dtype, const Int8Weights& w, void* out, int64_t ld_out, cudaStream_t stream) {
  check_weights(w, "int8_dequantize");
  const int64_t width = int8_padded_k(w.K);
  QB_CHECK(ld_out >= width && ld_out % 16 == 0 && reinterpret_cast<uintptr_t>(out) % 16 == 0, kInvalidInput,
           "int8_dequantize: out must be 16-byte aligned with ld_out = {} a multiple of 16 >= {}", ld_out, width);
  // Per channel is one group spanning the row; the scale (and multiplier) is folded into w.
  Int8Weights grouped = w;
  if (w.group_size == 0) {
    grouped.group_size = width;
    grouped.groups = 1;
  }
  if (dtype == HalfType::kF16) {
    launch_dequant<__half>(grouped, 0, width, static_cast<__half*>(out), ld_out, stream);
  } else {
    launch_dequant<__nv_bfloat16>(grouped, 0, width, static_cast<__nv_bfloat16*>(out), ld_out, stream);
  }
}

void int8_prefill_matmul(cublasHandle_t handle, HalfType dtype, const void* x, int64_t ldx, const Int8Weights& w,
                         const void* bias, void* y, int64_t ldy, int64_t M, void* workspace, size_t workspace_bytes,
                         int64_t chunk_k, cudaStream_t stream) {
  check_weights(w, "int8_prefill_matmul");
  QB_CHECK(M >= 1 && M < (int64_t{1} << 31), kInvalidInput, "int8_prefill_matmul: M = {} out of range", M);
  QB_CHECK(w.K % 8 == 0 && ldx >= w.K && ldx % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0, kInvalidInput,
           "int8_prefill_matmul: x must be 16-byte aligned with K = {} and ldx = {} multiples of 8", w.K, ldx);
  QB_CHECK(ldy >= w.N, kInvalidInput, "int8_prefill_matmul: ldy = {} < N = {}", ldy, w.N);
  QB_CHECK(w.group_size == 0 || w.group_size % 16 == 0, kInvalidInput,
           "int8_prefill_matmul: group size {} must be a multiple of 16", w.group_size);
  const int64_t padded_k = int8_padded_k(w.K);
  const int64_t chunk = std::min(round_up(std::max<int64_t>(chunk_k, 64), 64), padded_k);
  const size_t need = int8_prefill_workspace_bytes(M, w.N, w.K, chunk_k);
  QB_CHECK(workspace != nullptr && workspace_bytes >= need &&
               reinterpret_cast<uintptr_t>(workspace) % kAlign == 0,
           kInvalidInput, "int8_prefill_matmul: workspace of {} bytes (256-byte aligned) needed, got {}", need,
           workspace_bytes);
  const cudaDataType_t type = dtype == HalfType::kF16 ? CUDA_R_16F : CUDA_R_16BF;
  QB_CUBLAS_CHECK(cublasSetStream(handle, stream));
  if (chunk_k <= 0) {
    // Whole W dequantized with its scales into the scratch, then one GEMM writing y in 16 bits.
    int8_dequantize(dtype, w, workspace, padded_k, stream);
    dequantized_matmul(handle, dtype_of_half(dtype), workspace, padded_k, w.N, w.K, x, ldx, bias, y, ldy, M,
                       stream);
    return;
  }
  char* base = static_cast<char*>(workspace);
  void* chunk_buffer = base;
  float* acc = reinterpret_cast<float*>(base + align_up(static_cast<size_t>(w.N * chunk * 2)));
  const size_t elem = 2;
  for (int64_t k0 = 0; k0 < w.K; k0 += chunk) {
    const int64_t width = std::min(chunk, padded_k - k0);  // multiple of 16
    const int64_t gemm_k = std::min(chunk, w.K - k0);     // x has only K columns
    if (dtype == HalfType::kF16) {
      launch_dequant<__half>(w, k0, width, static_cast<__half*>(chunk_buffer), chunk, stream);
    } else {
      launch_dequant<__nv_bfloat16>(w, k0, width, static_cast<__nv_bfloat16*>(chunk_buffer), chunk, stream);
    }
    // Column-major view: C^T [N, M] (ld N) = W_chunk [N, gemm_k] (row-major = col-major [gemm_k, N], op T)
    //                                         x [gemm_k, M] (col-major, ld = ldx).
    const float alpha = 1.0f;
    const float beta = k0 == 0 ? 0.0f : 1.0f;
    QB_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(w.N), static_cast<int>(M),
                                 static_cast<int>(gemm_k), &alpha, chunk_buffer, type, static_cast<int>(chunk),
                                 static_cast<const char*>(x) + k0 * elem, type, static_cast<int>(ldx), &beta, acc,
                                 CUDA_R_32F, static_cast<int>(w.N), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
  const int64_t outputs = M * w.N;
  const unsigned grid = grid_for(outputs, 256);
  const bool per_channel = w.group_size == 0;
  if (dtype == HalfType::kF16) {
    auto* out = static_cast<__half*>(y);
    auto* b = static_cast<const __half*>(bias);
    per_channel ? epilogue_kernel<__half, true><<<grid, 256, 0, stream>>>(acc, w.scales, w.scale_multiplier, b, M,
                                                                          w.N, out, ldy)
                : epilogue_kernel<__half, false><<<grid, 256, 0, stream>>>(acc, w.scales, 1.0f, b, M, w.N, out, ldy);
  } else {
    auto* out = static_cast<__nv_bfloat16*>(y);
    auto* b = static_cast<const __nv_bfloat16*>(bias);
    per_channel ? epilogue_kernel<__nv_bfloat16, true><<<grid, 256, 0, stream>>>(acc, w.scales, w.scale_multiplier,
                                                                                 b, M, w.N, out, ldy)
                : epilogue_kernel<__nv_bfloat16, false><<<grid, 256, 0, stream>>>(acc, w.scales, 1.0f, b, M, w.N,
                                                                                  out, ldy);
  }
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace qb::kernels
