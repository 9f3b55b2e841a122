// The llm.int8 kernels called directly: the activation split bit for bit against the CPU algorithm
// (bitsandbytes' int8_vectorwise_quant), and the decode GEMV / prefill with NaN-poisoned outputs.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <utility>

#include "quantbench/core/error.h"
#include "quantbench/quant/llm_int8.h"
#include "test_support.h"

#ifdef QB_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>

#include "quantbench/kernels/llm_int8.h"
#endif

namespace qb::quant {
namespace {

#ifdef QB_HAVE_CUDA

kernels::HalfType half_of(at::ScalarType t) { return t == at::kHalf ? kernels::HalfType::kF16 : kernels::HalfType::kBF16; }

// x with outliers: column 5 scaled past the threshold, one element exactly at it, one just below.
at::Tensor activations(int64_t m, int64_t k) {
  at::Tensor x = at::randn({m, k});
  x.select(1, 5).mul_(10.0);
  x[m - 1][k - 3] = 6.0f;
  x[0][k / 3] = 5.99f;
  return x;
}

// CB (padded to a multiple of 16 columns) and SCB of q on the device, and the kernels' view of them.
struct DeviceWeights {
  at::Tensor cb, scb;
  kernels::Int8Weights w;
};

DeviceWeights device_weights(const LlmInt8Quantized& q, int64_t n, int64_t k, const c10::Device& cuda) {
  DeviceWeights d;
  const int64_t padded = (k + 15) / 16 * 16;
  d.cb = at::constant_pad_nd(q.cb, {0, padded - k}, 0).to(cuda).contiguous();
  d.scb = q.scb.to(cuda);
  d.w.q = d.cb.data_ptr<int8_t>();
  d.w.ldq = padded;
  d.w.scales = d.scb.data_ptr<float>();
  d.w.N = n;
  d.w.K = k;
  return d;
}

// y = llm_int8_gemv(x) with x [M, K] on the device, the workspace sized for M, y poisoned with NaN first.
at::Tensor run_gemv(const at::Tensor& x, const kernels::Int8Weights& w, const at::Tensor& bias, float threshold) {
  const int64_t m = x.size(0);
  const size_t bytes = kernels::llm_int8_activation_bytes(m, w.K);
  at::Tensor scratch = at::empty({static_cast<int64_t>(bytes)}, x.options().dtype(at::kByte));
  at::Tensor y = at::full({m, w.N}, NAN, x.options());
  kernels::llm_int8_gemv(half_of(x.scalar_type()), x.data_ptr(), w.K, w, bias.defined() ? bias.data_ptr() : nullptr,
                         y.data_ptr(), w.N, m, threshold, scratch.data_ptr(), bytes,
                         at::cuda::getCurrentCUDAStream());
  return y;
}

TEST(LlmInt8KernelsGpu, ActivationSplitIsBitExact) {
  QB_REQUIRE_CUDA();
  at::manual_seed(51);
  const c10::Device cuda(c10::kCUDA);
  for (const auto dtype : {at::kHalf, at::kBFloat16}) {
    for (const int64_t m : {1, 5, 32, 40, 300}) {  // <= 32: single-block kernel; above: multi-block
      for (const int64_t k : {64, 3592, 4104}) {
        for (const double threshold : {6.0, 0.0}) {
          const at::Tensor x = activations(m, k).to(cuda, dtype);
          const size_t bytes = kernels::llm_int8_activation_bytes(m, k);
          at::Tensor scratch = at::full({static_cast<int64_t>(bytes)}, 0x7f, x.options().dtype(at::kByte));
          const kernels::LlmInt8Activations act = kernels::llm_int8_activation_layout(scratch.data_ptr(), m, k);
          kernels::llm_int8_quantize_activations(half_of(dtype), x.data_ptr(), k, m, k, static_cast<float>(threshold),
                                                 act, at::cuda::getCurrentCUDAStream());
          // The CPU algorithm, as llm_int8_reference_matmul and bitsandbytes' default backend run it.
          const at::Tensor xh = x.to(at::kCPU).to(at::kHalf).to(at::kFloat);
          const at::Tensor a = xh.abs();
          const at::Tensor outlier = threshold > 0 ? a.ge(threshold) : at::zeros_like(a).to(at::kBool);
          const at::Tensor cols = outlier.any(0);
          const at::Tensor sca = at::where(outlier, at::zeros_like(a), a).amax({1});
          at::Tensor ca = at::round(xh * (at::reciprocal(sca) * 127.0f).unsqueeze(1));
          ca = at::where(outlier.logical_or(cols.unsqueeze(0)), at::zeros_like(ca), ca).to(at::kChar);

          const at::Tensor gpu_sca = at::from_blob(act.sca, {m}, x.options().dtype(at::kFloat)).to(at::kCPU);
          const at::Tensor gpu_ca =
              at::from_blob(act.ca, {m, act.ld}, x.options().dtype(at::kChar)).to(at::kCPU);
          const at::Tensor gpu_mask =
              at::from_blob(act.outlier_mask, {act.ld / 32}, x.options().dtype(at::kInt)).to(at::kCPU);
          const std::string where = std::string(c10::toString(dtype)) + " M " + std::to_string(m) + " K " +
                                    std::to_string(k) + " threshold " + std::to_string(threshold);
          EXPECT_TRUE(at::equal(gpu_sca, sca)) << where;
          EXPECT_TRUE(at::equal(gpu_ca.narrow(1, 0, k), ca)) << where;
          EXPECT_TRUE(at::equal(gpu_ca.narrow(1, k, act.ld - k), at::zeros({m, act.ld - k}, at::kChar))) << where;
          // Unpack the mask bits and compare with the outlier columns.
          const at::Tensor bits = at::arange(32, at::kInt);
          const at::Tensor unpacked =
              gpu_mask.unsqueeze(1).bitwise_right_shift(bits).bitwise_and(1).reshape({-1}).narrow(0, 0, k);
          EXPECT_TRUE(at::equal(unpacked.to(at::kBool), cols)) << where;
        }
      }
    }
  }
}

// GEMV (M <= 32) and prefill against llm_int8_reference_matmul in float64. Bounds as in
// test_llm_int8_format.cpp: the GEMV differs by the output rounding only; the prefill also rounds
// z = CA * SCA / 127 to 16 bits.
TEST(LlmInt8KernelsGpu, GemvAndPrefillWriteEveryOutput) {
  QB_REQUIRE_CUDA();
  at::manual_seed(52);
  const c10::Device cuda(c10::kCUDA);
  const auto stream = at::cuda::getCurrentCUDAStream();
  for (const auto dtype : {at::kHalf, at::kBFloat16}) {
    for (const int64_t k : {64, 3592}) {
      const int64_t n = 301;
      const LlmInt8Quantized q = quantize_llm_int8(at::randn({n, k}) * 0.05);
      const DeviceWeights dw = device_weights(q, n, k, cuda);
      const kernels::Int8Weights& w = dw.w;
      const at::Tensor bias = at::randn({n}).to(cuda, dtype);
      for (const int64_t m : {1, 3, 8, 9, 17, 32, 33, 70}) {
        const at::Tensor x = activations(m, k).to(cuda, dtype);
        const at::Tensor ref = llm_int8_reference_matmul(x.to(at::kCPU), q.cb, q.scb, bias.to(at::kCPU), 6.0, at::kDouble);
        if (m <= kernels::kGemvMaxM) {
          const at::Tensor y = run_gemv(x, w, bias, 6.0f);
          EXPECT_LT(test::relative_error(y, ref), dtype == at::kHalf ? 2e-3 : 8e-3) << "gemv K " << k << " M " << m;
        }
        const size_t bytes = kernels::llm_int8_prefill_workspace_bytes(m, n, k, 1024);
        at::Tensor scratch = at::empty({static_cast<int64_t>(bytes)}, x.options().dtype(at::kByte));
        at::Tensor y = at::full({m, n}, NAN, x.options());
        kernels::llm_int8_prefill(at::cuda::getCurrentCUDABlasHandle(), half_of(dtype), x.data_ptr(), k, w,
                                  bias.data_ptr(), y.data_ptr(), n, m, 6.0f, scratch.data_ptr(), bytes, 1024, stream);
        EXPECT_LT(test::relative_error(y, ref), dtype == at::kHalf ? 3e-3 : 1.2e-2) << "prefill K " << k << " M " << m;
      }
    }
  }
}

// At M = 1 the GEMV quantizes its row itself (no prep kernel); at M = 2 the prep kernel does. The same
// 16-warp kernel shape then sums the same int8 products and outlier terms in the same order, so a row
// computed alone equals, bit for bit, the same row computed twice at M = 2: this checks that the in-GEMV
// quantization gives exactly the prep kernel's CA, SCA and mask (thresholds 6 and 0, K past one block's loads).
// A grid of more than 16 blocks per SM (40000 rows, an LM head's size) runs the prep kernel at M = 1 too.
TEST(LlmInt8KernelsGpu, RowQuantizedInsideTheGemvMatchesThePrepKernel) {
  QB_REQUIRE_CUDA();
  at::manual_seed(53);
  const c10::Device cuda(c10::kCUDA);
  for (const auto dtype : {at::kHalf, at::kBFloat16}) {
    for (const auto& kn : {std::pair<int64_t, int64_t>{64, 77}, {3592, 77}, {18944, 77}, {64, 40000}}) {
      const int64_t k = kn.first, n = kn.second;
      const DeviceWeights dw = device_weights(quantize_llm_int8(at::randn({n, k}) * 0.05), n, k, cuda);
      const kernels::Int8Weights& w = dw.w;
      const at::Tensor row = activations(1, k).to(cuda, dtype);
      const at::Tensor rows = row.expand({2, k}).contiguous();
      for (const float threshold : {6.0f, 0.0f}) {
        const at::Tensor one = run_gemv(row, w, at::Tensor(), threshold);
        const at::Tensor two = run_gemv(rows, w, at::Tensor(), threshold);
        EXPECT_TRUE(at::equal(one[0], two[0])) << c10::toString(dtype) << " K " << k << " N " << n << " threshold "
                                               << threshold;
        EXPECT_TRUE(at::equal(two[0], two[1]));
      }
    }
  }
}

#endif  // QB_HAVE_CUDA

}  // namespace
}  // namespace qb::quant
