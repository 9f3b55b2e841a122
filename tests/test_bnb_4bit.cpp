// nf4 / fp4 against bitsandbytes' own output (tests/fixtures/bnb_4bit, made by scripts/gen_bnb_4bit_fixtures.py
// with the bnb 0.50.2 CPU package): packed bytes, absmax, double-quantized absmax and offset, dequantized values,
// and loading what bnb serializes. CPU only; the kernels are tested in test_bnb_4bit_gpu.cpp.
#include <ATen/ATen.h>
#include <ATen/Version.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>

#include "quantbench/core/error.h"
#include "quantbench/io/checkpoint.h"
#include "quantbench/io/safetensors.h"
#include "quantbench/quant/bnb_4bit.h"
#include "quantbench/quant/format.h"
#include "quantbench/quant/q4_linear.h"
#include "test_support.h"

namespace qb::quant {
namespace {

std::string fixture(const std::string& name) {
  return (std::filesystem::path(test::fixtures_dir()) / "bnb_4bit" / name).string();
}

// Byte equality; on a mismatch says where (first differing element) so a failure is diagnosable.
::testing::AssertionResult bitwise_equal(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.numel() != b.numel())
    return ::testing::AssertionFailure() << "dtype/numel " << a.scalar_type() << "/" << a.numel() << " vs "
                                         << b.scalar_type() << "/" << b.numel();
  const at::Tensor ca = a.contiguous().reshape({-1}), cb = b.contiguous().reshape({-1});
  if (std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0) return ::testing::AssertionSuccess();
  const at::Tensor diff = (ca.to(at::kDouble) != cb.to(at::kDouble)).nonzero();
  const int64_t i = diff.numel() > 0 ? diff[0][0].item<int64_t>() : -1;
  return ::testing::AssertionFailure() << diff.numel() << " elements differ, first at " << i << ": "
                                       << (i >= 0 ? ca[i].item<double>() : 0.0) << " vs "
                                       << (i >= 0 ? cb[i].item<double>() : 0.0);
}

struct Case {
  std::string name;
  Bnb4bitType type;
  int64_t blocksize;
  bool nested;
  bool native_matches_flat;
};

class Bnb4bitFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    file_ = std::make_unique<io::SafetensorsFile>(io::SafetensorsFile::open(fixture("cases.safetensors")));
    const auto meta = nlohmann::json::parse(file_->metadata().at("cases"));
    for (const auto& [name, m] : meta.items()) {
      cases_.push_back({name, m["quant_type"] == "nf4" ? Bnb4bitType::kNf4 : Bnb4bitType::kFp4,
                        m["blocksize"].get<int64_t>(), m["nested"].get<bool>(),
                        m["native_dequant_matches_flat"].get<bool>()});
    }
    fixture_capability_ = file_->metadata().at("cpu_capability");
  }
  at::Tensor get(const std::string& name) const { return file_->tensor(name).clone(); }

  std::unique_ptr<io::SafetensorsFile> file_;
  std::vector<Case> cases_;
  std::string fixture_capability_;
};

TEST_F(Bnb4bitFixture, CodebooksAndDynamicMapAreBnbs) {
  const auto& nf4 = bnb_4bit_codebook(Bnb4bitType::kNf4);
  const auto& fp4 = bnb_4bit_codebook(Bnb4bitType::kFp4);
  const auto& dyn = bnb_dynamic_map();
  EXPECT_TRUE(bitwise_equal(at::from_blob(const_cast<float*>(nf4.data()), {16}, at::kFloat), get("nf4_code")));
  EXPECT_TRUE(bitwise_equal(at::from_blob(const_cast<float*>(fp4.data()), {16}, at::kFloat), get("fp4_code")));
  EXPECT_TRUE(bitwise_equal(at::from_blob(const_cast<float*>(dyn.data()), {256}, at::kFloat), get("dynamic_map")));
}

