// L2 warming plans (kernels/l2_warm.h): the budget arithmetic on the CPU; on the GPU, that every plan the GEMV
// dispatchers describe lies inside the weight's own buffers, and that decode attention issuing one is bit for bit
// the attention without.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <vector>

#include "quantbench/kernels/l2_warm.h"
#include "test_support.h"

#ifdef QB_HAVE_CUDA
#include <c10/cuda/CUDAStream.h>

#include "quantbench/kernels/decode_ops.h"
#include "quantbench/kernels/dense_gemv.h"
#include "quantbench/kernels/int8_gemv.h"
#include "quantbench/kernels/q4_gemm.h"
#include "quantbench/kernels/q4_layout.h"
#endif

namespace qb::kernels {
namespace {

const char* at_offset(int64_t offset) { return reinterpret_cast<const char*>(uintptr_t{1} << 20) + offset; }

TEST(L2Warm, AddKeepsOnlyWholeAlignedRegions) {
  L2WarmPlan plan;
  l2_warm_add(plan, at_offset(0), 10, 4096, 1000);  // bytes rounded down to 992
  l2_warm_add(plan, at_offset(8), 10, 4096, 1024);   // misaligned base: dropped
  l2_warm_add(plan, at_offset(0), 10, 4100, 1024);   // misaligned stride: dropped
  l2_warm_add(plan, at_offset(0), 0, 4096, 1024);    // nothing: dropped
  l2_warm_add(plan, at_offset(0), 3, 4096, 15);      // under 16 bytes: dropped
  l2_warm_add(plan, nullptr, 3, 4096, 64);           // no buffer: dropped
  ASSERT_EQ(plan.regions, 1);
  EXPECT_EQ(plan.region[0].bytes, 992);
  EXPECT_EQ(l2_warm_bytes(plan), 9920);
  for (int i = 0; i < 2 * kL2WarmMaxRegions; ++i) l2_warm_add(plan, at_offset(16 * i), 1, 0, 32);
  EXPECT_EQ(plan.regions, kL2WarmMaxRegions);
}

TEST(L2Warm, FitKeepsTheSameShareOfEveryPiece) {
  L2WarmPlan plan;
  l2_warm_add(plan, at_offset(0), 100, 8192, 4096);  // 409600 bytes
  l2_warm_add(plan, at_offset(1 << 20), 50, 256, 256);  // 12800 bytes
  EXPECT_EQ(l2_warm_bytes(l2_warm_fit(plan, 1 << 30)), l2_warm_bytes(plan));  // under budget: unchanged
  EXPECT_EQ(l2_warm_fit(plan, 0).regions, 0);
  const int64_t total = l2_warm_bytes(plan), budget = total / 4;
  const L2WarmPlan fit = l2_warm_fit(plan, budget);
  ASSERT_EQ(fit.regions, 2);
  EXPECT_LE(l2_warm_bytes(fit), budget);
  EXPECT_GT(l2_warm_bytes(fit), budget - 16 * (100 + 50));  // only the 16-byte rounding of each piece lost
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(fit.region[r].base, plan.region[r].base);  // the leading part of every piece
    EXPECT_EQ(fit.region[r].count, plan.region[r].count);
    EXPECT_EQ(fit.region[r].bytes % 16, 0);
    EXPECT_NEAR(static_cast<double>(fit.region[r].bytes) / plan.region[r].bytes, 0.25, 16.0 / plan.region[r].bytes);
  }
}

TEST(L2Warm, ChainTakesTheFirstPlanWholeThenWhatIsLeft) {
  L2WarmPlan first, then;
  l2_warm_add(first, at_offset(0), 10, 1024, 1024);     // 10 KB
  l2_warm_add(then, at_offset(1 << 20), 100, 4096, 4096);  // 400 KB
  const L2WarmPlan chain = l2_warm_chain(first, then, 110 * 1024);
  ASSERT_EQ(chain.regions, 2);
  EXPECT_EQ(chain.region[0].bytes, 1024);
  EXPECT_EQ(chain.region[1].bytes, 1024);  // a quarter of each 4 KB piece: 100 KB
  EXPECT_EQ(l2_warm_bytes(chain), 110 * 1024);
  const L2WarmPlan small = l2_warm_chain(first, then, 5 * 1024);  // not even the first whole
  ASSERT_EQ(small.regions, 1);
  EXPECT_EQ(small.region[0].bytes, 512);
}

#ifdef QB_HAVE_CUDA

cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

// Every piece of `plan` inside one of `buffers` (byte tensors), 16-byte aligned.
void expect_inside(const L2WarmPlan& plan, const std::vector<at::Tensor>& buffers) {
  for (int r = 0; r < plan.regions; ++r) {
    const L2WarmRegion& g = plan.region[r];
    SCOPED_TRACE(::testing::Message() << "region " << r << ": " << g.count << " x " << g.bytes << " bytes, stride "
                                      << g.stride);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(g.base) % 16, 0u);
    EXPECT_EQ(g.bytes % 16, 0);
    EXPECT_GT(g.count, 0);
    const auto* lo = static_cast<const char*>(g.base);
    const char* hi = lo + (g.count - 1) * g.stride + g.bytes;
    bool inside = false;
    for (const at::Tensor& b : buffers) {
      const auto* begin = static_cast<const char*>(b.data_ptr());
      inside = inside || (lo >= begin && hi <= begin + b.nbytes());
    }
    EXPECT_TRUE(inside);
  }
}

