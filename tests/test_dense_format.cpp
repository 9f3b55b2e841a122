#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "quantbench/core/error.h"
#include "quantbench/quant/format.h"
#include "test_support.h"

namespace qb::quant {
namespace {

// fp32 on the CPU must be exact against at::linear in float64 up to float32 rounding.
TEST(DenseFormat, Fp32CpuMatchesFloat64Reference) {
  at::manual_seed(1);
  const at::Tensor weight = at::randn({37, 53});
  const at::Tensor bias = at::randn({37});
  const at::Tensor x = at::randn({3, 5, 53});
  FormatOptions options;
  auto linear = find_format("fp32").quantize(weight, bias, options);
  const at::Tensor y = linear->forward(x);
  const at::Tensor ref = at::linear(x.to(at::kDouble), weight.to(at::kDouble), bias.to(at::kDouble));
  EXPECT_EQ(y.sizes(), ref.sizes());
  EXPECT_LT(test::relative_error(y, ref), 1e-6);
  EXPECT_EQ(linear->weight_bytes(), (37 * 53 + 37) * 4);
  EXPECT_EQ(linear->format_name(), "fp32");
}

TEST(DenseFormat, FuseConcatenatesRowsAndBiases) {
  at::manual_seed(2);
  std::vector<LinearPtr> parts;
  std::vector<at::Tensor> weights;
  FormatOptions options;
  for (int64_t rows : {8, 4, 4}) {
    weights.push_back(at::randn({rows, 16}));
    parts.push_back(find_format("fp32").quantize(weights.back(), at::randn({rows}), options));
  }
  auto fused = find_format("fp32").fuse(std::move(parts));
  EXPECT_EQ(fused->out_features(), 16);
  EXPECT_TRUE(at::equal(fused->dequantize(), at::cat(weights, 0)));
}

TEST(DenseFormat, UnknownPrecisionListsSupported) {
  try {
    find_format("int3");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("fp16"), std::string::npos) << e.what();
  }
}

// fp16 and bf16 on the GPU against a float64 CPU reference on the same (rounded) operands.
TEST(DenseFormatGpu, HalfPrecisionMatchesReference) {
  QB_REQUIRE_CUDA();
  at::manual_seed(3);
  for (const char* name : {"fp16", "bf16"}) {
    for (int64_t m : {1, 3, 16, 77}) {
      const at::Tensor weight = at::randn({301, 257});
      const at::Tensor x = at::randn({m, 257});
      FormatOptions options;
      options.device = c10::Device(c10::kCUDA);
      options.activation_dtype = std::string(name) == "fp16" ? at::kHalf : at::kBFloat16;
      auto linear = find_format(name).quantize(weight, std::nullopt, options);
      const at::Tensor xq = x.to(options.device, options.activation_dtype);
      const at::Tensor y = linear->forward(xq);
      const at::Tensor ref = at::linear(xq.to(at::kCPU, at::kDouble), linear->dequantize().to(at::kDouble));
      // fp32 accumulation of rounded operands; the output rounding dominates: 2^-8 (bf16), 2^-11 (fp16).
      const double bound = std::string(name) == "fp16" ? 2e-3 : 8e-3;
      EXPECT_LT(test::relative_error(y, ref), bound) << name << " m=" << m;
    }
  }
}

}  // namespace
}  // namespace qb::quant
