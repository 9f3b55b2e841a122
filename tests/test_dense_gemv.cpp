// The dense decode GEMV (fp16/bf16), called directly with outputs poisoned with NaN, and through
// dense_matmul's dispatch. Reference: float64 matmul of the same 16-bit operands. The kernel
// multiplies exact products and accumulates in fp32; the error is the one output rounding (relative
// 2^-11 fp16, 2^-8 bf16 at most): bounds 2e-3 and 8e-3.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "quantbench/core/error.h"
#include "quantbench/quant/dense_matmul.h"
#include "test_support.h"

#ifdef QB_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>

#include "quantbench/kernels/dense_gemv.h"
#endif

namespace qb::quant {
namespace {

#ifdef QB_HAVE_CUDA

TEST(DenseGemvGpu, EveryMUpTo32WritesEveryOutput) {
  QB_REQUIRE_CUDA();
  at::manual_seed(31);
  const c10::Device cuda(c10::kCUDA);
  const auto stream = at::cuda::getCurrentCUDAStream();
  struct Shape {
    int64_t K, N;
  };
  for (const auto dtype : {at::kHalf, at::kBFloat16}) {
    const auto type = dtype == at::kHalf ? kernels::HalfType::kF16 : kernels::HalfType::kBF16;
    const double bound = dtype == at::kHalf ? 2e-3 : 8e-3;
    // Small grids take unroll 8 (3592 x 301, 2056 x 37), 4 (4104 x 64, 1544 x 100) or 2 (8 x 17); wide ones 2,
    // pipelined where every block is resident at once and a warp has >= 6 steps (3200 x 3000: 188 blocks on an
    // H100, 7 steps), else not (3584 x 4608).
    for (const Shape s : {Shape{3584 + 8, 301}, Shape{4104, 64}, Shape{257 * 8, 37}, Shape{1544, 100}, Shape{8, 17},
                          Shape{3200, 3000}, Shape{3584, 4608}}) {
      const at::Tensor w = (at::randn({s.N, s.K}) * 0.05).to(cuda, dtype);
      const at::Tensor bias = at::randn({s.N}).to(cuda, dtype);
      const at::Tensor wd = w.to(at::kCPU, at::kDouble);
      for (int64_t m = 1; m <= kernels::kGemvMaxM; m += (s.N > 1000 ? 7 : 1)) {
        const at::Tensor x = at::randn({m, s.K}).to(cuda, dtype);
        const bool with_bias = m % 2 == 1;
        at::Tensor y = at::full({m, s.N}, NAN, x.options());
        kernels::dense_gemv(type, x.data_ptr(), s.K, w.data_ptr(), s.K, with_bias ? bias.data_ptr() : nullptr,
                            y.data_ptr(), s.N, m, s.N, s.K, stream);
        const at::Tensor xd = x.to(at::kCPU, at::kDouble);
        const at::Tensor ref = with_bias ? at::linear(xd, wd, bias.to(at::kCPU, at::kDouble)) : at::linear(xd, wd);
        EXPECT_LT(test::relative_error(y, ref), bound) << c10::toString(dtype) << " K " << s.K << " N " << s.N
                                                       << " M " << m;
      }
    }
  }
}

TEST(DenseGemvGpu, StridedOutputLeavesOtherColumnsAlone) {
  QB_REQUIRE_CUDA();
  at::manual_seed(32);
  const c10::Device cuda(c10::kCUDA);
  const at::Tensor w = at::randn({50, 64}).to(cuda, at::kHalf);
  const at::Tensor x = at::randn({3, 64}).to(cuda, at::kHalf);
  at::Tensor y = at::full({3, 80}, 7.0, x.options());
  kernels::dense_gemv(kernels::HalfType::kF16, x.data_ptr(), 64, w.data_ptr(), 64, nullptr, y.data_ptr(), 80, 3, 50,
                      64, at::cuda::getCurrentCUDAStream());
  const at::Tensor ref = at::linear(x.to(at::kCPU, at::kDouble), w.to(at::kCPU, at::kDouble));
  EXPECT_LT(test::relative_error(y.narrow(1, 0, 50), ref), 2e-3);
  EXPECT_TRUE(at::equal(y.narrow(1, 50, 30).to(at::kCPU), at::full({3, 30}, 7.0, at::kHalf)));
}

TEST(DenseGemvGpu, DispatchThroughDenseMatmul) {
  QB_REQUIRE_CUDA();
  at::manual_seed(33);
  const c10::Device cuda(c10::kCUDA);
  for (const auto dtype : {at::kHalf, at::kBFloat16}) {
    const double bound = dtype == at::kHalf ? 2e-3 : 8e-3;
    // K = 250 (not a multiple of 8) must fall back to cuBLAS, not fail; [8192, 4096] is large
    // enough for the GEMV at M <= 2.
    struct Shape {
      int64_t N, K;
    };
    for (const Shape s : {Shape{96, 256}, Shape{96, 250}, Shape{8192, 4096}}) {
      const int64_t K = s.K;
      const at::Tensor w = (at::randn({s.N, K}) * 0.05).to(cuda, dtype);
      const at::Tensor b = at::randn({s.N}).to(cuda, dtype);
      for (const int64_t m : {1, 2, 5, 16, 17, 40}) {
        if (s.N > 1000 && m > 5) continue;
        const at::Tensor x = at::randn({m, 1, K}).to(cuda, dtype);
        const at::Tensor y = dense_matmul(x, w, b);
        const at::Tensor ref =
            at::linear(x.to(at::kCPU, at::kDouble), w.to(at::kCPU, at::kDouble), b.to(at::kCPU, at::kDouble));
        ASSERT_EQ(y.sizes(), ref.sizes());
        EXPECT_LT(test::relative_error(y, ref), bound) << "K " << K << " M " << m;
      }
    }
  }
}

TEST(DenseGemvGpu, WrapperRejectsBadOperands) {
  QB_REQUIRE_CUDA();
  const c10::Device cuda(c10::kCUDA);
  const at::Tensor w = at::randn({16, 64}).to(cuda, at::kHalf);
  const at::Tensor x = at::randn({40, 64}).to(cuda, at::kHalf);
  at::Tensor y = at::empty({40, 16}, x.options());
  const auto stream = at::cuda::getCurrentCUDAStream();
  EXPECT_THROW(kernels::dense_gemv(kernels::HalfType::kF16, x.data_ptr(), 64, w.data_ptr(), 64, nullptr, y.data_ptr(),
                                   16, 40, 16, 64, stream),
               Error);
  EXPECT_THROW(kernels::dense_gemv(kernels::HalfType::kF16, x.data_ptr(), 64, w.data_ptr(), 64, nullptr, y.data_ptr(),
                                   16, 1, 16, 60, stream),
               Error);
  EXPECT_FALSE(kernels::dense_gemv_supported(static_cast<char*>(x.data_ptr()) + 2, 64, w.data_ptr(), 64, 1, 64));
}

#endif  // QB_HAVE_CUDA

}  // namespace
}  // namespace qb::quant