// Packed codes and absmax (plain, or nested codes + nested absmax + offset) equal bnb's, byte for byte.
TEST_F(Bnb4bitFixture, QuantizeIsBitExact) {
  ASSERT_GE(cases_.size(), 8u);
  for (const Case& c : cases_) {
    SCOPED_TRACE(c.name);
    const at::Tensor input = get(c.name + ".input");
    const Bnb4bitState state = bnb_quantize_4bit(input, c.type, c.blocksize, c.nested);
    EXPECT_TRUE(bitwise_equal(state.packed, get(c.name + ".packed"))) << "packed codes differ";
    if (!c.nested) {
      EXPECT_TRUE(bitwise_equal(state.absmax, get(c.name + ".absmax"))) << "absmax differs";
      continue;
    }
    // The offset is a torch fp32 mean whose summation order follows the CPU kernel set; with the one the
    // fixture was made on it must match exactly.
    const float bnb_offset = get(c.name + ".nested_offset").item<float>();
    if (at::get_cpu_capability() == fixture_capability_) {
      EXPECT_EQ(state.nested_offset, bnb_offset);
      EXPECT_TRUE(bitwise_equal(state.absmax, get(c.name + ".absmax"))) << "nested codes differ";
      EXPECT_TRUE(bitwise_equal(state.nested_absmax, get(c.name + ".nested_absmax"))) << "nested absmax differs";
    } else {
      EXPECT_NEAR(state.nested_offset, bnb_offset, 4e-7 * std::abs(bnb_offset)) << "cpu " << at::get_cpu_capability();
    }
    // The nested step alone, from bnb's own absmax and offset: exact on any CPU.
    auto [codes, nested_absmax] = bnb_quantize_blockwise_dynamic(get(c.name + ".absmax_f32") - bnb_offset, 256);
    EXPECT_TRUE(bitwise_equal(codes, get(c.name + ".absmax"))) << "nested codes from bnb's offset differ";
    EXPECT_TRUE(bitwise_equal(nested_absmax, get(c.name + ".nested_absmax")));
  }
}

// Dequantizing bnb's own tensors gives bnb's (flat-block) fp32 values exactly.
TEST_F(Bnb4bitFixture, DequantizeIsBitExact) {
  for (const Case& c : cases_) {
    SCOPED_TRACE(c.name);
    const at::Tensor input = get(c.name + ".input");
    Bnb4bitState state;
    state.type = c.type;
    state.blocksize = c.blocksize;
    state.shape = {input.size(0), input.size(1)};
    state.packed = get(c.name + ".packed");
    state.absmax = get(c.name + ".absmax");
    state.nested = c.nested;
    if (c.nested) {
      state.nested_absmax = get(c.name + ".nested_absmax");
      state.nested_offset = get(c.name + ".nested_offset").item<float>();
      state.nested_code = get("dynamic_map");
    }
    const at::Tensor expected = get(c.name + ".dequant_f32");
    EXPECT_TRUE(bitwise_equal(bnb_dequantize_4bit(state), expected));
    FormatOptions options;
    Q4Linear linear(bnb_state_to_q4(state), std::nullopt, options, bnb_4bit_type_name(c.type));
    EXPECT_TRUE(bitwise_equal(linear.dequantize(), expected));
    // In the input dtype, what bnb's dequantize_4bit returns (its native CPU path agrees where flat blocks do).
    if (c.native_matches_flat) EXPECT_TRUE(bitwise_equal(expected.to(input.scalar_type()).to(at::kFloat),
                                                         linear.dequantize().to(input.scalar_type()).to(at::kFloat)));
  }
}

