// Linear::forward_gated: the decode kernels' gated epilogue (act(gate) * up written by the GEMV itself) against
// forward() followed by the CUDA activation kernel, which is what the model ran before. The claim is bit equality,
// so the check is on every element, for every format that implements it (dense; nf4 / fp4 with fp32, 16-bit and
// nested absmax; awq), both 16-bit activation types, two activations, bias or not, and grids of one block per
// tile pair as well as persistent grids (more pairs than resident blocks).
// Where a format cannot take the input (the CPU, too many rows, a gate/up split off its 16-row tiles, fp32
// activations), forward_gated must decline with an undefined tensor, never compute something else.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "quantbench/quant/format.h"
#include "quantbench/quant/linear.h"
#include "test_support.h"

#ifdef QB_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>

#include "quantbench/kernels/decode_ops.h"
#endif

namespace qb::quant {
namespace {

// A layer of `format` for these tests: blocksize / awq group `block` (int8: per-group scales of `block` columns
// where block > 0, else per channel), double quantization as asked.
LinearPtr make_layer(const char* format, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                     c10::Device device, at::ScalarType act, bool double_quant = false, int64_t block = 128) {
  FormatOptions options = test::format_options(device, act, double_quant, block);
  options.int8_per_group = std::string(format) == "int8" && block > 0;
  return find_format(format).quantize(weight, bias, options);
}

TEST(GatedEpilogue, CpuLayersDecline) {
  at::manual_seed(5);
  const at::Tensor weight = at::randn({64, 128}) * 0.05;
  for (const char* format : {"fp32", "int8", "nf4", "awq"}) {
    auto linear = make_layer(format, weight, std::nullopt, c10::kCPU, at::kFloat, false, 64);
    const at::Tensor x = at::randn({1, 128});
    EXPECT_FALSE(linear->forward_gated(x, GateActivation::kSilu).defined()) << format;
  }
}

#ifdef QB_HAVE_CUDA

kernels::ActType kernel_act(GateActivation act) {
  return act == GateActivation::kSilu ? kernels::ActType::kSilu : kernels::ActType::kGeluTanh;
}

// What the model computed before the epilogue existed: the linear, then the activation kernel.
at::Tensor forward_then_activation(const Linear& linear, const at::Tensor& x, GateActivation act) {
  const at::Tensor h = linear.forward(x).contiguous();
  const int64_t inter = h.size(-1) / 2, rows = h.numel() / h.size(-1);
  at::Tensor out = at::empty({rows, inter}, h.options());
  kernels::activation(h.data_ptr(), out.data_ptr(), rows, inter, true, kernel_act(act),
                      h.scalar_type() == at::kHalf ? kernels::DType::kF16 : kernels::DType::kBF16,
                      at::cuda::getCurrentCUDAStream());
  return out.view({x.size(0), inter});
}

// The dense gated form splits K over 8 warps a block, the ungated one over 16, so at K long enough for a warp to take
// more than one step the two sum a row in different orders: equal within rounding, not bit for bit. K = 2048 (64 steps
// of 32): the gated form also loads each round's x ahead of its steps (gemv_x_load), the path TinyLlama's layers take.
TEST(GatedEpilogueGpu, DenseAtLongKIsForwardThenActivationWithinRounding) {
  QB_REQUIRE_CUDA();
  at::manual_seed(78);
  const c10::Device cuda(c10::kCUDA);
  for (const int64_t inter : {int64_t{48}, int64_t{4608}}) {
    const at::Tensor weight = at::randn({2 * inter, 2048}) * 0.05;
    for (const at::ScalarType dtype : {at::kHalf, at::kBFloat16}) {
      auto linear = make_layer(dtype == at::kHalf ? "fp16" : "bf16", weight, std::nullopt, cuda, dtype, false, 0);
      for (const int64_t m : {1, 2}) {  // dense layers take their GEMV up to 2 rows (dense_matmul.cpp)
        const at::Tensor x = at::randn({m, 2048}).to(cuda, dtype);
        const at::Tensor fused = linear->forward_gated(x, GateActivation::kSilu);
        ASSERT_TRUE(fused.defined()) << "inter " << inter << " M " << m;
        const at::Tensor ref = forward_then_activation(*linear, x, GateActivation::kSilu);
        ASSERT_EQ(fused.sizes(), ref.sizes());
        EXPECT_LT(test::relative_error(fused.to(at::kFloat), ref.to(at::kFloat)), dtype == at::kHalf ? 2e-3 : 8e-3)
            << "inter " << inter << " M " << m << " " << c10::toString(dtype);
        EXPECT_FALSE(at::isnan(fused).any().item<bool>());
      }
    }
  }
}

TEST(GatedEpilogueGpu, EveryFormatIsForwardThenActivationBitForBit) {
  QB_REQUIRE_CUDA();
  at::manual_seed(77);
  const c10::Device cuda(c10::kCUDA);
  struct Case {
    const char* format;
    bool double_quant;
    int64_t block;  // nf4 / fp4 blocksize, awq group
    int64_t K;
    std::vector<int64_t> ms;  // rows the format's decode kernel takes
  };
  const std::vector<Case> cases = {
      {"fp16", false, 0, 136, {1, 2}},     {"bf16", false, 0, 200, {1, 2}},
      {"nf4", false, 64, 256, {1, 5, 8}},  {"nf4", true, 64, 192, {1, 3}},    {"fp4", false, 128, 256, {1, 8}},
      {"awq", false, 128, 256, {1, 4}},
      // int8 in each of its M <= 8 forms: 4 steps of 64 (16 x 2 rounds), 56 (one round where the grid is resident),
      // 100 (pipelined where resident); per channel and per group.
      {"int8", false, 0, 256, {1, 5, 8}},  {"int8", false, 0, 3584, {1, 8}}, {"int8", false, 0, 6400, {1}},
      {"int8", false, 128, 3584, {1, 4}},
  };
  // inter 48: 3 tile pairs (one block per pair); inter 4608: 288 pairs, more than two blocks per SM of the 4-bit
  // kernel hold on 132 SMs, so its persistent grid walks several pairs per block.
  for (const Case& c : cases) {
    for (const int64_t inter : {int64_t{48}, int64_t{4608}}) {
      const at::Tensor weight = at::randn({2 * inter, c.K}) * 0.05;
      const at::Tensor bias = at::randn({2 * inter}) * 0.5;
      for (const at::ScalarType act_dtype : {at::kHalf, at::kBFloat16}) {
        const std::string format = c.format;
        if ((format == "fp16" && act_dtype != at::kHalf) || (format == "bf16" && act_dtype != at::kBFloat16)) continue;
        // The small case with weights in the activation dtype, as a model hands them over (nf4 / fp4 then keep a
        // 16-bit absmax), and a bias; the large one with fp32 weights (fp32 absmax) and none.
        const bool small = inter == 48;
        const at::Tensor w = small ? weight.to(act_dtype).to(at::kFloat) : weight;
        auto linear = make_layer(c.format, w, small ? std::optional<at::Tensor>(bias) : std::nullopt, cuda, act_dtype,
                                 c.double_quant, c.block);
        for (const int64_t m : c.ms) {
          for (const GateActivation act : {GateActivation::kSilu, GateActivation::kGeluTanh}) {
            const at::Tensor x = (at::randn({m, c.K}) * 2).to(cuda, act_dtype);
            const at::Tensor fused = linear->forward_gated(x, act);
            ASSERT_TRUE(fused.defined()) << format << " M " << m << " inter " << inter;
            const at::Tensor ref = forward_then_activation(*linear, x, act);
            ASSERT_EQ(fused.sizes(), ref.sizes());
            ASSERT_EQ(fused.scalar_type(), act_dtype);
            const int64_t differing = fused.ne(ref).sum().item<int64_t>();
            EXPECT_EQ(differing, 0) << format << " dq " << c.double_quant << " K " << c.K << " inter " << inter
                                    << " M " << m << " " << c10::toString(act_dtype) << " act " << static_cast<int>(act);
          }
        }
      }
    }
  }
}

TEST(GatedEpilogueGpu, DeclinesWhatItCannotTake) {
  QB_REQUIRE_CUDA();
  at::manual_seed(78);
  const c10::Device cuda(c10::kCUDA);
  const at::Tensor weight = at::randn({96, 256}) * 0.05;
  const at::Tensor off_tiles = at::randn({80, 256}) * 0.05;  // inter 40: the split is not on a 16-row tile
  for (const char* format : {"bf16", "nf4", "awq"}) {
    auto linear = make_layer(format, weight, std::nullopt, cuda, at::kBFloat16);
    auto odd = make_layer(format, off_tiles, std::nullopt, cuda, at::kBFloat16);
    const at::Tensor x1 = at::randn({1, 256}).to(cuda, at::kBFloat16);
    EXPECT_TRUE(linear->forward_gated(x1, GateActivation::kSilu).defined()) << format;
    EXPECT_FALSE(odd->forward_gated(x1, GateActivation::kSilu).defined()) << format;
    // More rows than the format takes the epilogue for: dense 2 (its GEMV's limit), 4-bit 8 (measured policy).
    const int64_t too_many = std::string(format) == "bf16" ? 3 : 9;
    const at::Tensor xm = at::randn({too_many, 256}).to(cuda, at::kBFloat16);
    EXPECT_FALSE(linear->forward_gated(xm, GateActivation::kSilu).defined()) << format;
  }
  // A dense layer as wide as Qwen2-7B's gate_up (N >= 16384) keeps the separate activation (dense_matmul.cpp).
  auto wide = make_layer("bf16", at::randn({16384, 64}), std::nullopt, cuda, at::kBFloat16);
  EXPECT_FALSE(wide->forward_gated(at::randn({1, 64}).to(cuda, at::kBFloat16), GateActivation::kSilu).defined());
  // int8 takes up to 8 rows (its one-token-tile forms); fp32 activations have no GEMV.
  auto int8 = make_layer("int8", weight, std::nullopt, cuda, at::kBFloat16, false, 0);
  auto int8_odd = make_layer("int8", off_tiles, std::nullopt, cuda, at::kBFloat16, false, 0);
  EXPECT_TRUE(int8->forward_gated(at::randn({8, 256}).to(cuda, at::kBFloat16), GateActivation::kSilu).defined());
  EXPECT_FALSE(int8->forward_gated(at::randn({9, 256}).to(cuda, at::kBFloat16), GateActivation::kSilu).defined());
  EXPECT_FALSE(int8_odd->forward_gated(at::randn({1, 256}).to(cuda, at::kBFloat16), GateActivation::kSilu).defined());
  auto fp32 = make_layer("fp32", weight, std::nullopt, cuda, at::kFloat);
  EXPECT_FALSE(fp32->forward_gated(at::randn({1, 256}).to(cuda), GateActivation::kSilu).defined());
}

#endif  // QB_HAVE_CUDA

}  // namespace
}  // namespace qb::quant
