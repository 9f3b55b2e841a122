// awq against the AutoAWQ-layout fixture (tests/fixtures/awq/tiny, scripts/gen_awq_fixture.py): loading and
// exact dequantization, RTN quantization and packing reproducing the checkpoint's tensors byte for byte,
// pack/unpack round trips, and the errors for shapes and configs the format does not take. CPU only.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "quantbench/core/error.h"
#include "quantbench/io/checkpoint.h"
#include "quantbench/io/safetensors.h"
#include "quantbench/quant/awq.h"
#include "quantbench/quant/format.h"
#include "test_support.h"

namespace qb::quant {
namespace {

std::string fixture_dir() { return (std::filesystem::path(test::fixtures_dir()) / "awq" / "tiny").string(); }

bool bitwise_equal(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const at::Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0;
}

const char* kLayers[] = {"model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj"};

TEST(AwqFixture, LoadsAndDequantizesExactly) {
  const io::Checkpoint ckpt = io::Checkpoint::open(fixture_dir());
  const io::SafetensorsFile expected = io::SafetensorsFile::open(fixture_dir() + "/expected.safetensors");
  const auto& awq = find_format("awq");
  FormatOptions options;
  for (const std::string prefix : kLayers) {
    SCOPED_TRACE(prefix);
    ASSERT_TRUE(awq.has_serialized(ckpt, prefix));
    EXPECT_FALSE(find_format("nf4").has_serialized(ckpt, prefix));
    const AwqUnpacked u = awq_unpack(ckpt.get(prefix + ".qweight"), ckpt.get(prefix + ".qzeros"),
                                     ckpt.get(prefix + ".scales"));
    EXPECT_TRUE(bitwise_equal(u.int_weight, expected.tensor(prefix + ".q")));
    EXPECT_TRUE(bitwise_equal(u.zeros, expected.tensor(prefix + ".zeros")));
    std::optional<at::Tensor> bias;
    if (ckpt.has(prefix + ".bias")) bias = ckpt.get(prefix + ".bias");
    auto linear = awq.load_serialized(ckpt, prefix, bias, options);
    const at::Tensor w = expected.tensor(prefix + ".dequant_f32");
    EXPECT_TRUE(bitwise_equal(linear->dequantize(), w));
    at::manual_seed(3);
    const at::Tensor x = at::randn({4, w.size(1)});
    const at::Tensor ref = bias.has_value() ? at::linear(x.to(at::kDouble), w.to(at::kDouble), bias->to(at::kDouble))
                                            : at::linear(x.to(at::kDouble), w.to(at::kDouble));
    EXPECT_LT(test::relative_error(linear->forward(x), ref), 1e-6);
    // bytes: codes (4 bits) + one fp32 absmax-free word per (row, group) holds scale and zero + bias (fp32 here)
    const int64_t groups = w.size(1) / (w.size(1) / u.scales.size(1));
    EXPECT_EQ(linear->weight_bytes(), w.numel() / 2 + 2 * w.size(0) * groups + w.size(0) * groups +
                                          (bias.has_value() ? 4 * w.size(0) : 0));
  }
}

// RTN from the dense fp16 weight gives the checkpoint's integers, zeros and scales, and packing them gives its
// qweight / qzeros / scales byte for byte.
TEST(AwqFixture, QuantizeAndPackReproduceTheCheckpoint) {
  const io::Checkpoint ckpt = io::Checkpoint::open(fixture_dir());
  const io::SafetensorsFile expected = io::SafetensorsFile::open(fixture_dir() + "/expected.safetensors");
  for (const std::string prefix : kLayers) {
    SCOPED_TRACE(prefix);
    const at::Tensor dense = expected.tensor(prefix + ".dense");
    const at::Tensor scales_ckpt = ckpt.get(prefix + ".scales");
    const int64_t group = dense.size(1) / scales_ckpt.size(0);
    const AwqUnpacked u = awq_quantize_rtn(dense, group);
    EXPECT_TRUE(bitwise_equal(u.int_weight, expected.tensor(prefix + ".q")));
    EXPECT_TRUE(bitwise_equal(u.zeros, expected.tensor(prefix + ".zeros")));
    const AwqPacked p = awq_pack(u.int_weight, u.zeros, u.scales);
    EXPECT_TRUE(bitwise_equal(p.qweight, ckpt.get(prefix + ".qweight")));
    EXPECT_TRUE(bitwise_equal(p.qzeros, ckpt.get(prefix + ".qzeros")));
    EXPECT_TRUE(bitwise_equal(p.scales, scales_ckpt));
    FormatOptions options;
    options.group_size = group;
    auto linear = find_format("awq").quantize(dense, std::nullopt, options);
    EXPECT_TRUE(bitwise_equal(linear->dequantize(), expected.tensor(prefix + ".dequant_f32")));
  }
}

TEST(Awq, PackUnpackRoundTrip) {
  at::manual_seed(11);
  const int64_t out = 24, in = 192, groups = 3;
  const at::Tensor q = at::randint(0, 16, {out, in}, at::kByte);
  const at::Tensor z = at::randint(0, 16, {out, groups}, at::kByte);
  const at::Tensor s = (at::rand({out, groups}) * 0.01 + 1e-3).to(at::kHalf);
  const AwqPacked p = awq_pack(q, z, s);
  EXPECT_EQ(p.qweight.sizes(), at::IntArrayRef({in, out / 8}));
  EXPECT_EQ(p.qzeros.sizes(), at::IntArrayRef({groups, out / 8}));
  EXPECT_EQ(p.scales.sizes(), at::IntArrayRef({groups, out}));
  // nibble order: output 8c + r lives in nibble [0, 4, 1, 5, 2, 6, 3, 7][r]
  const uint32_t word0 = static_cast<uint32_t>(p.qweight[5][1].item<int32_t>());
  const int reverse[8] = {0, 4, 1, 5, 2, 6, 3, 7};
  for (int r = 0; r < 8; ++r) EXPECT_EQ((word0 >> (4 * reverse[r])) & 15, q[8 + r][5].item<uint8_t>());
  const AwqUnpacked u = awq_unpack(p.qweight, p.qzeros, p.scales);
  EXPECT_TRUE(bitwise_equal(u.int_weight, q));
  EXPECT_TRUE(bitwise_equal(u.zeros, z));
  EXPECT_TRUE(bitwise_equal(u.scales, s));
}

void expect_invalid(const std::function<void()>& body, ErrorKind kind, const std::string& needle) {
  try {
    body();
    ADD_FAILURE() << "expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Awq, ShapeErrorsNameTheConstraint) {
  FormatOptions options;
  options.group_size = 128;
  expect_invalid([&] { find_format("awq").quantize(at::randn({16, 200}), std::nullopt, options); },
                 ErrorKind::kInvalidInput, "not a multiple of the group size 128");
  // Any out_features runs (groups run along in_features) and dequantizes to (q - zero) * scale of the RTN
  // quantization; only AutoAWQ's packing needs a multiple of 8, and two codes must share each byte.
  const at::Tensor w13 = at::randn({13, 256});
  const auto odd = find_format("awq").quantize(w13, std::nullopt, options);
  const AwqUnpacked u = awq_quantize_rtn(w13, 128);
  const at::Tensor expected = ((u.int_weight.to(at::kFloat).view({13, 2, 128}) - u.zeros.to(at::kFloat).unsqueeze(-1)) *
                               u.scales.to(at::kFloat).unsqueeze(-1)).view({13, 256});
  EXPECT_TRUE(at::equal(odd->dequantize().to(at::kFloat), expected));
  FormatOptions g1;
  g1.group_size = 1;
  expect_invalid([&] { find_format("awq").quantize(at::randn({3, 5}), std::nullopt, g1); }, ErrorKind::kInvalidInput,
                 "odd number of elements");
  expect_invalid([&] { awq_pack(at::zeros({12, 64}), at::zeros({12, 1}), at::zeros({12, 1})); },
                 ErrorKind::kInvalidInput, "multiple of 8");
}

TEST(Awq, UnsupportedConfigsNameTheConfig) {
  const std::string src = "some/config.json";
  nlohmann::json qc = {{"quant_method", "awq"}, {"bits", 4}, {"group_size", 128}, {"zero_point", true},
                       {"version", "GEMM"}};
  EXPECT_EQ(awq_check_quantization_config(qc, src), 128);
  auto with = [&](const char* key, nlohmann::json value) {
    nlohmann::json c = qc;
    c[key] = value;
    return c;
  };
  expect_invalid([&] { awq_check_quantization_config(with("version", "gemv"), src); }, ErrorKind::kUnsupported,
                 "some/config.json");
  expect_invalid([&] { awq_check_quantization_config(with("bits", 8), src); }, ErrorKind::kUnsupported, "bits is 8");
  expect_invalid([&] { awq_check_quantization_config(with("zero_point", false), src); }, ErrorKind::kUnsupported,
                 "zero_point");
  expect_invalid([&] { awq_check_quantization_config(with("quant_method", "gptq"), src); }, ErrorKind::kUnsupported,
                 "gptq");
  // a checkpoint with AWQ tensors whose config says gemv: load_serialized refuses, naming the config
  test::TempDir dir;
  std::filesystem::copy(fixture_dir() + "/model.safetensors", dir.file("model.safetensors"));
  nlohmann::json config = nlohmann::json::parse(std::ifstream(fixture_dir() + "/config.json"));
  config["quantization_config"]["version"] = "gemv";
  std::ofstream(dir.file("config.json")) << config.dump();
  const io::Checkpoint ckpt = io::Checkpoint::open(dir.path());
  expect_invalid([&] { find_format("awq").load_serialized(ckpt, kLayers[0], std::nullopt, FormatOptions()); },
                 ErrorKind::kUnsupported, "config.json");
}

TEST(Awq, FuseConcatenatesRows) {
  at::manual_seed(13);
  FormatOptions options;
  options.group_size = 64;
  std::vector<LinearPtr> parts;
  std::vector<at::Tensor> expected;
  for (int64_t rows : {16, 8, 8}) {
    parts.push_back(find_format("awq").quantize(at::randn({rows, 128}), at::randn({rows}), options));
    expected.push_back(parts.back()->dequantize());
  }
  auto fused = find_format("awq").fuse(std::move(parts));
  EXPECT_EQ(fused->out_features(), 32);
  EXPECT_TRUE(at::equal(fused->dequantize(), at::cat(expected, 0)));
}

}  // namespace
}  // namespace qb::quant
