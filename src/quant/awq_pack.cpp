#include "quantbench/quant/awq_pack.h"

#include <ATen/ATen.h>

#include "quantbench/core/error.h"

namespace qb::quant {
namespace {

constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};         // nibble j holds output 8c + order[j]
constexpr int kAwqReverseOrder[8] = {0, 4, 1, 5, 2, 6, 3, 7};  // output 8c + r sits in nibble reverse[r]

// [rows, cols] codes -> int32 [cols, rows/8]: the transpose of nn.Linear orientation, packed along rows.
at::Tensor pack_transposed(const at::Tensor& codes_u8) {
  const int64_t rows = codes_u8.size(0), cols = codes_u8.size(1);
  at::Tensor packed = at::empty({cols, rows / 8}, at::kInt);
  const uint8_t* src = codes_u8.data_ptr<uint8_t>();
  uint32_t* dst = reinterpret_cast<uint32_t*>(packed.data_ptr<int32_t>());
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t c = 0; c < rows / 8; ++c) {
      uint32_t word = 0;
      for (int j = 0; j < 8; ++j) word |= static_cast<uint32_t>(src[(8 * c + kAwqOrder[j]) * cols + i] & 15) << (4 * j);
      dst[i * (rows / 8) + c] = word;
    }
  return packed;
}

// int32 [cols, rows/8] -> uint8 [rows, cols].
at::Tensor unpack_transposed(const at::Tensor& packed_i32, int64_t rows) {
  const int64_t cols = packed_i32.size(0);
  at::Tensor codes = at::empty({rows, cols}, at::kByte);
  const uint32_t* src = reinterpret_cast<const uint32_t*>(packed_i32.data_ptr<int32_t>());
  uint8_t* dst = codes.data_ptr<uint8_t>();
  for (int64_t o = 0; o < rows; ++o)
    for (int64_t i = 0; i < cols; ++i)
      dst[o * cols + i] = static_cast<uint8_t>((src[i * (rows / 8) + o / 8] >> (4 * kAwqReverseOrder[o % 8])) & 15);
  return codes;
}

at::Tensor as_codes(const at::Tensor& t, const char* what) {
  const at::Tensor c = t.to(at::kCPU).to(at::kLong);
  QB_CHECK(c.numel() == 0 || (c.min().item<int64_t>() >= 0 && c.max().item<int64_t>() <= 15), kInvalidInput,
           "awq_pack: {} must hold integers 0..15", what);
  return c.to(at::kByte).contiguous();
}

}  // namespace

AwqPacked awq_pack(const at::Tensor& int_weight, const at::Tensor& zeros, const at::Tensor& scales) {
  QB_CHECK(int_weight.dim() == 2 && zeros.dim() == 2 && scales.dim() == 2, kInvalidInput,
           "awq_pack: int_weight [out, in], zeros and scales [out, in/g] must be 2-D");
  const int64_t out = int_weight.size(0), in = int_weight.size(1), groups = zeros.size(1);
  QB_CHECK(out % 8 == 0, kInvalidInput, "awq_pack: out_features {} is not a multiple of 8 (AutoAWQ packs 8 per int32)",
           out);
  QB_CHECK(groups > 0 && in % groups == 0, kInvalidInput, "awq_pack: in_features {} does not split into {} groups",
           in, groups);
  QB_CHECK(zeros.size(0) == out && scales.size(0) == out && scales.size(1) == groups, kInvalidInput,
           "awq_pack: zeros {} and scales {} must both be [{}, {}]", c10::str(zeros.sizes()),
           c10::str(scales.sizes()), out, groups);
  AwqPacked p;
  p.qweight = pack_transposed(as_codes(int_weight, "int_weight"));
  p.qzeros = pack_transposed(as_codes(zeros, "zeros"));
  p.scales = scales.to(at::kCPU, at::kHalf).t().contiguous();
  return p;
}

AwqUnpacked awq_unpack(const at::Tensor& qweight, const at::Tensor& qzeros, const at::Tensor& scales) {
  QB_CHECK(qweight.dim() == 2 && qzeros.dim() == 2 && scales.dim() == 2, kInvalidInput,
           "awq: qweight [in, out/8], qzeros [in/g, out/8] and scales [in/g, out] must be 2-D");
  QB_CHECK(qweight.scalar_type() == at::kInt && qzeros.scalar_type() == at::kInt, kInvalidInput,
           "awq: qweight and qzeros must be int32, got {} and {}", c10::toString(qweight.scalar_type()),
           c10::toString(qzeros.scalar_type()));
  const int64_t in = qweight.size(0), out = qweight.size(1) * 8, groups = scales.size(0);
  QB_CHECK(scales.size(1) == out && qzeros.size(0) == groups && qzeros.size(1) == out / 8, kInvalidInput,
           "awq: shapes disagree: qweight {}, qzeros {}, scales {} (want [in, out/8], [in/g, out/8], [in/g, out])",
           c10::str(qweight.sizes()), c10::str(qzeros.sizes()), c10::str(scales.sizes()));
  QB_CHECK(groups > 0 && in % groups == 0, kInvalidInput, "awq: in_features {} does not split into {} groups", in,
           groups);
  AwqUnpacked u;
  u.int_weight = unpack_transposed(qweight.to(at::kCPU).contiguous(), out);
  u.zeros = unpack_transposed(qzeros.to(at::kCPU).contiguous(), out);
  u.scales = scales.to(at::kCPU, at::kHalf).t().contiguous();
  return u;
}

}  // namespace qb::quant