TEST(L2WarmGpu, DenseAndInt8PlansStayInsideTheWeight) {
  QB_REQUIRE_CUDA();
  const auto bytes = at::TensorOptions().device(at::kCUDA).dtype(at::kByte);
  struct Shape {
    int64_t N, K;
    bool gated;
  };
  // TinyLlama gate_up (gated) and down, Qwen2-7B gate_up (ungated: too wide for the gated form), down and qkv.
  for (const Shape s : {Shape{11264, 2048, true}, Shape{2048, 5632, false}, Shape{37888, 3584, false},
                        Shape{3584, 18944, false}, Shape{4608, 3584, false}}) {
    for (int64_t M : {1, 2, 16}) {
      SCOPED_TRACE(::testing::Message() << "N=" << s.N << " K=" << s.K << " M=" << M << " gated=" << s.gated);
      const at::Tensor w = at::empty({s.N * s.K * 2}, bytes);
      const L2WarmPlan dense = dense_gemv_l2_warm(HalfType::kBF16, w.data_ptr(), s.K, M, s.N, s.K, s.gated && M <= 8);
      expect_inside(dense, {w});
      if (M == 1) EXPECT_GT(l2_warm_bytes(dense), 0);  // every shape here streams past its first round
      const int64_t ldq = (s.K + 15) / 16 * 16;
      const at::Tensor q = at::empty({s.N * ldq}, bytes);
      Int8Weights iw;
      iw.q = static_cast<const int8_t*>(q.data_ptr());
      iw.ldq = ldq;
      iw.N = s.N;
      iw.K = s.K;
      expect_inside(int8_gemv_l2_warm(HalfType::kF16, iw, M), {q});
    }
  }
  // A small layer reads all of itself before its wait: nothing to warm.
  const at::Tensor o = at::empty({2048 * 2048 * 2}, bytes);
  EXPECT_EQ(dense_gemv_l2_warm(HalfType::kF16, o.data_ptr(), 2048, 1, 2048, 2048, false).regions, 0);
}

