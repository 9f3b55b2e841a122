// The 4-bit CUDA paths (nf4, fp4, awq share them: kernels/q4_*.cu) against their CPU reference: the layer's
// own dequantized weight, multiplied in float64. Fresh random weights and inputs per case; shapes include N not
// a multiple of 16, blocks straddling rows (tile layout with per-64 scales, and the flat layout), M from 1 to
// 130 (tensor-core decode path up to 64, dequantize + cuBLAS beyond); outputs of the kernels are poisoned with
// NaN first. Skipped without a GPU.
//
// Error bound: the kernels round each codebook value (nf4/fp4) to the activation type once (fp16: 2^-11
// relative, bf16: 2^-8 -- awq's integers are exact) and y once; products accumulate in fp32. With random signs
// the weight rounding averages down, so ||y - ref|| / ||ref|| stays under one output rounding plus a fraction of
// the weight rounding: bound 2e-3 for fp16, 1e-2 for bf16.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <limits>

#include "quantbench/quant/format.h"
#include "quantbench/quant/q4_linear.h"
#include "test_support.h"

#ifdef QB_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>

#include "quantbench/kernels/q4_gemm.h"
#include "quantbench/kernels/q4_layout.h"
#endif

namespace qb::quant {
namespace {

struct Variant {
  const char* format;
  bool double_quant;
  int64_t block;  // blocksize (nf4/fp4) or group (awq)
};

double bound_for(at::ScalarType dt) { return dt == at::kHalf ? 2e-3 : 1e-2; }

FormatOptions cuda_options(at::ScalarType act, const Variant& v) {
  FormatOptions o;
  o.device = c10::Device(c10::kCUDA);
  o.activation_dtype = act;
  o.double_quant = v.double_quant;
  o.blocksize = v.block;
  o.group_size = v.block;
  return o;
}

at::Tensor reference(const at::Tensor& x, const Linear& linear, const std::optional<at::Tensor>& bias) {
  const at::Tensor xd = x.to(at::kCPU, at::kDouble), w = linear.dequantize().to(at::kDouble);
  return bias.has_value() ? at::linear(xd, w, bias->to(at::kDouble)) : at::linear(xd, w);
}

TEST(Q4Gpu, ForwardMatchesReferenceAllPaths) {
  QB_REQUIRE_CUDA();
  at::manual_seed(2024);
  const std::vector<Variant> variants = {{"nf4", false, 64}, {"nf4", true, 64}, {"fp4", false, 128},
                                         {"nf4", true, 256}, {"awq", false, 128}, {"awq", false, 64}};
  struct Shape {
    int64_t N, K;
    const char* layout;  // what the nf4/fp4 layer must use for it
  };
  // (50, 96): K % 64 != 0 -> flat. (48, 192) with block 128: blocks straddle rows, tiles with per-64 absmax.
  const std::vector<Shape> shapes = {{200, 512, "tiles"}, {77, 256, "tiles"}, {48, 192, "tiles"}, {56, 96, "flat"}};
  for (const Variant& v : variants) {
    for (const Shape& s : shapes) {
      if (std::string(v.format) == "awq" && (s.K % v.block != 0 || s.N % 8 != 0)) continue;
      if (std::string(v.format) != "awq" && v.block == 256 && s.K % 256 != 0 && s.K % 64 == 0) continue;
      for (at::ScalarType act : {at::kHalf, at::kBFloat16}) {
        const FormatOptions options = cuda_options(act, v);
        const at::Tensor weight = at::randn({s.N, s.K}) * 0.05;
        const at::Tensor bias = at::randn({s.N}) * 0.1;
        auto linear = find_format(v.format).quantize(weight, bias, options);
        const auto* q4 = dynamic_cast<const Q4Linear*>(linear.get());
        ASSERT_NE(q4, nullptr);
        if (std::string(v.format) != "awq" || s.K % 64 == 0) EXPECT_EQ(q4->layout(), std::string(s.layout));
        const std::optional<at::Tensor> bias_act = bias.to(act).to(at::kFloat);
        for (int64_t M : {1, 3, 8, 9, 16, 17, 33, 64, 65, 130}) {
          const at::Tensor x = at::randn({M, s.K}).to(options.device, act);
          const at::Tensor y = linear->forward(x);
          ASSERT_EQ(y.sizes(), at::IntArrayRef({M, s.N}));
          ASSERT_EQ(y.scalar_type(), act);
          const double err = test::relative_error(y, reference(x, *linear, bias_act));
          EXPECT_LT(err, bound_for(act)) << v.format << " dq=" << v.double_quant << " block=" << v.block << " N=" << s.N
                                         << " K=" << s.K << " M=" << M << " act=" << c10::toString(act);
        }
      }
    }
  }
}

// The device layout read back is the canonical weight: CUDA dequantize() == CPU dequantize() bit for bit.
TEST(Q4Gpu, DeviceLayoutRoundTripsExactly) {
  QB_REQUIRE_CUDA();
  at::manual_seed(99);
  for (const Variant& v : {Variant{"nf4", true, 64}, Variant{"fp4", false, 128}, Variant{"nf4", true, 128},
                           Variant{"awq", false, 128}}) {
    for (auto [N, K] : {std::pair<int64_t, int64_t>{40, 256}, {24, 192}, {16, 96}}) {
      if (std::string(v.format) == "awq" && K % v.block != 0) continue;
      const at::Tensor weight = at::randn({N, K});
      FormatOptions cpu;
      cpu.double_quant = v.double_quant;
      cpu.blocksize = cpu.group_size = v.block;
      auto on_cpu = find_format(v.format).quantize(weight, std::nullopt, cpu);
      auto on_gpu = find_format(v.format).quantize(weight, std::nullopt, cuda_options(at::kHalf, v));
      EXPECT_TRUE(at::equal(on_cpu->dequantize(), on_gpu->dequantize())) << v.format << " " << N << "x" << K;
    }
  }
}

// Fused q/k/v-style layers on the GPU equal the parts side by side.
TEST(Q4Gpu, FusedLayersMatchParts) {
  QB_REQUIRE_CUDA();
  at::manual_seed(5);
  for (const char* format : {"nf4", "awq"}) {
    Variant v{format, true, std::string(format) == "awq" ? 128 : 64};
    const FormatOptions options = cuda_options(at::kBFloat16, v);
    std::vector<LinearPtr> parts;
    std::vector<at::Tensor> ys;
    const at::Tensor x = at::randn({5, 256}).to(options.device, at::kBFloat16);
    for (int64_t rows : {256, 64, 64}) {
      parts.push_back(find_format(format).quantize(at::randn({rows, 256}) * 0.05, at::randn({rows}), options));
      ys.push_back(parts.back()->forward(x));
    }
    auto fused = find_format(format).fuse(std::move(parts));
    EXPECT_NE(dynamic_cast<Q4Linear*>(fused.get()), nullptr) << format;
    EXPECT_LT(test::relative_error(fused->forward(x), at::cat(ys, -1)), 1e-2) << format;
  }
}

#ifdef QB_HAVE_CUDA
// forward captured in a CUDA graph (decode path and prefill path) replays to the eager result.
TEST(Q4Gpu, ForwardIsGraphCapturable) {
  QB_REQUIRE_CUDA();
  at::manual_seed(8);
  const FormatOptions options = cuda_options(at::kHalf, Variant{"nf4", true, 64});
  auto linear = find_format("nf4").quantize(at::randn({320, 512}) * 0.05, at::randn({320}), options);
  for (int64_t M : {1, 16, 100}) {
    const at::Tensor x = at::randn({M, 512}).to(options.device, at::kHalf);
    const at::Tensor eager = linear->forward(x);
    at::cuda::CUDAStream stream = at::cuda::getStreamFromPool();
    at::Tensor captured;
    at::cuda::CUDAGraph graph;
    {
      c10::cuda::CUDAStreamGuard guard(stream);
      linear->forward(x);  // warm-up on the capture stream
      stream.synchronize();
      graph.capture_begin();
      captured = linear->forward(x);
      graph.capture_end();
    }
    graph.replay();
    at::cuda::getCurrentCUDAStream().synchronize();
    stream.synchronize();
    // the decode kernel is deterministic; cuBLAS (M = 100) may pick another split on the capture stream
    EXPECT_LT(test::relative_error(captured, eager), M <= 64 ? 0.0 + 1e-12 : 2e-3) << "M=" << M;
  }
}

// The kernels through their host API on a hand-built tile layout, outputs poisoned with NaN and given a wider
// leading dimension: every output element is written, the padding never.
TEST(Q4Gpu, KernelsWriteEveryOutputAndNothingElse) {
  QB_REQUIRE_CUDA();
  namespace k = qb::kernels;
  at::manual_seed(31);
  const int64_t N = 77, K = 320, units = K / 64, pad = 8;
  Q4Weights w;
  w.out_features = N;
  w.in_features = K;
  w.codebook = {-1.f, -0.7f, -0.5f, -0.4f, -0.3f, -0.2f, -0.1f, 0.f, 0.1f, 0.2f, 0.25f, 0.3f, 0.45f, 0.55f, 0.7f, 1.f};
  w.codes = at::randint(0, 256, {N * K / 2}, at::kByte);
  w.block = 64;
  w.absmax = at::rand({N * units}) * 0.1 + 0.01;
  const at::Tensor dense = w.dequantize();  // [N, K] fp32
  at::Tensor tiles = at::empty({k::q4_tile_bytes(N, K)}, at::kByte);
  k::q4_build_tiles(w.codes.data_ptr<uint8_t>(), N, K, tiles.data_ptr<uint8_t>());
  auto scale_vec = k::q4_tile_scales(w.absmax.data_ptr<float>(), N, units, 0.f);
  const at::Tensor scales = at::from_blob(scale_vec.data(), {static_cast<int64_t>(scale_vec.size())}, at::kFloat)
                                .to(at::kCUDA);
  const at::Tensor tiles_dev = tiles.to(at::kCUDA);
  k::Q4TileWeights tw;
  tw.tiles = tiles_dev.data_ptr<uint8_t>();
  tw.N = N;
  tw.K = K;
  tw.scales = scales.data_ptr<float>();
  std::copy(w.codebook.begin(), w.codebook.end(), tw.codebook);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  for (int64_t M : {1, 5, 12, 40, 64}) {
    for (int split : {1, 2, 4, 8}) {  // warps sharing a tile (1: alone; 2, 4: partial block of tiles; 8)
      const at::Tensor x = at::randn({M, K}).to(at::kCUDA, at::kHalf);
      at::Tensor y = at::full({M, N + pad}, nan, x.options());
      k::q4_tile_gemm(k::DType::kF16, tw, x.data_ptr(), K, nullptr, y.data_ptr(), N + pad, M, stream, split,
                      split == 2 ? 6 : 0);
      const at::Tensor ref = at::linear(x.to(at::kCPU, at::kDouble), dense.to(at::kDouble));
      EXPECT_LT(test::relative_error(y.narrow(1, 0, N), ref), 2e-3) << "M=" << M << " split=" << split;
      EXPECT_FALSE(at::isnan(y.narrow(1, 0, N)).any().item<bool>()) << "unwritten output, M=" << M;
      EXPECT_TRUE(at::isnan(y.narrow(1, N, pad)).all().item<bool>()) << "wrote past N, M=" << M;
    }
  }
  // dequantize a row/column range into a poisoned buffer: exactly the range is written, with the fp32 values
  at::Tensor out = at::full({48, 128 + pad}, nan, at::TensorOptions().device(at::kCUDA).dtype(at::kFloat));
  k::q4_tile_dequant(k::DType::kF32, tw, 16, 45, 64, 128, out.data_ptr(), 128 + pad, stream);
  const at::Tensor got = out.to(at::kCPU);
  EXPECT_TRUE(at::equal(got.narrow(0, 0, 45).narrow(1, 0, 128), dense.narrow(0, 16, 45).narrow(1, 64, 128)));
  EXPECT_TRUE(at::isnan(got.narrow(0, 45, 3)).all().item<bool>());
  EXPECT_TRUE(at::isnan(got.narrow(1, 128, pad)).all().item<bool>());
}
#endif

}  // namespace
}  // namespace qb::quant
