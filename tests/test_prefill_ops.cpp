// The prefill kernels against the torch ops they replace (GPU only), bit for bit.
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "test_support.h"

#ifdef QB_HAVE_CUDA
#include <c10/cuda/CUDAStream.h>

#include "quantbench/kernels/prefill_ops.h"

namespace qb::kernels {
namespace {

DType dtype_of(at::ScalarType t) { return t == at::kFloat ? DType::kF32 : t == at::kHalf ? DType::kF16 : DType::kBF16; }

// RotaryTable::apply's prefill path (src/model/rotary.cpp), op for op: x [B, T, heads, D] in its dtype.
at::Tensor rotary_reference(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, int64_t rotary) {
  if (rotary == 0) return x;
  const int64_t tokens = x.size(1), half = rotary / 2;
  const at::Tensor c = at::cat({cos.narrow(0, 0, tokens), cos.narrow(0, 0, tokens)}, -1).to(x.scalar_type()).unsqueeze(1);
  const at::Tensor s = at::cat({sin.narrow(0, 0, tokens), sin.narrow(0, 0, tokens)}, -1).to(x.scalar_type()).unsqueeze(1);
  const at::Tensor r = x.narrow(-1, 0, rotary);
  const at::Tensor rh = at::cat({-r.narrow(-1, half, half), r.narrow(-1, 0, half)}, -1);
  const at::Tensor result = r * c + rh * s;
  if (rotary == x.size(-1)) return result;
  return at::cat({result, x.narrow(-1, rotary, x.size(-1) - rotary)}, -1);
}

struct SplitCase {
  int64_t batch, tokens, heads, kv_heads, head_dim, rotary, capacity;  // capacity 0: plain k / v tensors
};

// q [B, H, T, D], k / v into a NaN-poisoned cache [B, Hkv, capacity, D] (positions past T untouched) or into plain
// tensors; full, partial (Phi's 32 of 80) and no rotary; GQA, MHA; fp32, fp16, bf16; positions far enough into the
// tables that cos / sin are not near 1 / 0.
TEST(PrefillOpsGpu, SplitRopeEqualsTheTorchOps) {
  QB_REQUIRE_CUDA();
  at::manual_seed(5);
  const auto cuda = at::TensorOptions().device(at::kCUDA);
  for (const SplitCase c : {SplitCase{2, 37, 4, 2, 64, 64, 50}, SplitCase{1, 300, 28, 4, 128, 128, 0},
                            SplitCase{3, 5, 32, 32, 80, 32, 9}, SplitCase{1, 17, 12, 12, 64, 0, 20}}) {
    const int64_t half = std::max<int64_t>(c.rotary / 2, 1);
    const at::Tensor freqs = at::outer(at::arange(400, cuda.dtype(at::kFloat)), at::rand({half}, cuda) * 0.5 + 0.01);
    const at::Tensor cos = freqs.cos().contiguous(), sin = freqs.sin().contiguous();
    for (at::ScalarType type : {at::kFloat, at::kHalf, at::kBFloat16}) {
      const auto opts = cuda.dtype(type);
      const int64_t qd = c.heads * c.head_dim, kd = c.kv_heads * c.head_dim;
      const at::Tensor qkv = at::randn({c.batch, c.tokens, qd + 2 * kd}, opts) * 3;
      at::Tensor q = at::full({c.batch, c.heads, c.tokens, c.head_dim}, NAN, opts);
      const int64_t positions = c.capacity > 0 ? c.capacity : c.tokens;
      at::Tensor k = at::full({c.batch, c.kv_heads, positions, c.head_dim}, NAN, opts);
      at::Tensor v = at::full_like(k, NAN);
      prefill_split_rope(qkv.data_ptr(), c.rotary ? cos.data_ptr<float>() : nullptr,
                         c.rotary ? sin.data_ptr<float>() : nullptr, q.data_ptr(), k.data_ptr(), v.data_ptr(),
                         positions * c.head_dim, c.batch, c.tokens, c.heads, c.kv_heads, c.head_dim, c.rotary,
                         dtype_of(type), c10::cuda::getCurrentCUDAStream().stream());
      const at::Tensor q_ref = rotary_reference(qkv.narrow(-1, 0, qd).view({c.batch, c.tokens, c.heads, c.head_dim}),
                                                cos, sin, c.rotary).transpose(1, 2);
      const at::Tensor k_ref = rotary_reference(qkv.narrow(-1, qd, kd).view({c.batch, c.tokens, c.kv_heads, c.head_dim}),
                                                cos, sin, c.rotary).transpose(1, 2);
      const at::Tensor v_ref = qkv.narrow(-1, qd + kd, kd).view({c.batch, c.tokens, c.kv_heads, c.head_dim}).transpose(1, 2);
      const std::string what = fmt::format("B={} T={} H={} Hkv={} D={} rotary={} cap={} {}", c.batch, c.tokens, c.heads,
                                           c.kv_heads, c.head_dim, c.rotary, c.capacity, c10::toString(type));
      EXPECT_TRUE(at::equal(q, q_ref)) << what;
      EXPECT_TRUE(at::equal(k.narrow(2, 0, c.tokens), k_ref)) << what;
      EXPECT_TRUE(at::equal(v.narrow(2, 0, c.tokens), v_ref)) << what;
      if (positions > c.tokens) {
        EXPECT_TRUE(at::isnan(k.narrow(2, c.tokens, positions - c.tokens)).all().item<bool>()) << what;
        EXPECT_TRUE(at::isnan(v.narrow(2, c.tokens, positions - c.tokens)).all().item<bool>()) << what;
      }
    }
  }
}

}  // namespace
}  // namespace qb::kernels
#endif