TEST(Bnb4bitSerialized, LoadsWhatBnbSaves) {
  const io::Checkpoint ckpt = io::Checkpoint::open(fixture("serialized"));
  const io::SafetensorsFile expected = io::SafetensorsFile::open(fixture("serialized_expected.safetensors"));
  const auto& nf4 = find_format("nf4");
  const auto& fp4 = find_format("fp4");
  const std::string up = "model.layers.0.mlp.up_proj", q = "model.layers.0.self_attn.q_proj";
  EXPECT_TRUE(nf4.has_serialized(ckpt, up));
  EXPECT_FALSE(fp4.has_serialized(ckpt, up));
  EXPECT_TRUE(fp4.has_serialized(ckpt, q));
  EXPECT_FALSE(nf4.has_serialized(ckpt, "model.layers.0.mlp.down_proj"));
  FormatOptions options;
  for (const auto& [format, prefix] : {std::pair{&nf4, up}, std::pair{&fp4, q}}) {
    const at::Tensor bias = ckpt.get(prefix + ".bias");
    auto linear = format->load_serialized(ckpt, prefix, bias, options);
    const at::Tensor w = expected.tensor(prefix + ".dequant_f32");
    EXPECT_TRUE(bitwise_equal(linear->dequantize(), w)) << prefix;
    const Bnb4bitState state = bnb_load_state(ckpt, prefix, prefix == up ? Bnb4bitType::kNf4 : Bnb4bitType::kFp4);
    EXPECT_EQ(state.shape, (std::vector<int64_t>{w.size(0), w.size(1)}));
    EXPECT_EQ(state.nested, prefix == up);
    // forward on the CPU: dequantize, then at::linear (fp32), against float64
    at::manual_seed(5);
    const at::Tensor x = at::randn({3, w.size(1)});
    const at::Tensor ref = at::linear(x.to(at::kDouble), w.to(at::kDouble), bias.to(at::kDouble));
    EXPECT_LT(test::relative_error(linear->forward(x), ref), 1e-6);
    // bytes held: codes + absmax (+ nested absmax, offsets, map) + bias
    const int64_t blocks = (w.numel() + state.blocksize - 1) / state.blocksize;
    const int64_t expect_bytes = (w.numel() + 1) / 2 + (state.nested ? blocks + 4 * ((blocks + 255) / 256) * 2 + 1024
                                                                      : 4 * blocks) + 4 * w.size(0);
    EXPECT_EQ(linear->weight_bytes(), expect_bytes);
  }
}

TEST(Bnb4bit, RejectsBadShapesAndBlocksizes) {
  const at::Tensor w = at::randn({8, 64});
  for (int64_t bs : {0, 16, 48, 8192}) {
    try {
      bnb_quantize_4bit(w, Bnb4bitType::kNf4, bs, false);
      ADD_FAILURE() << "blocksize " << bs << " accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput);
      EXPECT_NE(std::string(e.what()).find(std::to_string(bs)), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(bnb_quantize_4bit(at::randn({2, 3, 4}), Bnb4bitType::kFp4, 64, false), Error);
  EXPECT_THROW(bnb_quantize_4bit(at::randn({4, 4}).to(at::kDouble), Bnb4bitType::kFp4, 64, false), Error);
}

// Rows concatenate exactly when every part's blocks are whole (and, nested, a multiple of 256 blocks);
// otherwise the format falls back to running the parts side by side.
TEST(Bnb4bit, FuseConcatenatesWhenBlocksAlign) {
  at::manual_seed(7);
  FormatOptions options;
  for (bool nested : {false, true}) {
    options.double_quant = nested;
    const int64_t rows = nested ? 256 : 8;  // 256 rows x 64 = 256 blocks of 64
    std::vector<at::Tensor> weights;
    std::vector<LinearPtr> parts;
    for (int i = 0; i < 3; ++i) {
      weights.push_back(at::randn({rows, 64}) * 0.1);
      parts.push_back(find_format("nf4").quantize(weights.back(), i == 1 ? std::optional<at::Tensor>(at::randn({rows}))
                                                                         : std::nullopt,
                                                  options));
    }
    std::vector<at::Tensor> expected;
    for (auto& p : parts) expected.push_back(p->dequantize());
    auto fused = find_format("nf4").fuse(std::move(parts));
    EXPECT_NE(dynamic_cast<Q4Linear*>(fused.get()), nullptr) << "nested=" << nested;
    EXPECT_TRUE(at::equal(fused->dequantize(), at::cat(expected, 0)));
  }
  std::vector<LinearPtr> straddle;
  options.double_quant = false;
  for (int i = 0; i < 2; ++i) straddle.push_back(find_format("nf4").quantize(at::randn({3, 40}), std::nullopt, options));
  auto fused = find_format("nf4").fuse(std::move(straddle));
  EXPECT_EQ(dynamic_cast<Q4Linear*>(fused.get()), nullptr);
  EXPECT_EQ(fused->out_features(), 6);
}

TEST(Bnb4bit, NominalBitsPerWeight) {
  FormatOptions options;
  options.double_quant = false;
  EXPECT_DOUBLE_EQ(find_format("nf4").nominal_bits_per_weight(options), 4.5);
  options.double_quant = true;
  EXPECT_NEAR(find_format("fp4").nominal_bits_per_weight(options), 4.129, 1e-3);
}

}  // namespace
}  // namespace qb::quant
