#include "quantbench/quant/dense.h"

#include <ATen/ATen.h>

#include "quantbench/core/error.h"
#include "quantbench/quant/dense_matmul.h"

namespace qb::quant {
namespace {

class DenseFormat final : public WeightFormat {
 public:
  DenseFormat(std::string name, at::ScalarType dtype) : name_(std::move(name)), dtype_(dtype) {}
  std::string name() const override { return name_; }
  double nominal_bits_per_weight(const FormatOptions&) const override { return 8.0 * c10::elementSize(dtype_); }

  LinearPtr quantize(const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                     const FormatOptions& options) const override {
    QB_CHECK(weight.dim() == 2, kInvalidInput, "{}: weight must be 2-D [out, in], got {}-D", name_, weight.dim());
    auto to_target = [&](const at::Tensor& t) { return t.to(options.device, dtype_).contiguous(); };
    std::optional<at::Tensor> stored_bias;
    if (bias.has_value() && bias->defined()) stored_bias = to_target(*bias);
    return std::make_unique<DenseLinear>(to_target(weight), stored_bias, name_);
  }

  LinearPtr fuse(std::vector<LinearPtr> parts) const override {
    std::vector<at::Tensor> weights, biases;
    bool any_bias = false;
    for (const auto& part : parts) any_bias |= static_cast<const DenseLinear&>(*part).has_bias();
    for (const auto& part : parts) {
      const auto& dense = static_cast<const DenseLinear&>(*part);
      weights.push_back(dense.weight());
      if (any_bias) {
        biases.push_back(dense.has_bias() ? dense.bias()
                                          : at::zeros({dense.out_features()}, dense.weight().options()));
      }
    }
    std::optional<at::Tensor> bias;
    if (any_bias) bias = at::cat(biases, 0);
    return std::make_unique<DenseLinear>(at::cat(weights, 0).contiguous(), bias, name_);
  }

 private:
  std::string name_;
  at::ScalarType dtype_;
};

}  // namespace

std::unique_ptr<WeightFormat> make_dense_format(const std::string& name, at::ScalarType dtype) {
  return std::make_unique<DenseFormat>(name, dtype);
}

DenseLinear::DenseLinear(at::Tensor weight, std::optional<at::Tensor> bias, std::string format)
    : Linear(weight.size(1), weight.size(0)), weight_(std::move(weight)), bias_(std::move(bias)),
      format_(std::move(format)) {}

at::Tensor DenseLinear::forward(const at::Tensor& x) const {
  QB_CHECK(x.size(-1) == in_features(), kInvalidInput, "{} linear: input has {} features, weight expects {}",
           format_, x.size(-1), in_features());
  const at::Tensor input = x.scalar_type() == weight_.scalar_type() ? x : x.to(weight_.scalar_type());
  return dense_matmul(input, weight_, bias_);
}

at::Tensor DenseLinear::forward_gated(const at::Tensor& x, GateActivation act) const {
  return dense_matmul_gated(x, weight_, bias_, act);  // declines x of another width or dtype than the weight's
}

at::Tensor DenseLinear::dequantize() const { return weight_.to(at::kCPU, at::kFloat); }

int64_t DenseLinear::weight_bytes() const {
  return static_cast<int64_t>(weight_.nbytes()) + (bias_.has_value() ? static_cast<int64_t>(bias_->nbytes()) : 0);
}

}  // namespace qb::quant
