// The "int8" weight-only format: quantization math on the CPU, the CPU forward, and (on a GPU) every
// forward path against the float64 reference.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "quantbench/core/env_switch.h"
#include "quantbench/core/error.h"
#include "quantbench/quant/format.h"
#include "quantbench/quant/int8.h"
#include "test_support.h"

namespace qb::quant {
namespace {

const Int8Linear& as_int8(const LinearPtr& linear) { return dynamic_cast<const Int8Linear&>(*linear); }

TEST(Int8Format, PerChannelScalesAndRoundHalfToEven) {
  // Row 0: absmax 127 -> scale 1, so q = round-half-even(w): 2.5 -> 2, 3.5 -> 4, -2.5 -> -2, 0.5 -> 0.
  // Row 1: all zero -> scale 0 and q 0 (dequantizes to 0, no NaN).
  // Row 2: absmax 2.54 -> scale 0.02; -2.54 / 0.02 rounds to -127 (clamped range [-127, 127]).
  at::Tensor w = at::zeros({3, 6});
  w[0] = at::tensor({2.5f, 3.5f, -2.5f, 0.5f, 127.0f, -1.49f});
  w[2] = at::tensor({-2.54f, 0.01f, 0.03f, 1.27f, 0.0f, 2.0f});
  const Int8Quantized q = quantize_int8(w, 0);
  EXPECT_EQ(q.q.sizes(), (std::vector<int64_t>{3, 16}));  // padded to 16 columns
  EXPECT_FLOAT_EQ(q.scales[0].item<float>(), 1.0f);
  EXPECT_EQ(q.scales[1].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(q.scales[2].item<float>(), 2.54f / 127.0f);
  const at::Tensor row0 = q.q[0].narrow(0, 0, 6).to(at::kInt);
  EXPECT_TRUE(at::equal(row0, at::tensor({2, 4, -2, 0, 127, -1}, at::kInt))) << row0;
  EXPECT_TRUE(at::equal(q.q[1], at::zeros({16}, at::kChar)));
  EXPECT_EQ(q.q[2][0].item<int>(), -127);
  EXPECT_TRUE(at::equal(q.q.narrow(1, 6, 10), at::zeros({3, 10}, at::kChar)));  // zero padding
  // Against the definition computed independently in float64 (no ties in this random draw).
  at::manual_seed(11);
  const at::Tensor r = at::randn({17, 40});
  const Int8Quantized qr = quantize_int8(r, 0);
  const at::Tensor scale = r.abs().amax({1}, true) / 127.0f;
  const at::Tensor expect = at::round(r / scale).clamp(-127, 127).to(at::kChar);
  EXPECT_TRUE(at::equal(qr.q.narrow(1, 0, 40), expect));
}

TEST(Int8Format, PerGroupScalesCoverPartialLastGroup) {
  at::manual_seed(12);
  at::Tensor w = at::randn({5, 200});
  w[3].narrow(0, 128, 72).zero_();  // a zero group -> scale 0
  const Int8Quantized q = quantize_int8(w, 128);
  ASSERT_EQ(q.scales.sizes(), (std::vector<int64_t>{5, 2}));
  EXPECT_EQ(q.scales[3][1].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(q.scales[0][1].item<float>(), w[0].narrow(0, 128, 72).abs().max().item<float>() / 127.0f);
  FormatOptions options;
  options.int8_per_group = true;
  options.group_size = 128;
  auto linear = find_format("int8").quantize(w, std::nullopt, options);
  const at::Tensor deq = linear->dequantize();
  EXPECT_TRUE(at::isfinite(deq).all().item<bool>());
  // Round-to-nearest: every weight within half a step of its group's scale.
  const at::Tensor step = q.scales.repeat_interleave(128, 1).narrow(1, 0, 200);
  EXPECT_TRUE(((deq - w).abs() <= step * 0.5001 + 1e-7).all().item<bool>());
  EXPECT_EQ(linear->weight_bytes(), 5 * 208 + 5 * 2 * 4);
}

TEST(Int8Format, CpuForwardIsDequantizeThenLinear) {
  at::manual_seed(13);
  const at::Tensor w = at::randn({37, 53});
  const at::Tensor b = at::randn({37});
  const at::Tensor x = at::randn({2, 3, 53});
  auto linear = find_format("int8").quantize(w, b, FormatOptions{});
  const at::Tensor y = linear->forward(x);
  const at::Tensor ref = at::linear(x.to(at::kDouble), linear->dequantize().to(at::kDouble), b.to(at::kDouble));
  EXPECT_EQ(y.sizes(), ref.sizes());
  EXPECT_LT(test::relative_error(y, ref), 1e-6);  // fp32 arithmetic on the same dequantized weights
  // The quantization itself: per-channel int8 of Gaussian rows keeps ~1% relative weight error.
  EXPECT_LT(test::relative_error(linear->dequantize(), w), 0.02);
  EXPECT_EQ(linear->weight_bytes(), 37 * 64 + 37 * 4 + 37 * 4);
  EXPECT_EQ(linear->format_name(), "int8");
}

TEST(Int8Format, FuseConcatenatesRowsScalesAndBiases) {
  at::manual_seed(14);
  for (bool per_group : {false, true}) {
    FormatOptions options;
    options.int8_per_group = per_group;
    options.group_size = 64;
    std::vector<LinearPtr> parts;
    std::vector<at::Tensor> expected;
    for (int64_t rows : {8, 4, 6}) {
      const at::Tensor w = at::randn({rows, 100});
      // Only the middle part has a bias: the others get zeros.
      std::optional<at::Tensor> bias;
      if (rows == 4) bias = at::randn({4});
      parts.push_back(find_format("int8").quantize(w, bias, options));
      expected.push_back(parts.back()->dequantize());
    }
    auto fused = find_format("int8").fuse(std::move(parts));
    EXPECT_EQ(fused->out_features(), 18);
    EXPECT_TRUE(at::equal(fused->dequantize(), at::cat(expected, 0)));
    const auto& layer = as_int8(fused);
    ASSERT_TRUE(layer.has_bias());
    EXPECT_EQ(layer.bias().narrow(0, 0, 8).abs().sum().item<float>(), 0.0f);
  }
}

TEST(Int8Format, ShapeErrorsNameTheProblem) {
  try {
    find_format("int8").quantize(at::randn({4}), std::nullopt, FormatOptions{});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("2-D"), std::string::npos) << e.what();
  }
  auto linear = find_format("int8").quantize(at::randn({4, 8}), std::nullopt, FormatOptions{});
  try {
    linear->forward(at::randn({2, 9}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("9 features"), std::string::npos) << e.what();
  }
  at::Tensor bad = at::randn({3, 8});
  bad[1][2] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(quantize_int8(bad, 0), Error);
}

// Every CUDA path against float64 on the dequantized weights and the 16-bit-rounded input. The kernel
// multiplies exact operands (int8 -> 16-bit is exact) and accumulates in fp32; the error is the final
// rounding to the output dtype (2^-11 fp16, 2^-8 bf16, relative) and, for per-group weights on the
// prefill path, the 16-bit rounding of q * s (2^-9 bf16 per weight, averaging down over K).
TEST(Int8FormatGpu, EveryPathMatchesReference) {
  QB_REQUIRE_CUDA();
  at::manual_seed(15);
  struct Shape {
    int64_t K, N;
  };
  const std::vector<Shape> shapes = {{3584 + 8, 301}, {4104, 64}, {257 * 8, 37}, {257, 45}, {64, 16}};
  for (const auto dtype : {at::kHalf, at::kBFloat16}) {
    const double bound = dtype == at::kHalf ? 2e-3 : 8e-3;
    for (const int64_t group : {int64_t{0}, int64_t{128}}) {
      for (const Shape& s : shapes) {
        FormatOptions options;
        options.device = c10::Device(c10::kCUDA);
        options.activation_dtype = dtype;
        options.int8_per_group = group > 0;
        options.group_size = group;
        const at::Tensor w = at::randn({s.N, s.K}) * 0.05;
        const at::Tensor b = at::randn({s.N});
        auto linear = find_format("int8").quantize(w, b, options);
        const auto& layer = as_int8(linear);
        const at::Tensor wd = linear->dequantize().to(at::kDouble);
        const at::Tensor bd = b.to(dtype).to(at::kDouble);
        for (const int64_t m : {1, 3, 8, 9, 16, 17, 32, 33, 64}) {
          const at::Tensor x = at::randn({m, s.K}).to(options.device, dtype);
          const at::Tensor ref = at::linear(x.to(at::kCPU, at::kDouble), wd, bd);
          for (const auto path : {Int8KernelPath::kAuto, Int8KernelPath::kGemv, Int8KernelPath::kPrefill,
                                  Int8KernelPath::kGeneric}) {
            if (path == Int8KernelPath::kGemv && m > 32) continue;
            const at::Tensor y = layer.forward_with(x, path);
            ASSERT_EQ(y.sizes(), ref.sizes());
            ASSERT_EQ(y.scalar_type(), dtype);
            EXPECT_LT(test::relative_error(y, ref), bound)
                << c10::toString(dtype) << " group " << group << " K " << s.K << " N " << s.N << " M " << m
                << " path " << static_cast<int>(path);
          }
        }
      }
    }
  }
}

// prepare(M) (the 16-bit W dequantized on the layer's second stream), then forward(M): the dequantize-then-cuBLAS
// output bit for bit, the prepared weight used once (a forward of another size leaves it; the next forward of M takes
// it). Per-group weights never take the fused kernel, and M = 1024 is past its range, so there the preparation is
// certain to run (for per-channel weights at 1024 unless QB_INT8_WGMMA forces the fused kernel: then nothing is
// prepared and the outputs must still agree); at M = 100 whichever path the policy picks must agree too; at M = 16
// (the GEMV) nothing is prepared. K = 257 takes the padded activation width.
TEST(Int8FormatGpu, PreparedWeightGivesTheSameOutput) {
  QB_REQUIRE_CUDA();
  const bool forced = env_equals("QB_INT8_WGMMA", "1") || env_equals("QB_INT8_WGMMA", "rs");
  at::manual_seed(16);
  for (const auto dtype : {at::kHalf, at::kBFloat16}) {
    for (const int64_t group : {int64_t{0}, int64_t{128}}) {
      for (const int64_t K : {int64_t{512}, int64_t{257}}) {
        FormatOptions options;
        options.device = c10::Device(c10::kCUDA);
        options.activation_dtype = dtype;
        options.int8_per_group = group > 0;
        options.group_size = group;
        const int64_t N = 320;
        auto linear = find_format("int8").quantize(at::randn({N, K}) * 0.05, at::randn({N}), options);
        const auto& layer = as_int8(linear);
        for (const int64_t M : {int64_t{1024}, int64_t{100}, int64_t{16}}) {
          const std::string what = std::string(c10::toString(dtype)) + " group " + std::to_string(group) + " K " +
                                   std::to_string(K) + " M " + std::to_string(M);
          const bool certain = M > 32 && (group > 0 || (!forced && M == 1024));
          const at::Tensor x = at::randn({M, K}).to(options.device, dtype);
          const at::Tensor x_fewer = x.narrow(0, 0, M - 4);
          const at::Tensor plain = linear->forward(x), plain_fewer = linear->forward(x_fewer);
          linear->prepare(M + 16);  // replaced by the next prepare
          linear->prepare(M);
          if (certain) EXPECT_EQ(layer.prepared_rows(), M) << what;
          if (M <= 32) EXPECT_EQ(layer.prepared_rows(), 0) << what;
          const at::Tensor prepared = linear->forward(x);
          EXPECT_EQ(layer.prepared_rows(), 0) << what;
          EXPECT_TRUE(at::equal(plain, prepared)) << what;
          linear->prepare(M);
          EXPECT_TRUE(at::equal(linear->forward(x_fewer), plain_fewer)) << what;  // another size: not used, kept
          if (certain) EXPECT_EQ(layer.prepared_rows(), M) << what;
          EXPECT_TRUE(at::equal(linear->forward(x), plain)) << what;
          EXPECT_EQ(layer.prepared_rows(), 0) << what;
        }
      }
    }
  }
}

// Linear::decode_loads_weight_before_input: the int8 layer says yes where its decode GEMV takes the one-round form (K of
// 33..56 steps of 64, a resident grid, at most 8 rows), and no elsewhere: long K, many rows, a CPU layer, fp32 input.
TEST(Int8FormatGpu, SaysWhereItsDecodeKernelLoadsTheWholeWeightFirst) {
  QB_REQUIRE_CUDA();
  at::manual_seed(17);
  FormatOptions options;
  options.device = c10::Device(c10::kCUDA);
  options.activation_dtype = at::kBFloat16;
  // Qwen2-7B's o projection (3584 x 3584: 224 blocks, 56 steps) and its down projection (K = 18944: 296 steps).
  auto o = find_format("int8").quantize(at::randn({3584, 3584}) * 0.02, std::nullopt, options);
  auto down = find_format("int8").quantize(at::randn({3584, 18944}) * 0.02, std::nullopt, options);
  for (const auto dtype : {at::kHalf, at::kBFloat16}) {
    EXPECT_TRUE(o->decode_loads_weight_before_input(1, dtype));
    EXPECT_TRUE(o->decode_loads_weight_before_input(8, dtype));
    EXPECT_FALSE(o->decode_loads_weight_before_input(9, dtype));
    EXPECT_FALSE(down->decode_loads_weight_before_input(1, dtype));
  }
  EXPECT_FALSE(o->decode_loads_weight_before_input(1, at::kFloat));
  auto cpu = find_format("int8").quantize(at::randn({64, 3584}) * 0.02, std::nullopt, FormatOptions{});
  EXPECT_FALSE(cpu->decode_loads_weight_before_input(1, at::kBFloat16));
}

}  // namespace
}  // namespace qb::quant
