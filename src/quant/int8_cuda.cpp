#include "int8_cuda.h"

#ifdef QB_HAVE_CUDA

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>

#include "quantbench/core/error.h"
#include "quantbench/kernels/dequantized_matmul.h"
#include "quantbench/kernels/int8_dequant.h"
#include "quantbench/kernels/llm_int8.h"

namespace qb::quant::int8_cuda {
namespace {

cudaStream_t stream() { return at::cuda::getCurrentCUDAStream(); }

const void* bias_ptr(const at::Tensor& bias) { return bias.defined() ? bias.data_ptr() : nullptr; }

at::Tensor workspace(const at::Tensor& like, size_t bytes) {
  return at::empty({static_cast<int64_t>(bytes)}, like.options().dtype(at::kByte));
}

}  // namespace

kernels::HalfType half_type(at::ScalarType dtype) {
  QB_CHECK(dtype == at::kHalf || dtype == at::kBFloat16, kUnsupported,
           "int8 CUDA kernels take fp16 or bf16 activations, got {}", c10::toString(dtype));
  return dtype == at::kHalf ? kernels::HalfType::kF16 : kernels::HalfType::kBF16;
}

int64_t kernel_k(int64_t K) { return K % 8 == 0 ? K : kernels::int8_padded_k(K); }

at::Tensor flatten_activations(const at::Tensor& x, int64_t K) {
  at::Tensor x2 = x.reshape({-1, K});
  if (K % 8 != 0) {
    x2 = at::constant_pad_nd(x2, {0, kernel_k(K) - K}, 0);
  }
  x2 = x2.contiguous();
  if (reinterpret_cast<uintptr_t>(x2.data_ptr()) % 16 != 0) x2 = x2.clone();
  return x2;
}

kernels::Int8Weights weights_view(const at::Tensor& q, const at::Tensor& scales, int64_t group_size, int64_t K,
                                  float scale_multiplier) {
  kernels::Int8Weights w;
  w.q = q.data_ptr<int8_t>();
  w.ldq = q.size(1);
  w.scales = scales.data_ptr<float>();
  w.group_size = group_size;
  w.groups = group_size > 0 ? scales.size(1) : 0;
  w.scale_multiplier = scale_multiplier;
  w.N = q.size(0);
  w.K = K;
  return w;
}

at::Tensor int8_gemv(const at::Tensor& x2d, const kernels::Int8Weights& w, const at::Tensor& bias,
                     const kernels::GatedEpilogue& gated) {
  const int64_t M = x2d.size(0), outputs = gated.on ? w.N / 2 : w.N;
  at::Tensor y = at::empty({M, outputs}, x2d.options());
  kernels::int8_gemv(half_type(x2d.scalar_type()), x2d.data_ptr(), x2d.size(1), w, bias_ptr(bias), y.data_ptr(),
                     outputs, M, stream(), gated);
  return y;
}

at::Tensor int8_prefill(const at::Tensor& x2d, const kernels::Int8Weights& w, const at::Tensor& bias,
                        PreparedWeight* prepared) {
  const int64_t M = x2d.size(0);
  at::Tensor y = at::empty({M, w.N}, x2d.options());
  kernels::Int8WgmmaForm form{};
  int splits = 1;
  if (kernels::int8_prefill_fused_form(w, M, &form, &splits) &&
      kernels::int8_gemm_wgmma_supported(x2d.data_ptr(), x2d.size(1), w, y.data_ptr(), w.N, M, form)) {
    const size_t bytes = kernels::int8_gemm_wgmma_workspace_bytes(M, w.N, form, splits);
    at::Tensor partial;  // split-K's fp32 partial tiles
    if (bytes > 0) partial = workspace(x2d, bytes);
    kernels::int8_gemm_wgmma(half_type(x2d.scalar_type()), x2d.data_ptr(), x2d.size(1), w, bias_ptr(bias),
                             y.data_ptr(), w.N, M, stream(), form, splits, bytes > 0 ? partial.data_ptr() : nullptr,
                             bytes);
    return y;
  }
  static_assert(kernels::kInt8PrefillChunkK <= 0, "a prepared weight is the direct variant's whole 16-bit W");
  if (const at::Tensor w16 = prepared != nullptr ? prepared->take(M, x2d.scalar_type(), stream()) : at::Tensor();
      w16.defined()) {
    // W dequantized ahead on the second stream: the GEMM alone (w16 returns to this stream's pool after it).
    kernels::dequantized_matmul(at::cuda::getCurrentCUDABlasHandle(), kernels::dtype_of_half(half_type(x2d.scalar_type())),
                                w16.data_ptr(), w16.size(1), w.N, w.K, x2d.data_ptr(), x2d.size(1), bias_ptr(bias),
                                y.data_ptr(), w.N, M, stream());
    return y;
  }
  const size_t bytes = kernels::int8_prefill_workspace_bytes(M, w.N, w.K, kernels::kInt8PrefillChunkK);
  at::Tensor scratch = workspace(x2d, bytes);
  kernels::int8_prefill_matmul(at::cuda::getCurrentCUDABlasHandle(), half_type(x2d.scalar_type()), x2d.data_ptr(),
                               x2d.size(1), w, bias_ptr(bias), y.data_ptr(), w.N, M, scratch.data_ptr(), bytes,
                               kernels::kInt8PrefillChunkK, stream());
  return y;
}

void prepare_int8_prefill(const kernels::Int8Weights& w, int64_t M, at::ScalarType dtype, c10::Device device,
                          PreparedWeight& prepared) {
  if ((dtype != at::kHalf && dtype != at::kBFloat16) || (w.group_size != 0 && w.group_size % 16 != 0)) return;
  kernels::Int8WgmmaForm form{};
  int splits = 1;
  // One fused kernel: nothing to do ahead.
  if (kernels::int8_prefill_fused_form(w, M, &form, &splits) && kernels::int8_gemm_wgmma_weights_supported(w, form))
    return;
  const int64_t ld = kernels::int8_padded_k(w.K);
  const kernels::HalfType half = half_type(dtype);
  prepared.start(M, w.N, ld, dtype, device,
                 [&](cudaStream_t side, void* w16) { kernels::int8_dequantize(half, w, w16, ld, side); });
}

at::Tensor llm_int8_gemv(const at::Tensor& x2d, const kernels::Int8Weights& w, const at::Tensor& bias,
                         float threshold) {
  const int64_t M = x2d.size(0);
  at::Tensor y = at::empty({M, w.N}, x2d.options());
  const size_t bytes = kernels::llm_int8_activation_bytes(M, w.K);
  at::Tensor scratch = workspace(x2d, bytes);
  kernels::llm_int8_gemv(half_type(x2d.scalar_type()), x2d.data_ptr(), x2d.size(1), w, bias_ptr(bias), y.data_ptr(),
                         w.N, M, threshold, scratch.data_ptr(), bytes, stream());
  return y;
}

at::Tensor llm_int8_prefill(const at::Tensor& x2d, const kernels::Int8Weights& w, const at::Tensor& bias,
                            float threshold) {
  const int64_t M = x2d.size(0);
  at::Tensor y = at::empty({M, w.N}, x2d.options());
  const size_t bytes = kernels::llm_int8_prefill_workspace_bytes(M, w.N, w.K, kernels::kInt8PrefillChunkK);
  at::Tensor scratch = workspace(x2d, bytes);
  kernels::llm_int8_prefill(at::cuda::getCurrentCUDABlasHandle(), half_type(x2d.scalar_type()), x2d.data_ptr(),
                            x2d.size(1), w, bias_ptr(bias), y.data_ptr(), w.N, M, threshold, scratch.data_ptr(), bytes,
                            kernels::kInt8PrefillChunkK, stream());
  return y;
}

}  // namespace qb::quant::int8_cuda

#endif  // QB_HAVE_CUDA
