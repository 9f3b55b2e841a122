// The GPU quantizers (kernels/q4_quantize.cu) against the CPU references, bit for bit: nf4/fp4 codes and absmax
// (and the double quantization built on them) from bnb_quantize_4bit on a CUDA weight vs a CPU one; awq codes,
// scales and zeros from the awq format's GPU path vs awq_quantize_rtn + awq_to_q4. Fresh random weights of odd
// sizes (odd numel: a padded last byte; partial last blocks), every input dtype, and the values that exercise the
// edge rules: all-zero blocks, subnormals, values exactly on a bucket bound (the tie goes to the lower code),
// NaN (nf4/fp4 only), constant awq groups (the 1e-5 scale clamp, an overflowing w / scale). Skipped without a GPU.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <limits>

#include "quantbench/quant/awq.h"
#include "quantbench/quant/bnb_4bit.h"
#include "quantbench/quant/format.h"
#include "quantbench/quant/q4_linear.h"
#include "test_support.h"

namespace qb::quant {
namespace {

// Bitwise equality (NaN == NaN when the bits agree).
bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.to(at::kCPU).contiguous(), y = b.to(at::kCPU).contiguous();
  if (x.scalar_type() != y.scalar_type() || x.sizes() != y.sizes()) return false;
  return std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()) == 0;
}

// A weight with the edge values planted at random places of a normal draw.
at::Tensor nasty_weight(int64_t rows, int64_t cols, const std::array<float, 16>& codebook, bool with_nan) {
  at::Tensor w = at::randn({rows * cols}) * 0.05;
  float* p = w.data_ptr<float>();
  const int64_t n = w.numel();
  // a block of zeros, subnormals, and a block whose absmax is 1 holding every bucket bound exactly
  for (int64_t i = 0; i < std::min<int64_t>(n, 64); ++i) p[i] = 0.0f;
  if (n > 200) {
    p[100] = 1e-39f;
    p[101] = -1e-39f;
    p[102] = 1e-30f;
    p[103] = -0.0f;
  }
  if (n > 256 + 64) {
    std::array<float, 16> sorted = codebook;
    std::sort(sorted.begin(), sorted.end());
    p[256] = 1.0f;
    for (int i = 0; i < 15; ++i) p[257 + i] = (sorted[i] + sorted[i + 1]) / 2.0f;
    for (int i = 0; i < 15; ++i) p[272 + i] = -(sorted[i] + sorted[i + 1]) / 2.0f;
  }
  if (with_nan && n > 400) p[n - 3] = std::numeric_limits<float>::quiet_NaN();
  return w.view({rows, cols});
}

TEST(Q4GpuQuantize, BnbCodesAndAbsmaxEqualTheCpuPath) {
  QB_REQUIRE_CUDA();
  at::manual_seed(404);
  struct Shape {
    int64_t rows, cols;
  };
  // numel 63 (odd, one partial block), 3300 (partial last block), 8192, 4097 * 3 (odd, partial)
  const std::vector<Shape> shapes = {{7, 9}, {33, 100}, {64, 128}, {3, 4097}};
  for (Bnb4bitType type : {Bnb4bitType::kNf4, Bnb4bitType::kFp4}) {
    for (int64_t blocksize : {64, 128, 256}) {
      for (bool double_quant : {false, true}) {
        for (const Shape& s : shapes) {
          for (at::ScalarType dtype : {at::kFloat, at::kHalf, at::kBFloat16}) {
            const at::Tensor w = nasty_weight(s.rows, s.cols, bnb_4bit_codebook(type), !double_quant).to(dtype);
            const Bnb4bitState cpu = bnb_quantize_4bit(w, type, blocksize, double_quant);
            const Bnb4bitState gpu = bnb_quantize_4bit(w.to(at::kCUDA), type, blocksize, double_quant);
            const std::string what = std::string(bnb_4bit_type_name(type)) + " bs=" + std::to_string(blocksize) +
                                     " dq=" + std::to_string(double_quant) + " " + std::to_string(s.rows) + "x" +
                                     std::to_string(s.cols) + " " + c10::toString(dtype);
            EXPECT_TRUE(gpu.packed.is_cuda()) << what;
            EXPECT_TRUE(same_bits(cpu.packed, gpu.packed)) << "codes differ: " << what;
            EXPECT_TRUE(same_bits(cpu.absmax, gpu.absmax)) << "absmax differ: " << what;
            if (double_quant) {
              EXPECT_EQ(cpu.nested_offset, gpu.nested_offset) << what;
              EXPECT_TRUE(same_bits(cpu.nested_absmax, gpu.nested_absmax)) << what;
            }
          }
        }
      }
    }
  }
}

