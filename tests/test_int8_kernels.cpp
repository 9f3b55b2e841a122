// The int8 kernels called directly (host APIs), outputs poisoned with NaN first so that an unwritten
// element fails the comparison. Reference: float64 matmul of the 16-bit input with the CPU
// dequantization. Bounds: the kernels multiply exact operands and accumulate in fp32, so the error is
// the output rounding (relative 2^-11 fp16, 2^-8 bf16 at most, RMS well below): 2e-3 and 8e-3.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <utility>

#include "quantbench/core/error.h"
#include "quantbench/quant/int8.h"
#include "test_support.h"

#ifdef QB_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>

#include "quantbench/kernels/int8_dequant.h"
#include "quantbench/kernels/int8_gemv.h"
#endif

namespace qb::quant {
namespace {

#ifdef QB_HAVE_CUDA

kernels::HalfType half_of(at::ScalarType t) { return t == at::kHalf ? kernels::HalfType::kF16 : kernels::HalfType::kBF16; }

struct Case {
  int64_t K, N, group;
};

kernels::Int8Weights view(const Int8Quantized& q, int64_t K) {
  kernels::Int8Weights w;
  w.q = q.q.data_ptr<int8_t>();
  w.ldq = q.q.size(1);
  w.scales = q.scales.data_ptr<float>();
  w.group_size = q.group_size;
  w.groups = q.group_size > 0 ? q.scales.size(1) : 0;
  w.N = q.q.size(0);
  w.K = K;
  return w;
}

at::Tensor dequantized(const Int8Quantized& q, int64_t K) {
  const at::Tensor qf = q.q.narrow(1, 0, K).to(at::kCPU, at::kDouble);
  const at::Tensor s = q.scales.to(at::kCPU, at::kDouble);
  if (q.group_size == 0) return qf * s.unsqueeze(1);
  return qf * s.repeat_interleave(q.group_size, 1).narrow(1, 0, K);
}

TEST(Int8KernelsGpu, GemvAndPrefillWriteEveryOutput) {
  QB_REQUIRE_CUDA();
  at::manual_seed(21);
  const c10::Device cuda(c10::kCUDA);
  const auto stream = at::cuda::getCurrentCUDAStream();
  // N = 4632, 4608: more 16-row blocks than an H100 holds at once (two 16-warp blocks per SM): the M <= 8 GEMV
  // runs its plain form there; its software-pipelined form where the grid fits and a warp has >= 6 steps of 64
  // columns (gemv_pipeline_pays: K = 6208, 6400); its one-round form (8 warps x 7 steps, gemv_one_round_fits) where
  // K takes 33 to 56 steps (K = 2056, 2072, 3584; per channel and per group); the plain form loads a round's x ahead
  // of its steps where every warp has two (K = 2048, 4096 on the wide grids; gemv_x_load).
  const std::vector<Case> cases = {{3584 + 8, 301, 0}, {4104, 64, 0}, {257 * 8, 37, 64}, {3584, 77, 128}, {8, 5, 0},
                                   {512, 4632, 0}, {256, 4608, 64}, {6208, 300, 0}, {6400, 200, 64}, {3584, 301, 0},
                                   {2072, 45, 0}, {2048, 4632, 0}, {4096, 4608, 64}};
  for (const auto dtype : {at::kHalf, at::kBFloat16}) {
    const double bound = dtype == at::kHalf ? 2e-3 : 8e-3;
    for (const Case& c : cases) {
      const Int8Quantized q = quantize_int8((at::randn({c.N, c.K}) * 0.02).to(cuda), c.group);
      const kernels::Int8Weights w = view(q, c.K);
      const at::Tensor wd = dequantized(q, c.K);
      const at::Tensor bias = at::randn({c.N}).to(cuda, dtype);
      for (int64_t m = 1; m <= 64; m += (m < 34 ? 1 : 15)) {
        const at::Tensor x = at::randn({m, c.K}).to(cuda, dtype);
        const at::Tensor ref = at::linear(x.to(at::kCPU, at::kDouble), wd, bias.to(at::kCPU, at::kDouble));
        if (m <= kernels::kGemvMaxM) {
          at::Tensor y = at::full({m, c.N}, NAN, x.options());
          kernels::int8_gemv(half_of(dtype), x.data_ptr(), c.K, w, bias.data_ptr(), y.data_ptr(), c.N, m, stream);
          EXPECT_LT(test::relative_error(y, ref), bound) << "gemv K " << c.K << " N " << c.N << " M " << m;
        }
        for (const int64_t chunk : {int64_t{0}, int64_t{64}, int64_t{1024}, int64_t{1} << 20}) {
          if (m > 3 && (chunk == 64 || chunk == 1024)) continue;  // chunked variants: a few M suffice
          const size_t bytes = kernels::int8_prefill_workspace_bytes(m, c.N, c.K, chunk);
          at::Tensor scratch = at::empty({static_cast<int64_t>(bytes)}, x.options().dtype(at::kByte));
          at::Tensor y = at::full({m, c.N}, NAN, x.options());
          kernels::int8_prefill_matmul(at::cuda::getCurrentCUDABlasHandle(), half_of(dtype), x.data_ptr(), c.K, w,
                                       bias.data_ptr(), y.data_ptr(), c.N, m, scratch.data_ptr(), bytes, chunk, stream);
          // chunk 0 (and per-group weights) round w = q * s to 16 bits before cuBLAS: 2^-9 relative per
          // bf16 weight, random in sign, so ~1e-3 on the dot product, under the output-rounding bound.
          EXPECT_LT(test::relative_error(y, ref), bound)
              << "prefill K " << c.K << " N " << c.N << " M " << m << " chunk " << chunk;
        }
      }
    }
  }
}

// 9..32 tokens on wide N (>= 16384) take the two-row-tile forms (9..16 tokens two token tiles of two steps a round,
// 17..32 four token tiles), which the cases above (N < 16384) never reach. Every output written.
TEST(Int8KernelsGpu, WideGemvFormsMatchReference) {
  QB_REQUIRE_CUDA();
  at::manual_seed(23);
  const c10::Device cuda(c10::kCUDA);
  const auto stream = at::cuda::getCurrentCUDAStream();
  for (const Case& c : {Case{2048, 16400, 0}, Case{1032, 16416, 64}}) {
    const Int8Quantized q = quantize_int8((at::randn({c.N, c.K}) * 0.02).to(cuda), c.group);
    const kernels::Int8Weights w = view(q, c.K);
    const at::Tensor wd = dequantized(q, c.K);
    for (const auto dtype : {at::kHalf, at::kBFloat16}) {
      const at::Tensor bias = at::randn({c.N}).to(cuda, dtype);
      for (const int64_t m : {9, 16, 17, 32}) {
        const at::Tensor x = at::randn({m, c.K}).to(cuda, dtype);
        const at::Tensor ref = at::linear(x.to(at::kCPU, at::kDouble), wd, bias.to(at::kCPU, at::kDouble));
        at::Tensor y = at::full({m, c.N}, NAN, x.options());
        kernels::int8_gemv(half_of(dtype), x.data_ptr(), c.K, w, bias.data_ptr(), y.data_ptr(), c.N, m, stream);
        EXPECT_LT(test::relative_error(y, ref), dtype == at::kHalf ? 2e-3 : 8e-3)
            << "K " << c.K << " N " << c.N << " M " << m << " group " << c.group;
      }
    }
  }
}

// Every int8 value through the decode GEMV's int8 -> 16-bit conversions, exactly: q[n, k] = (n + 3k) mod 256 as a
// signed byte, unit scales, x one-hot at column c, so y[m, n] = q[n, c] is an integer the output holds exactly.
// 256 rows cover every byte value in every position of a lane's 16 bytes; M = 1 and 4 take the one-tile kernel (bf16:
// the integer conversion), M = 12 the two-tile one (the fp32 conversion).
TEST(Int8KernelsGpu, GemvConvertsEveryByteExactly) {
  QB_REQUIRE_CUDA();
  const c10::Device cuda(c10::kCUDA);
  const int64_t N = 256, K = 1024;
  const at::Tensor idx = (at::arange(N).unsqueeze(1) + 3 * at::arange(K).unsqueeze(0)).remainder(256);
  const at::Tensor q = (idx - 256 * (idx >= 128).to(at::kLong)).to(at::kChar);  // [-128, 127]
  Int8Quantized w8{q.to(cuda).contiguous(), at::ones({N}, at::kFloat).to(cuda), 0};
  const kernels::Int8Weights w = view(w8, K);
  for (const auto dtype : {at::kHalf, at::kBFloat16}) {
    for (const int64_t M : {int64_t{1}, int64_t{4}, int64_t{12}}) {
      for (const int64_t c : {int64_t{0}, int64_t{5}, int64_t{17}, int64_t{1023}}) {
        at::Tensor x = at::zeros({M, K}, at::TensorOptions().dtype(dtype).device(cuda));
        x.select(1, c).fill_(1.0);
        at::Tensor y = at::full({M, N}, NAN, x.options());
        kernels::int8_gemv(half_of(dtype), x.data_ptr(), K, w, nullptr, y.data_ptr(), N, M,
                           at::cuda::getCurrentCUDAStream());
        const at::Tensor expected = q.select(1, c).to(at::kFloat).unsqueeze(0).expand({M, N});
        EXPECT_TRUE(at::equal(y.to(at::kCPU, at::kFloat), expected))
            << c10::toString(dtype) << " M " << M << " c " << c;
      }
    }
  }
}

TEST(Int8KernelsGpu, DequantizeMatchesCpu) {
  QB_REQUIRE_CUDA();
  at::manual_seed(22);
  const c10::Device cuda(c10::kCUDA);
  for (const int64_t group : {int64_t{0}, int64_t{32}}) {
    const int64_t N = 33, K = 200;
    const Int8Quantized q = quantize_int8(at::randn({N, K}).to(cuda), group);
    at::Tensor out = at::full({N, 208}, NAN, q.scales.options().dtype(at::kHalf));
    kernels::int8_dequantize(kernels::HalfType::kF16, view(q, K), out.data_ptr(), 208,
                             at::cuda::getCurrentCUDAStream());
    const at::Tensor ref = dequantized(q, K);
    // One rounding of q * s to fp16.
    EXPECT_LT(test::relative_error(out.narrow(1, 0, K), ref), 1e-3);
    EXPECT_TRUE(at::equal(out.narrow(1, K, 8).to(at::kCPU), at::zeros({N, 8}, at::kHalf)));
  }
}

// The fused Hopper prefill kernel (kernels/int8_gemm_sm90a.cu) on fresh random per-channel weights: K = 200 (four
// 64-column steps, the last one past K: zeros from both x and q), 1024 (16 steps: both rings wrap), 64 (one step);
// N = 77 (one partial block), 300 (three blocks); M = 1, 65, 130, 257; a scale multiplier of 1 and 0.5; fp16 and
// bf16, with and without bias; outputs poisoned with NaN, ldy = N + 8 (odd and even). Against float64 on the exact
// q * s (the usual bound; register-A multiplies the exact q and scales the fp32 sums, so only the summation and y's
// rounding remain) and on q * s rounded once to 16 bits, shared-B's operand (a misplaced weight would show as an
// error near 1).
TEST(Int8KernelsGpu, WgmmaPrefillMatchesReference) {
  QB_REQUIRE_SM90();
  at::manual_seed(23);
  const c10::Device cuda(c10::kCUDA);
  const auto stream = at::cuda::getCurrentCUDAStream();
  const int64_t pad = 8;
  for (const int64_t K : {int64_t{200}, int64_t{1024}, int64_t{64}}) {
    for (const int64_t N : {int64_t{77}, int64_t{300}}) {
      const Int8Quantized q = quantize_int8((at::randn({N, K}) * 0.02).to(cuda), 0);
      for (const float multiplier : {1.0f, 0.5f}) {
        kernels::Int8Weights w = view(q, K);
        w.scale_multiplier = multiplier;
        const at::Tensor wd = dequantized(q, K) * static_cast<double>(multiplier);
        for (const auto dtype : {at::kHalf, at::kBFloat16}) {
          const at::Tensor w16 = wd.to(dtype).to(at::kDouble);
          for (const int64_t M : {1, 65, 130, 257}) {
            for (const bool with_bias : {true, false}) {
              const at::Tensor x = at::randn({M, K}).to(cuda, dtype);
              const at::Tensor bias = at::randn({N}).to(cuda, dtype);
              at::Tensor y = at::full({M, N + pad}, NAN, x.options());
              const at::Tensor xd = x.to(at::kCPU, at::kDouble), bd = bias.to(at::kCPU, at::kDouble);
              const at::Tensor ref = with_bias ? at::linear(xd, wd, bd) : at::linear(xd, wd);
              const at::Tensor ref16 = with_bias ? at::linear(xd, w16, bd) : at::linear(xd, w16);
              for (const auto& cut : {std::pair{kernels::Int8WgmmaForm::kSharedB, 1},
                                      std::pair{kernels::Int8WgmmaForm::kRegisterA, 1},
                                      std::pair{kernels::Int8WgmmaForm::kRegisterA, 3}}) {
                const kernels::Int8WgmmaForm form = cut.first;  // named copies: lambdas capture them (C++17)
                const int splits = cut.second;
                ASSERT_TRUE(kernels::int8_gemm_wgmma_supported(x.data_ptr(), K, w, y.data_ptr(), N + pad, M, form));
                ASSERT_TRUE(kernels::int8_gemm_wgmma_weights_supported(w, form));
                const size_t bytes = kernels::int8_gemm_wgmma_workspace_bytes(M, N, form, splits);
                const at::Tensor workspace = at::full({static_cast<int64_t>(bytes) + 16}, 0x5a,
                                                      x.options().dtype(at::kByte));  // garbage: counters zeroed by the launch
                const auto run = [&](const at::Tensor& out) {
                  kernels::int8_gemm_wgmma(half_of(dtype), x.data_ptr(), K, w, with_bias ? bias.data_ptr() : nullptr,
                                           out.data_ptr(), N + pad, M, stream, form, splits,
                                           bytes > 0 ? workspace.data_ptr() : nullptr, bytes);
                };
                y.fill_(NAN);
                run(y);
                const at::Tensor got = y.narrow(1, 0, N);
                const std::string what =
                    "K " + std::to_string(K) + " N " + std::to_string(N) + " M " + std::to_string(M) + " mult " +
                    std::to_string(multiplier) + " " + c10::toString(dtype) + (with_bias ? " bias" : "") +
                    (form == kernels::Int8WgmmaForm::kRegisterA ? " register-A" : " shared-B") + " splits " +
                    std::to_string(splits);
                if (splits > 1) {  // the same workspace again: the same bits (the splits summed in a fixed order)
                  at::Tensor again = at::full({M, N + pad}, NAN, x.options());
                  run(again);
                  EXPECT_TRUE(at::equal(again.narrow(1, 0, N), got)) << "not deterministic: " << what;
                }
                EXPECT_LT(test::relative_error(got, ref), dtype == at::kHalf ? 2e-3 : 8e-3) << what;
                EXPECT_LT(test::relative_error(got, ref16), dtype == at::kHalf ? 1e-3 : 6e-3) << what;
                EXPECT_FALSE(at::isnan(got).any().item<bool>()) << "unwritten output: " << what;
                EXPECT_TRUE(at::isnan(y.narrow(1, N, pad)).all().item<bool>()) << "wrote past N: " << what;
              }
            }
          }
        }
      }
    }
  }
  // Per-group scales are not taken (they keep the two-pass path).
  const Int8Quantized grouped = quantize_int8(at::randn({16, 128}).to(cuda), 64);
  const at::Tensor x = at::randn({130, 128}).to(cuda, at::kHalf);
  at::Tensor y = at::empty({130, 16}, x.options());
  for (const auto form : {kernels::Int8WgmmaForm::kSharedB, kernels::Int8WgmmaForm::kRegisterA}) {
    EXPECT_FALSE(
        kernels::int8_gemm_wgmma_supported(x.data_ptr(), 128, view(grouped, 128), y.data_ptr(), 16, 130, form));
    EXPECT_FALSE(kernels::int8_gemm_wgmma_weights_supported(view(grouped, 128), form));
    EXPECT_THROW(kernels::int8_gemm_wgmma(kernels::HalfType::kF16, x.data_ptr(), 128, view(grouped, 128), nullptr,
                                          y.data_ptr(), 16, 130, stream, form),
                 Error);
  }
}

TEST(Int8KernelsGpu, WrappersRejectBadOperands) {
  QB_REQUIRE_CUDA();
  const c10::Device cuda(c10::kCUDA);
  const Int8Quantized q = quantize_int8(at::randn({16, 64}).to(cuda), 0);
  kernels::Int8Weights w = view(q, 64);
  const at::Tensor x = at::randn({40, 64}).to(cuda, at::kHalf);
  at::Tensor y = at::empty({40, 16}, x.options());
  const auto stream = at::cuda::getCurrentCUDAStream();
  // M above the GEMV's tile count.
  EXPECT_THROW(kernels::int8_gemv(kernels::HalfType::kF16, x.data_ptr(), 64, w, nullptr, y.data_ptr(), 16, 40, stream),
               Error);
  // K not a multiple of 8.
  kernels::Int8Weights odd = w;
  odd.K = 60;
  EXPECT_THROW(kernels::int8_gemv(kernels::HalfType::kF16, x.data_ptr(), 64, odd, nullptr, y.data_ptr(), 16, 1, stream),
               Error);
  // Misaligned activations.
  EXPECT_THROW(kernels::int8_gemv(kernels::HalfType::kF16, static_cast<char*>(x.data_ptr()) + 2, 64, w, nullptr,
                                  y.data_ptr(), 16, 1, stream),
               Error);
}

#endif  // QB_HAVE_CUDA

}  // namespace
}  // namespace qb::quant
