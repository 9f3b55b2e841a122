// Dense formats: fp32, fp16, bf16. The weight is stored [out, in] in the format's dtype; on CUDA a
// GEMV kernel serves decode (small M), cuBLAS serves prefill.
#pragma once

#include "quantbench/quant/format.h"

namespace qb::quant {

std::unique_ptr<WeightFormat> make_dense_format(const std::string& name, at::ScalarType dtype);

class DenseLinear final : public Linear {
 public:
  // weight [out, in] and bias [out] already in the storage dtype and on the target device.
  DenseLinear(at::Tensor weight, std::optional<at::Tensor> bias, std::string format);
  at::Tensor forward(const at::Tensor& x) const override;
  at::Tensor forward_gated(const at::Tensor& x, GateActivation act) const override;
  at::Tensor dequantize() const override;
  int64_t weight_bytes() const override;
  std::string format_name() const override { return format_; }
  const at::Tensor& weight() const { return weight_; }
  bool has_bias() const { return bias_.has_value(); }
  const at::Tensor& bias() const { return *bias_; }

 private:
  at::Tensor weight_;
  std::optional<at::Tensor> bias_;
  std::string format_;
};

}  // namespace qb::quant
