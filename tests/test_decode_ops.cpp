// The fused decode-step kernels against plain libtorch on fresh random inputs (GPU only).
// Bounds: fp32 1e-5 (fp32 accumulation, different summation order); fp16 2e-3 and bf16 1.6e-2
// (one rounding of the output, 2^-11 and 2^-8, plus the rounded q the kernel and reference share).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "test_support.h"

#ifdef QB_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAStream.h>

#include "quantbench/kernels/decode_ops.h"

namespace qb::kernels {
namespace {

DType dtype_of(at::ScalarType t) { return t == at::kFloat ? DType::kF32 : t == at::kHalf ? DType::kF16 : DType::kBF16; }
double bound_of(at::ScalarType t) { return t == at::kFloat ? 1e-5 : t == at::kHalf ? 2e-3 : 1.6e-2; }
cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

at::Tensor rotate(const at::Tensor& x, const at::Tensor& cos_row, const at::Tensor& sin_row, int64_t rotary) {
  // x [..., D] fp32; rotate_half over the first `rotary` dims.
  const int64_t half = rotary / 2;
  at::Tensor r = x.clone();
  const at::Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  r.narrow(-1, 0, half).copy_(x1 * cos_row - x2 * sin_row);
  r.narrow(-1, half, half).copy_(x2 * cos_row + x1 * sin_row);
  return r;
}

struct AttentionCase {
  int64_t batch, heads, kv_heads, head_dim, rotary, capacity, position;
};

// Fresh random inputs of one case: qkv [B, (H + 2 Hkv) D], caches [B, Hkv, capacity, D], rotary tables
// [capacity + 1, rotary / 2] (angles up to 2 pi).
struct AttentionInputs {
  at::Tensor qkv, keys, values, position, cos, sin;
  AttentionInputs(const AttentionCase& c, at::ScalarType type) {
    const auto cuda = at::TensorOptions().device(at::kCUDA);
    qkv = at::randn({c.batch, (c.heads + 2 * c.kv_heads) * c.head_dim}, cuda.dtype(type));
    keys = at::randn({c.batch, c.kv_heads, c.capacity, c.head_dim}, cuda.dtype(type));
    values = at::randn_like(keys);
    position = at::full({1}, c.position, cuda.dtype(at::kLong));
    const at::Tensor angles = at::rand({c.capacity + 1, std::max<int64_t>(c.rotary / 2, 1)}, cuda.dtype(at::kFloat)) * 6.28;
    cos = angles.cos();
    sin = angles.sin();
  }
  // decode_attention on copies of the caches (returned through keys_out / values_out); the output, NaN-filled first.
  at::Tensor run(const AttentionCase& c, at::ScalarType type, int heads_per_block, at::Tensor& keys_out,
                 at::Tensor& values_out, bool successor_loads_early = false) const {
    keys_out = keys.clone();
    values_out = values.clone();
    at::Tensor out = at::full({c.batch, c.heads * c.head_dim}, NAN, qkv.options());
    decode_attention(qkv.data_ptr(), keys_out.data_ptr(), values_out.data_ptr(), position.data_ptr<int64_t>(),
                     c.rotary > 0 ? cos.data_ptr<float>() : nullptr, c.rotary > 0 ? sin.data_ptr<float>() : nullptr,
                     out.data_ptr(), c.batch, c.heads, c.kv_heads, c.head_dim, c.rotary, c.capacity,
                     1.0f / std::sqrt(static_cast<float>(c.head_dim)), dtype_of(type), stream(), heads_per_block,
                     successor_loads_early);
    return out;
  }
};

TEST(DecodeOpsGpu, AttentionMatchesSdpaOverTheCache) {
  QB_REQUIRE_CUDA();
  at::manual_seed(11);
  for (const AttentionCase c : {AttentionCase{1, 28, 4, 128, 128, 260, 200}, AttentionCase{2, 12, 12, 64, 0, 40, 0},
                                AttentionCase{3, 32, 4, 64, 64, 300, 299}, AttentionCase{1, 32, 32, 80, 32, 100, 77},
                                AttentionCase{2, 14, 2, 64, 64, 513, 512}, AttentionCase{1, 8, 1, 256, 128, 20, 9},
                                // 16 query heads per K/V head (one block per query head: any group size)
                                AttentionCase{2, 32, 2, 128, 64, 70, 33},
                                // more blocks than SMs: the kernel grouped by K/V head (7, 8 and 4 heads a block;
                                // 16 query heads a K/V head in two blocks; 80-dim rows reduced in shared memory)
                                AttentionCase{6, 28, 4, 128, 128, 300, 290}, AttentionCase{16, 32, 4, 64, 64, 300, 299},
                                AttentionCase{8, 32, 8, 80, 32, 100, 77}, AttentionCase{5, 32, 2, 128, 64, 600, 520},
                                // the last position of the one-pass path (255) and the first past it (256)
                                AttentionCase{1, 32, 4, 64, 64, 300, 255},
                                AttentionCase{1, 28, 4, 128, 128, 300, 256}}) {
    for (at::ScalarType type : {at::kFloat, at::kHalf, at::kBFloat16}) {
      SCOPED_TRACE(::testing::Message() << "H=" << c.heads << " Hkv=" << c.kv_heads << " D=" << c.head_dim
                                        << " pos=" << c.position << " " << c10::toString(type));
      const AttentionInputs in(c, type);
      const at::Tensor &qkv = in.qkv, &cos = in.cos, &sin = in.sin;
      const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
      at::Tensor keys, values;
      const at::Tensor out = in.run(c, type, -1, keys, values);
      // Reference in fp32 from the same rounded inputs.
      at::Tensor q = qkv.narrow(1, 0, c.heads * c.head_dim).view({c.batch, c.heads, c.head_dim}).to(at::kFloat);
      at::Tensor k = qkv.narrow(1, c.heads * c.head_dim, c.kv_heads * c.head_dim).view({c.batch, c.kv_heads, c.head_dim}).to(at::kFloat);
      const at::Tensor v = qkv.narrow(1, (c.heads + c.kv_heads) * c.head_dim, c.kv_heads * c.head_dim).view({c.batch, c.kv_heads, c.head_dim});
      if (c.rotary > 0) {
        q = rotate(q, cos[c.position], sin[c.position], c.rotary).to(type).to(at::kFloat);
        k = rotate(k, cos[c.position], sin[c.position], c.rotary);
      }
      at::Tensor ref_keys = in.keys.clone(), ref_values = in.values.clone();
      ref_keys.select(2, c.position).copy_(k.to(type));
      ref_values.select(2, c.position).copy_(v);
      // The cache now holds the rotated k and v at `position`, and nothing else changed.
      EXPECT_LT(test::relative_error(keys, ref_keys), bound_of(type));
      EXPECT_TRUE(at::equal(values, ref_values));
      const int64_t group = c.heads / c.kv_heads;
      const at::Tensor k_all = ref_keys.narrow(2, 0, c.position + 1).to(at::kFloat).repeat_interleave(group, 1);
      const at::Tensor v_all = ref_values.narrow(2, 0, c.position + 1).to(at::kFloat).repeat_interleave(group, 1);
      const at::Tensor probs = at::softmax(at::matmul(q.unsqueeze(2), k_all.transpose(2, 3)) * scale, -1);
      const at::Tensor ref = at::matmul(probs, v_all).view({c.batch, c.heads * c.head_dim});
      EXPECT_FALSE(out.isnan().any().item<bool>());
      EXPECT_LT(test::relative_error(out, ref), bound_of(type) + 1e-5);
    }
  }
}

// The kernel grouped by K/V head keeps, for every query head, the arithmetic of the per-head kernel's variant for
// batched decode (more blocks than SMs): the outputs and caches are equal bit for bit, whatever the heads a block.
TEST(DecodeOpsGpu, GroupedAttentionIsThePerHeadKernelBitForBit) {
  QB_REQUIRE_CUDA();
  at::manual_seed(12);
  for (const AttentionCase c : {AttentionCase{6, 28, 4, 128, 128, 300, 290}, AttentionCase{16, 32, 4, 64, 64, 300, 299},
                                AttentionCase{8, 32, 8, 80, 32, 100, 77}, AttentionCase{5, 32, 2, 128, 64, 600, 520},
                                AttentionCase{12, 14, 2, 64, 0, 40, 0}}) {
    // The per-head kernel's batched variant runs where its blocks outnumber the SMs (an H100 has 132).
    if (c.batch * c.heads <= at::cuda::getCurrentDeviceProperties()->multiProcessorCount) continue;
    for (at::ScalarType type : {at::kFloat, at::kHalf, at::kBFloat16}) {
      const int64_t group = c.heads / c.kv_heads;
      const AttentionInputs in(c, type);
      at::Tensor k_ref, v_ref;
      const at::Tensor ref = in.run(c, type, 0, k_ref, v_ref);
      ASSERT_FALSE(ref.isnan().any().item<bool>());
      for (const int64_t hpb : {int64_t{1}, int64_t{3}, std::min<int64_t>(group, 8)}) {
        SCOPED_TRACE(::testing::Message() << "B=" << c.batch << " H=" << c.heads << " Hkv=" << c.kv_heads << " D="
                                          << c.head_dim << " pos=" << c.position << " heads/block=" << hpb << " "
                                          << c10::toString(type));
        if (hpb > group) continue;
        at::Tensor keys, values;
        const at::Tensor out = in.run(c, type, static_cast<int>(hpb), keys, values);
        EXPECT_TRUE(at::equal(out, ref));
        EXPECT_TRUE(at::equal(keys, k_ref));
        EXPECT_TRUE(at::equal(values, v_ref));
      }
    }
  }
}

// Where the next kernel loads its whole weight before its wait, the per-head kernel lets it start before its own wait
// (kernels/pdl.cuh): a scheduling change only, so the same bits, here with a kernel queued behind it as in decode.
TEST(DecodeOpsGpu, AttentionTriggeringFirstIsTheSameBits) {
  QB_REQUIRE_CUDA();
  at::manual_seed(13);
  for (const AttentionCase c : {AttentionCase{1, 28, 4, 128, 128, 260, 200}, AttentionCase{2, 32, 8, 64, 64, 300, 299},
                                AttentionCase{6, 28, 4, 128, 128, 300, 290}}) {
    for (at::ScalarType type : {at::kHalf, at::kBFloat16}) {
      SCOPED_TRACE(::testing::Message() << "B=" << c.batch << " H=" << c.heads << " " << c10::toString(type));
      const AttentionInputs in(c, type);
      at::Tensor k_ref, v_ref, keys, values;
      const at::Tensor ref = in.run(c, type, -1, k_ref, v_ref, false);
      const at::Tensor out = in.run(c, type, -1, keys, values, true);
      const at::Tensor after = out * 2;  // queued behind the attention on the same stream
      EXPECT_FALSE(ref.isnan().any().item<bool>());
      EXPECT_TRUE(at::equal(out, ref));
      EXPECT_TRUE(at::equal(after, ref * 2));
      EXPECT_TRUE(at::equal(keys, k_ref));
      EXPECT_TRUE(at::equal(values, v_ref));
    }
  }
}

TEST(DecodeOpsGpu, AddNormActivationEmbeddingArgmax) {
  QB_REQUIRE_CUDA();
  at::manual_seed(12);
  const auto cuda = at::TensorOptions().device(at::kCUDA);
  for (at::ScalarType type : {at::kFloat, at::kHalf, at::kBFloat16}) {
    SCOPED_TRACE(c10::toString(type));
    const auto opts = cuda.dtype(type);
    // 16-bit rows with hidden % 8 == 0 take the vectorised kernel (8200: two 16-byte pieces per thread);
    // 771 and fp32 the generic one.
    for (int64_t hidden : {64, 771, 3584, 8200}) {
      SCOPED_TRACE(hidden);
      at::Tensor residual = at::randn({5, hidden}, opts);
      const at::Tensor delta = at::randn({5, hidden}, opts), weight = at::randn({hidden}, opts), bias = at::randn({hidden}, opts);
      const at::Tensor summed = residual + delta;
      at::Tensor out = at::full_like(residual, NAN);
      add_norm(residual.data_ptr(), delta.data_ptr(), weight.data_ptr(), bias.data_ptr(), out.data_ptr(), 5, hidden,
               1e-5f, NormType::kLayerNorm, dtype_of(type), stream());
      EXPECT_TRUE(at::equal(residual, summed));
      EXPECT_LT(test::relative_error(out, at::layer_norm(summed.to(at::kFloat), {hidden}, weight.to(at::kFloat),
                                                          bias.to(at::kFloat), 1e-5)), bound_of(type));
      at::Tensor rms_out = at::full_like(residual, NAN);
      add_norm(residual.data_ptr(), nullptr, weight.data_ptr(), nullptr, rms_out.data_ptr(), 5, hidden, 1e-6f,
               NormType::kRmsNorm, dtype_of(type), stream());
      const at::Tensor x = residual.to(at::kFloat);
      const at::Tensor rms_ref = weight.to(at::kFloat) * (x * at::rsqrt(x.pow(2).mean(-1, true) + 1e-6)).to(type).to(at::kFloat);
      EXPECT_LT(test::relative_error(rms_out, rms_ref), bound_of(type));
    }
    const at::Tensor gate_up = at::randn({3, 2 * 301}, opts);
    at::Tensor act = at::full({3, 301}, NAN, opts);
    activation(gate_up.data_ptr(), act.data_ptr(), 3, 301, true, ActType::kSilu, dtype_of(type), stream());
    const at::Tensor g = gate_up.narrow(1, 0, 301).to(at::kFloat), u = gate_up.narrow(1, 301, 301).to(at::kFloat);
    EXPECT_LT(test::relative_error(act, at::silu(g) * u), 2 * bound_of(type));
    // The 16-byte kernel (inter a multiple of 8, enough rows to fill the GPU): the same values as the reference.
    {
      const int64_t rows = 600, inter = 520;
      const at::Tensor gu = at::randn({rows, 2 * inter}, opts);
      at::Tensor a = at::full({rows, inter}, NAN, opts);
      activation(gu.data_ptr(), a.data_ptr(), rows, inter, true, ActType::kSilu, dtype_of(type), stream());
      const at::Tensor gf = gu.narrow(1, 0, inter).to(at::kFloat), uf = gu.narrow(1, inter, inter).to(at::kFloat);
      EXPECT_LT(test::relative_error(a, at::silu(gf) * uf), 2 * bound_of(type));
      EXPECT_FALSE(at::isnan(a).any().item<bool>());
      at::Tensor plain = at::full({rows, 2 * inter}, NAN, opts);
      activation(gu.data_ptr(), plain.data_ptr(), rows, 2 * inter, false, ActType::kGeluTanh, dtype_of(type), stream());
      EXPECT_LT(test::relative_error(plain, at::gelu(gu.to(at::kFloat), "tanh")), bound_of(type));
      EXPECT_FALSE(at::isnan(plain).any().item<bool>());
    }
    at::Tensor gelu = at::full({3, 602}, NAN, opts);
    activation(gate_up.data_ptr(), gelu.data_ptr(), 3, 602, false, ActType::kGeluTanh, dtype_of(type), stream());
    EXPECT_LT(test::relative_error(gelu, at::gelu(gate_up.to(at::kFloat), "tanh")), bound_of(type));

    const at::Tensor table = at::randn({97, 40}, opts), positions = at::randn({70, 40}, opts);
    const at::Tensor tokens = at::tensor(std::vector<int64_t>{5, 96, 0}, cuda.dtype(at::kLong));
    const at::Tensor position = at::full({1}, 61, cuda.dtype(at::kLong));
    at::Tensor embedded = at::full({3, 40}, NAN, opts);
    embed_tokens(tokens.data_ptr<int64_t>(), position.data_ptr<int64_t>(), table.data_ptr(), positions.data_ptr(), 2,
                 embedded.data_ptr(), 3, 40, dtype_of(type), stream());
    EXPECT_TRUE(at::equal(embedded, table.index_select(0, tokens) + positions[63]));

    // Rows split into many slices (152064: Qwen2's vocabulary) and one short row; winners at slice edges.
    for (const int64_t vocab : {int64_t{50257}, int64_t{152064}, int64_t{7}}) {
      at::Tensor logits = at::randn({6, vocab}, opts);
      logits[2][777 % vocab] = 1e4;       // a clear winner
      logits[3].fill_(1);                 // ties: the first index wins
      logits[4][vocab - 1] = 1e4;         // the last index
      logits[5][(vocab / 2) | 1] = NAN;   // NaN counts as the maximum
      at::Tensor best = at::full({6}, -1, cuda.dtype(at::kLong));
      at::Tensor scratch = at::empty({static_cast<int64_t>(argmax_scratch_bytes(6, vocab))}, cuda.dtype(at::kByte));
      argmax_rows(logits.data_ptr(), best.data_ptr<int64_t>(), 6, vocab, scratch.data_ptr(), dtype_of(type), stream());
      EXPECT_TRUE(at::equal(best, logits.argmax(-1))) << "vocab " << vocab << ": " << best << " vs "
                                                      << logits.argmax(-1);
      EXPECT_EQ(best[3].item<int64_t>(), 0);
      EXPECT_EQ(best[5].item<int64_t>(), (vocab / 2) | 1);
    }
  }
}

}  // namespace
}  // namespace qb::kernels
#endif
