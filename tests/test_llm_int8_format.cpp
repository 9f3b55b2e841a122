// The "llm.int8" format against bitsandbytes' own outputs (tests/fixtures/bnb_int8, written by
// scripts/gen_bnb_int8_fixture.py with the bitsandbytes 0.50.2 CPU package): weight quantization bit
// for bit, loading bnb-serialized tensors, the algorithm's activation split, and the forward.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "quantbench/core/error.h"
#include "quantbench/io/checkpoint.h"
#include "quantbench/io/safetensors.h"
#include "quantbench/quant/format.h"
#include "quantbench/quant/llm_int8.h"
#include "test_support.h"

namespace qb::quant {
namespace {

namespace fs = std::filesystem;

std::string fixture_dir() { return (fs::path(test::fixtures_dir()) / "bnb_int8").string(); }
std::string model_dir() { return fixture_dir() + "/model"; }

const char* kLayers[] = {"layers.0.proj", "layers.1.proj"};

TEST(LlmInt8Format, QuantizeMatchesBitsandbytesBitForBit) {
  const io::Checkpoint model = io::Checkpoint::open(model_dir());
  const io::SafetensorsFile reference = io::SafetensorsFile::open(fixture_dir() + "/reference.safetensors");
  for (const char* prefix : kLayers) {
    const std::string p(prefix);
    const LlmInt8Quantized q = quantize_llm_int8(reference.tensor(p + ".dense_weight"));
    EXPECT_TRUE(at::equal(q.cb, model.get(p + ".weight"))) << p;
    EXPECT_TRUE(at::equal(q.scb, model.get(p + ".SCB"))) << p;
  }
}

TEST(LlmInt8Format, LoadsSerializedTensorsAndReproducesBnbForward) {
  const io::Checkpoint model = io::Checkpoint::open(model_dir());
  const io::SafetensorsFile reference = io::SafetensorsFile::open(fixture_dir() + "/reference.safetensors");
  const WeightFormat& format = find_format("llm.int8");
  for (const char* prefix : kLayers) {
    const std::string p(prefix);
    ASSERT_TRUE(format.has_serialized(model, p)) << p;
    std::optional<at::Tensor> bias;
    if (model.has(p + ".bias")) bias = model.get(p + ".bias");
    FormatOptions options;  // CPU, fp32 activations, threshold 6
    auto linear = format.load_serialized(model, p, bias, options);
    const auto& layer = dynamic_cast<const LlmInt8Linear&>(*linear);
    const at::Tensor cb = model.get(p + ".weight");
    EXPECT_TRUE(at::equal(layer.cb_padded().narrow(1, 0, cb.size(1)), cb));
    // int8_vectorwise_dequant: CB * SCB * (1/127) in fp32.
    const at::Tensor expect_deq = cb.to(at::kFloat) * model.get(p + ".SCB").unsqueeze(1) * 7.874015718698502e-3f;
    EXPECT_TRUE(at::equal(linear->dequantize(), expect_deq));

    // The forward: bnb's output is fp16 and rounds its int8 part and the outlier product separately;
    // ours (float64 here) rounds nothing, so they agree to fp16 rounding: relative 2^-11 per element.
    const at::Tensor x = reference.tensor(p + ".input");
    const at::Tensor bnb_out = reference.tensor(p + ".output");
    const at::Tensor ours = llm_int8_reference_matmul(x, layer.cb_padded(), layer.scb(), bias, 6.0, at::kDouble);
    EXPECT_LT(test::relative_error(ours, bnb_out), 2e-3) << p;
    const at::Tensor cpu_forward = linear->forward(x.to(at::kFloat));
    EXPECT_LT(test::relative_error(cpu_forward, ours), 1e-5) << p;
  }
}

TEST(LlmInt8Format, RejectsOtherWeightLayouts) {
  test::TempDir dir;
  const at::Tensor cb = at::randint(-127, 128, {4, 16}, at::kChar);
  const at::Tensor scb = at::rand({4}) + 0.5;
  for (const uint8_t code : {uint8_t{1}, uint8_t{3}}) {
    io::write_safetensors(dir.file("model.safetensors"),
                          {{"l.weight", cb}, {"l.SCB", scb}, {"l.weight_format", at::full({}, code, at::kByte)}});
    const io::Checkpoint checkpoint = io::Checkpoint::open(dir.path());
    try {
      find_format("llm.int8").load_serialized(checkpoint, "l", std::nullopt, FormatOptions{});
      FAIL() << "expected an error for weight_format " << int(code);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
      const std::string what = e.what();
      EXPECT_NE(what.find("l.weight_format"), std::string::npos) << what;
      EXPECT_NE(what.find(code == 1 ? "col32" : "col_ampere"), std::string::npos) << what;
    }
  }
  // A SCB of the wrong length names the tensor.
  io::write_safetensors(dir.file("model.safetensors"), {{"l.weight", cb}, {"l.SCB", at::rand({3})}});
  const io::Checkpoint checkpoint = io::Checkpoint::open(dir.path());
  try {
    find_format("llm.int8").load_serialized(checkpoint, "l", std::nullopt, FormatOptions{});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("l.SCB"), std::string::npos) << e.what();
  }
}

TEST(LlmInt8Format, ReferenceSplitsOutlierColumnsLikeBnb) {
  const io::SafetensorsFile reference = io::SafetensorsFile::open(fixture_dir() + "/reference.safetensors");
  const io::Checkpoint model = io::Checkpoint::open(model_dir());
  for (const char* prefix : kLayers) {
    const std::string p(prefix);
    const at::Tensor x = reference.tensor(p + ".input");
    // Columns bnb sent through 16 bits: the rest of the output must come from CA, SCA exactly, so a
    // weight that is zero in the outlier columns makes bnb's int8 part our whole result.
    const at::Tensor cols = reference.tensor(p + ".outlier_cols");
    at::Tensor cb = model.get(p + ".weight").clone();
    cb.index_fill_(1, cols, 0);
    const at::Tensor scb = model.get(p + ".SCB");
    const at::Tensor ca = reference.tensor(p + ".ca").to(at::kDouble);
    const at::Tensor sca = reference.tensor(p + ".sca").to(at::kDouble);
    const at::Tensor expect = at::matmul(ca, cb.to(at::kDouble).t()) * (sca.unsqueeze(1) * scb.to(at::kDouble)) *
                              static_cast<double>(6.200124e-05f);
    const at::Tensor ours = llm_int8_reference_matmul(x, cb, scb, std::nullopt, 6.0, at::kDouble);
    // sca * scb is an fp32 product in both (bnb: row_stats * col_stats): agreement to fp32 rounding.
    EXPECT_LT(test::relative_error(ours, expect), 1e-6) << p;
  }
}

TEST(LlmInt8Format, FuseAndThresholdZero) {
  at::manual_seed(41);
  FormatOptions options;
  std::vector<LinearPtr> parts;
  std::vector<at::Tensor> expected;
  for (int64_t rows : {6, 10}) {
    std::optional<at::Tensor> bias;
    if (rows == 10) bias = at::randn({10});
    parts.push_back(find_format("llm.int8").quantize(at::randn({rows, 40}), bias, options));
    expected.push_back(parts.back()->dequantize());
  }
  auto fused = find_format("llm.int8").fuse(std::move(parts));
  EXPECT_EQ(fused->out_features(), 16);
  EXPECT_TRUE(at::equal(fused->dequantize(), at::cat(expected, 0)));
  EXPECT_EQ(fused->weight_bytes(), 16 * 48 + 16 * 4 + 16 * 4);
  // threshold 0: no outlier split even for huge activations (bnb: SPARSE_DECOMP off).
  const auto& layer = dynamic_cast<const LlmInt8Linear&>(*fused);
  at::Tensor x = at::randn({3, 40});
  x[0][5] = 100.0f;
  const at::Tensor no_split = llm_int8_reference_matmul(x, layer.cb_padded(), layer.scb(), std::nullopt, 0.0, at::kDouble);
  const at::Tensor split = llm_int8_reference_matmul(x, layer.cb_padded(), layer.scb(), std::nullopt, 6.0, at::kDouble);
  const at::Tensor exact = at::linear(x.to(at::kDouble), fused->dequantize().to(at::kDouble));
  // With the split, row 0 keeps its precision; without, the 100 swamps row 0's int8 scale.
  EXPECT_LT(test::relative_error(split[0], exact[0]), test::relative_error(no_split[0], exact[0]));
}

// GPU paths against the float64 reference algorithm. The decode GEMV quantizes x exactly as the
// reference (same fp32 scale and rounding: CA identical), adds int32 dot products exactly and the
// outlier part in fp32, so the error is the output rounding: 2e-3 (fp16), 8e-3 (bf16). The prefill
// path feeds z = CA * SCA / 127 rounded to 16 bits to cuBLAS: one more rounding of each activation
// (2^-11 fp16, 2^-8 bf16 relative, averaging down over K): 3e-3 and 1.2e-2.
TEST(LlmInt8FormatGpu, GemvAndPrefillMatchReference) {
  QB_REQUIRE_CUDA();
  at::manual_seed(42);
  struct Shape {
    int64_t K, N;
  };
  for (const auto dtype : {at::kHalf, at::kBFloat16}) {
    for (const Shape s : {Shape{3584 + 8, 301}, Shape{4104, 64}, Shape{257 * 8, 37}, Shape{257, 45}}) {
      FormatOptions options;
      options.device = c10::Device(c10::kCUDA);
      options.activation_dtype = dtype;
      const at::Tensor b = at::randn({s.N});
      auto linear = find_format("llm.int8").quantize(at::randn({s.N, s.K}) * 0.05, b, options);
      const auto& layer = dynamic_cast<const LlmInt8Linear&>(*linear);
      for (const int64_t m : {1, 2, 7, 8, 9, 16, 31, 32, 33, 64}) {
        at::Tensor x = at::randn({m, s.K});
        // Outliers: a whole column, single elements, one exactly at the threshold.
        x.select(1, 7).mul_(9.0);
        x[0][s.K - 1] = 12.0f;
        x[m - 1][s.K / 2] = -6.0f;
        const at::Tensor xg = x.to(options.device, dtype);
        const at::Tensor ref =
            llm_int8_reference_matmul(xg.to(at::kCPU), layer.cb_padded(), layer.scb(), layer.bias(), 6.0, at::kDouble);
        for (const auto path : {LlmInt8KernelPath::kGemv, LlmInt8KernelPath::kPrefill, LlmInt8KernelPath::kAuto}) {
          if (path == LlmInt8KernelPath::kGemv && m > 32) continue;
          const at::Tensor y = layer.forward_with(xg, path);
          ASSERT_EQ(y.sizes(), ref.sizes());
          const bool prefill = path == LlmInt8KernelPath::kPrefill || (path == LlmInt8KernelPath::kAuto && m > 32);
          const double bound = dtype == at::kHalf ? (prefill ? 3e-3 : 2e-3) : (prefill ? 1.2e-2 : 8e-3);
          EXPECT_LT(test::relative_error(y, ref), bound) << c10::toString(dtype) << " K " << s.K << " N " << s.N
                                                          << " M " << m << " path " << static_cast<int>(path);
        }
      }
    }
  }
}

}  // namespace
}  // namespace qb::quant
