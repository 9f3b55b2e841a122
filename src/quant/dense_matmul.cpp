#include "quantbench/quant/dense_matmul.h"

#include <ATen/ATen.h>

#ifdef QB_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>

#include <limits>

#include "gated_epilogue.h"
#include "quantbench/core/env_switch.h"
#include "quantbench/kernels/dense_gemv.h"
#include "quantbench/kernels/pdl.h"
#endif

namespace qb::quant {
namespace {

#ifdef QB_HAVE_CUDA
// Where our GEMV measured faster than cuBLAS on the H100 (kernels/NOTES-int8.md, timed inside CUDA
// graphs): M <= 2 on large weights (Qwen2-7B gate_up, down, lm_head: 1-5%). On small weights (qkv,
// o_proj, <= 16.5 M elements) cuBLAS' GEMV is 0.5-1 us faster without a bias, and from M = 4 cuBLAS
// wins. With a bias, at::linear adds a kernel (the bias is copied into C before the GEMM), which
// costs more than that difference: biased layers (gpt2, opt, phi, qwen2's qkv) take the GEMV.
// With programmatic dependent launch (kernels/pdl.cuh) the GEMV also overlaps its weight loads with the
// kernel before it, which a cuBLAS launch cannot: then it takes every layer at M <= 2.
constexpr int64_t kDenseGemvMaxRows = 2;
constexpr int64_t kDenseGemvMinElements = int64_t{32} << 20;

// The gated form (one gate and one up row tile per block, 8-warp blocks) wins where its grid fits the chip in about
// one wave (TinyLlama, N = 11264: fp16 976.7 vs 932.4 tok/s with the separate activation); on Qwen2-7B's N = 37888
// the separate activation measured faster (bf16 184.6 vs 179.7; 184.7 vs 183.5 with 16-warp gated blocks).
constexpr int64_t kDenseGatedMaxN = 16384;
// QB_DENSE_GATED_MAX_N=0 lifts the limit (A/B on wide layers).
int64_t dense_gated_max_n() {
  static const int64_t n = env_int("QB_DENSE_GATED_MAX_N", static_cast<int>(kDenseGatedMaxN), 0);
  return n == 0 ? std::numeric_limits<int64_t>::max() : n;
}

bool large_enough(const at::Tensor& weight, bool has_bias) {
  return has_bias || kernels::pdl_enabled() || weight.numel() >= kDenseGemvMinElements;
}

bool gemv_applies(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias) {
  if (!x.is_cuda() || !weight.is_cuda() || x.get_device() != weight.get_device()) return false;
  const auto dtype = x.scalar_type();
  if ((dtype != at::kHalf && dtype != at::kBFloat16) || weight.scalar_type() != dtype) return false;
  if (weight.dim() != 2 || !weight.is_contiguous()) return false;
  if (bias.has_value() && bias->defined() && (!bias->is_cuda() || bias->numel() != weight.size(0))) return false;
  const int64_t K = weight.size(1);
  const int64_t M = K == 0 ? 0 : x.numel() / K;
  const bool has_bias = bias.has_value() && bias->defined();
  return M >= 1 && M <= kDenseGemvMaxRows && large_enough(weight, has_bias) && K % 8 == 0 &&
         x.size(-1) == K;
}

// y = x W^T (+ bias) by our GEMV, or act(gate) * up with its gated epilogue (y then N / 2 wide); an undefined
// tensor where the kernel does not take the operands.
at::Tensor gemv(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                const kernels::GatedEpilogue& gated) {
  const int64_t K = weight.size(1);
  const int64_t N = weight.size(0);
  at::Tensor x2 = x.reshape({-1, K}).contiguous();
  if (reinterpret_cast<uintptr_t>(x2.data_ptr()) % 16 != 0) x2 = x2.clone();
  const int64_t M = x2.size(0);
  if (!kernels::dense_gemv_supported(x2.data_ptr(), K, weight.data_ptr(), K, M, K)) return {};
  if (gated.on && (M > kernels::kGemvGatedMaxM || !kernels::gated_epilogue_fits(N) || N >= dense_gated_max_n())) {
    return {};
  }
  const int64_t out = gated.on ? N / 2 : N;
  at::Tensor b;
  if (bias.has_value() && bias->defined()) b = bias->to(x.scalar_type()).contiguous();
  at::Tensor y = at::empty({M, out}, x2.options());
  const auto type = x.scalar_type() == at::kHalf ? kernels::HalfType::kF16 : kernels::HalfType::kBF16;
  kernels::dense_gemv(type, x2.data_ptr(), K, weight.data_ptr(), K, b.defined() ? b.data_ptr() : nullptr,
                      y.data_ptr(), out, M, N, K, at::cuda::getCurrentCUDAStream(), gated);
  std::vector<int64_t> out_shape(x.sizes().begin(), x.sizes().end());
  out_shape.back() = out;
  return y.view(out_shape);
}
#endif

}  // namespace

at::Tensor dense_matmul(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias) {
#ifdef QB_HAVE_CUDA
  if (gemv_applies(x, weight, bias)) {
    at::Tensor y = gemv(x, weight, bias, {});
    if (y.defined()) return y;
  }
#endif
  return bias.has_value() ? at::linear(x, weight, *bias) : at::linear(x, weight);
}

at::Tensor dense_matmul_gated(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                              GateActivation act) {
#ifdef QB_HAVE_CUDA
  if (gemv_applies(x, weight, bias)) return gemv(x, weight, bias, gated_epilogue(act));
#endif
  (void)x, (void)weight, (void)bias, (void)act;
  return {};
}

}  // namespace qb::quant