FormatOptions cuda_options(bool double_quant, int64_t block) {
  return test::format_options(c10::Device(c10::kCUDA), at::kHalf, double_quant, block);
}

// The whole load path on the GPU (quantize on the device, device layout, read back) gives the CPU path's canonical
// weight exactly.
TEST(Q4GpuQuantize, FormatsQuantizedOnTheGpuEqualTheCpuPath) {
  QB_REQUIRE_CUDA();
  at::manual_seed(405);
  for (const char* name : {"nf4", "fp4"}) {
    for (bool double_quant : {false, true}) {
      for (auto [rows, cols] : {std::pair<int64_t, int64_t>{48, 320}, {77, 256}, {40, 96}}) {
        const FormatOptions gpu_options = cuda_options(double_quant, 64);
        FormatOptions cpu_options = gpu_options;
        cpu_options.device = c10::Device(c10::kCPU);
        const at::Tensor w = (at::randn({rows, cols}) * 0.05).to(at::kBFloat16);
        auto on_gpu = find_format(name).quantize(w.to(at::kCUDA), std::nullopt, gpu_options);
        auto on_cpu = find_format(name).quantize(w, std::nullopt, cpu_options);
        const Q4Weights g = dynamic_cast<const Q4Linear&>(*on_gpu).canonical();
        const Q4Weights c = dynamic_cast<const Q4Linear&>(*on_cpu).canonical();
        const std::string what = std::string(name) + " dq=" + std::to_string(double_quant) + " " +
                                 std::to_string(rows) + "x" + std::to_string(cols);
        EXPECT_TRUE(same_bits(g.codes, c.codes)) << what;
        if (g.scales == c.scales) {
          EXPECT_TRUE(same_bits(g.absmax, c.absmax)) << what;
        } else {  // the flat layout keeps the resolved fp32 absmax
          EXPECT_TRUE(same_bits(g.absmax, c.resolved_absmax())) << what;
        }
        EXPECT_TRUE(at::equal(on_gpu->dequantize(), on_cpu->dequantize())) << what;
      }
    }
  }
}

TEST(Q4GpuQuantize, AwqCodesScalesZerosEqualTheCpuPath) {
  QB_REQUIRE_CUDA();
  at::manual_seed(406);
  struct Shape {
    int64_t out, in, group;
  };
  const std::vector<Shape> shapes = {{8, 64, 32}, {24, 384, 128}, {16, 96, 32}, {40, 256, 64}, {8, 48, 16}};
  for (const Shape& s : shapes) {
    for (at::ScalarType dtype : {at::kFloat, at::kHalf, at::kBFloat16}) {
      at::Tensor w = at::randn({s.out, s.in}) * 0.05;
      w[0].fill_(0.25f);                                  // a constant row: range 0, the 1e-5 clamp
      w[1].narrow(0, 0, s.group).fill_(-3.0f);            // a constant negative group
      w[2].narrow(0, 0, s.group).mul_(1e-4);              // a tiny range
      w = w.to(dtype);
      const FormatOptions options = cuda_options(false, s.group);
      auto on_gpu = find_format("awq").quantize(w.to(at::kCUDA), std::nullopt, options);
      const Q4Weights g = dynamic_cast<const Q4Linear&>(*on_gpu).canonical();
      const Q4Weights c = awq_to_q4(awq_quantize_rtn(w, s.group));
      const std::string what = std::to_string(s.out) + "x" + std::to_string(s.in) + " g" + std::to_string(s.group) +
                               " " + c10::toString(dtype);
      EXPECT_TRUE(same_bits(g.codes, c.codes)) << "codes: " << what;
      EXPECT_TRUE(same_bits(g.group_scale, c.group_scale)) << "scales: " << what;
      EXPECT_TRUE(same_bits(g.group_zero, c.group_zero)) << "zeros: " << what;
    }
  }
}

}  // namespace
}  // namespace qb::quant
