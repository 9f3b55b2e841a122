// AutoAWQ's GEMM tensors ("version": "gemm"), packed and unpacked exactly (awq/modules/linear/gemm.py
// WQLinear_GEMM.from_linear, awq/utils/packing_utils.py).
//   qweight int32 [in, out/8]: word (i, c) holds the codes of outputs 8c .. 8c+7 for input i, nibble j
//           (bits 4j .. 4j+3) holding output 8c + [0, 2, 4, 6, 1, 3, 5, 7][j]
//           (so output 8c + r sits in nibble [0, 4, 1, 5, 2, 6, 3, 7][r]);
//   qzeros  int32 [in/g, out/8]: the zero points, packed the same way;
//   scales  float16 [in/g, out].
//   w[o, i] = (q[o, i] - zero[o, i/g]) * scale[o, i/g].
// Here the unpacked tensors use nn.Linear's orientation: int_weight [out, in], zeros and scales [out, in/g].
#pragma once

#include <ATen/Tensor.h>

namespace qb::quant {

struct AwqPacked {
  at::Tensor qweight;  // int32 [in, out/8]
  at::Tensor qzeros;   // int32 [in/g, out/8]
  at::Tensor scales;   // float16 [in/g, out]
};

struct AwqUnpacked {
  at::Tensor int_weight;  // uint8 [out, in], 0..15
  at::Tensor zeros;       // uint8 [out, in/g], 0..15
  at::Tensor scales;      // float16 [out, in/g]
};

// int_weight [out, in] and zeros [out, in/g]: integers 0..15 (any integer or float dtype holding them);
// scales [out, in/g] (converted to float16). out % 8 == 0 and in % g == 0, else kInvalidInput naming the shape.
AwqPacked awq_pack(const at::Tensor& int_weight, const at::Tensor& zeros, const at::Tensor& scales);
AwqUnpacked awq_unpack(const at::Tensor& qweight, const at::Tensor& qzeros, const at::Tensor& scales);

}  // namespace qb::quant
