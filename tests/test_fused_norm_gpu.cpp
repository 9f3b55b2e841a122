// The RMSNorm a decode GEMV applies to its own input row (kernels/row_norm.h, quant/fused_norm.h) against the
// unfused path (add_norm kernel, then the layer's forward): bit-identical outputs and residuals, for every format
// whose GEMV fuses it (fp16, bf16, int8, nf4, fp4, awq) and the ones that fall back (llm.int8), fresh random
// inputs, hidden sizes of one and several norm chunks, odd N, with and without a delta to add.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "test_support.h"

#include "quantbench/model/blocks.h"
#include "quantbench/quant/format.h"
#include "quantbench/quant/fused_norm.h"

namespace qb {
namespace {

struct Case {
  const char* format;
  int64_t hidden, out;
  bool fuses;  // whether the format's GEMV takes the norm (else it falls back and nothing is fused)
};

TEST(FusedNormGpu, GemvNormalisesItsRowBitForBitAsTheNormKernel) {
  QB_REQUIRE_CUDA();
  ASSERT_TRUE(quant::fused_norm_enabled()) << "QB_FUSED_NORM=0 is set: this test checks the fused path";
  at::manual_seed(static_cast<uint64_t>(std::random_device{}()));
  const auto cuda = at::TensorOptions().device(at::kCUDA);
  for (const Case c : {Case{"fp16", 2048, 2560, true}, Case{"bf16", 3584, 77, true}, Case{"int8", 3584, 4608, true},
                       Case{"int8", 1024, 333, true}, Case{"nf4", 2048, 2560, true}, Case{"nf4", 3584, 200, true},
                       Case{"fp4", 4096, 96, true}, Case{"awq", 3584, 512, true}, Case{"llm.int8", 2048, 160, false},
                       Case{"bf16", 8192, 64, true}, Case{"nf4", 8200, 64, false}}) {
    for (at::ScalarType type : {at::kHalf, at::kBFloat16}) {
      if ((std::string(c.format) == "fp16" && type != at::kHalf) || (std::string(c.format) == "bf16" && type != at::kBFloat16))
        continue;
      for (bool with_delta : {true, false}) {
        SCOPED_TRACE(::testing::Message() << c.format << " hidden=" << c.hidden << " N=" << c.out << " "
                                          << c10::toString(type) << (with_delta ? " +delta" : ""));
        quant::FormatOptions options;
        options.activation_dtype = type;
        options.device = c10::Device(at::kCUDA);
        options.group_size = 128;
        const at::Tensor w = at::randn({c.out, c.hidden}) * 0.05;
        const quant::LinearPtr linear = quant::find_format(c.format).quantize(w, std::nullopt, options);
        const at::Tensor gamma = (at::rand({c.hidden}, cuda) * 2.0).to(type);
        const model::Norm norm(NormKind::kRmsNorm, gamma, std::nullopt, 1e-6);
        const at::Tensor residual = (at::randn({1, 1, c.hidden}, cuda) * 3.0).to(type);
        const at::Tensor delta = with_delta ? (at::randn({1, 1, c.hidden}, cuda) * 3.0).to(type) : at::Tensor();

        at::Tensor r_ref = residual.clone();
        const at::Tensor y_ref = linear->forward(norm.add_forward(r_ref, delta));
        at::Tensor r_fused = residual.clone();
        const void* before = r_fused.data_ptr();
        const at::Tensor y_fused = linear->forward_normed(norm.input(r_fused, delta));
        ASSERT_EQ(y_fused.sizes(), y_ref.sizes());
        EXPECT_TRUE(at::equal(y_fused, y_ref)) << "max |diff| "
                                               << (y_fused.to(at::kFloat) - y_ref.to(at::kFloat)).abs().max().item<float>();
        EXPECT_TRUE(at::equal(r_fused, r_ref));
        // With a delta the fused path hands back a new residual tensor; the fallback updates it in place.
        if (with_delta) EXPECT_EQ(r_fused.data_ptr() != before, c.fuses);
      }
    }
  }
}

}  // namespace
}  // namespace qb