TEST(L2WarmGpu, FourBitPlansStayInsideCodesAndScales) {
  QB_REQUIRE_CUDA();
  const auto bytes = at::TensorOptions().device(at::kCUDA).dtype(at::kByte);
  struct Mode {
    Q4ScaleMode mode;
    int unit_shift;
    int64_t value_bytes;
  };
  for (const Mode m : {Mode{Q4ScaleMode::kAbsmaxF32, 0, 4}, Mode{Q4ScaleMode::kAbsmax16, 0, 2},
                       Mode{Q4ScaleMode::kAffine, 1, 4}, Mode{Q4ScaleMode::kAbsmaxNested, 0, 1}}) {
    for (const auto [N, K] : {std::pair<int64_t, int64_t>{37888, 3584}, {3584, 18944}, {3584, 3584}, {11264, 2048}}) {
      const int64_t units = K / (int64_t{64} << m.unit_shift);
      const at::Tensor codes = at::empty({q4_tile_bytes(N, K)}, bytes);
      const at::Tensor scales = at::empty({q4_n_tiles(N) * units * 16 * m.value_bytes}, bytes);
      const at::Tensor nested = at::empty({1 << 16}, bytes);
      Q4TileWeights w;
      w.tiles = static_cast<const uint8_t*>(codes.data_ptr());
      w.N = N;
      w.K = K;
      w.mode = m.mode;
      w.unit_shift = m.unit_shift;
      w.scales = scales.data_ptr();
      w.nested = static_cast<const float2*>(nested.data_ptr());
      w.nested_code = static_cast<const float*>(nested.data_ptr());
      for (int64_t M : {1, 8, 16, 64}) {
        for (bool gated : {false, true}) {
          SCOPED_TRACE(::testing::Message() << "mode " << static_cast<int>(m.mode) << " N=" << N << " K=" << K
                                            << " M=" << M << " gated=" << gated);
          const L2WarmPlan plan = q4_tile_gemm_l2_warm(DType::kBF16, w, M, gated && M <= kQ4GemvGatedMaxM);
          expect_inside(plan, {codes, scales});
          if (M == 1 && K >= 3584) EXPECT_GT(l2_warm_bytes(plan), 0);
        }
      }
    }
  }
}

TEST(L2WarmGpu, WarmingAttentionIsBitForBitTheAttention) {
  QB_REQUIRE_CUDA();
  at::manual_seed(41);
  const auto cuda = at::TensorOptions().device(at::kCUDA);
  // A 96 MiB buffer warmed in three regions (rows of a wide matrix, tiles, one contiguous run).
  const at::Tensor weights = at::empty({int64_t{96} << 20}, cuda.dtype(at::kByte));
  const auto* base = static_cast<const char*>(weights.data_ptr());
  L2WarmPlan plan;
  l2_warm_add(plan, base + 1024, 11264, 4096, 3072);
  l2_warm_add(plan, base + (int64_t{48} << 20), 264, 28672, 27648);
  l2_warm_add(plan, base + (int64_t{90} << 20), 1, 0, int64_t{6} << 20);
  for (const auto [heads, kv_heads, head_dim, batch] :
       {std::tuple<int64_t, int64_t, int64_t, int64_t>{28, 4, 128, 1}, {32, 4, 64, 1}, {28, 4, 128, 16}}) {
    for (at::ScalarType type : {at::kHalf, at::kBFloat16}) {
      SCOPED_TRACE(::testing::Message() << heads << " heads, D=" << head_dim << ", batch " << batch);
      const int64_t capacity = 300, position = 250, width = (heads + 2 * kv_heads) * head_dim;
      const at::Tensor qkv = at::randn({batch, width}, cuda.dtype(type));
      const at::Tensor keys = at::randn({batch, kv_heads, capacity, head_dim}, cuda.dtype(type));
      const at::Tensor values = at::randn_like(keys);
      const at::Tensor pos = at::full({1}, position, cuda.dtype(at::kLong));
      const at::Tensor angles = at::rand({capacity + 1, head_dim / 2}, cuda.dtype(at::kFloat));
      const at::Tensor cos = angles.cos(), sin = angles.sin();
      std::vector<at::Tensor> outs, caches;
      for (const L2WarmPlan& warm : {L2WarmPlan{}, plan}) {
        at::Tensor k = keys.clone(), v = values.clone();
        at::Tensor out = at::full({batch, heads * head_dim}, NAN, cuda.dtype(type));
        decode_attention(qkv.data_ptr(), k.data_ptr(), v.data_ptr(), pos.data_ptr<int64_t>(), cos.data_ptr<float>(),
                         sin.data_ptr<float>(), out.data_ptr(), batch, heads, kv_heads, head_dim, head_dim, capacity,
                         0.125f, type == at::kHalf ? DType::kF16 : DType::kBF16, stream(), warm);
        outs.push_back(out);
        caches.push_back(at::cat({k.flatten(), v.flatten()}));
      }
      EXPECT_FALSE(outs[0].isnan().any().item<bool>());
      EXPECT_TRUE(at::equal(outs[0], outs[1]));
      EXPECT_TRUE(at::equal(caches[0], caches[1]));
    }
  }
}

#endif  // QB_HAVE_CUDA

}  // namespace
}  // namespace qb::kernels
