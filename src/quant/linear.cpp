#include "quantbench/quant/linear.h"

#include <ATen/ATen.h>

#include "quantbench/core/error.h"

namespace qb::quant {
namespace {

int64_t total_out(const std::vector<LinearPtr>& parts) {
  int64_t total = 0;
  for (const auto& part : parts) total += part->out_features();
  return total;
}

}  // namespace

ConcatLinear::ConcatLinear(std::vector<LinearPtr> parts)
    : Linear(parts.empty() ? 0 : parts.front()->in_features(), total_out(parts)), parts_(std::move(parts)) {
  QB_CHECK(!parts_.empty(), kInternal, "ConcatLinear needs at least one part");
  for (const auto& part : parts_) {
    QB_CHECK(part->in_features() == in_features(), kInternal, "ConcatLinear parts disagree on in_features");
  }
}

at::Tensor ConcatLinear::forward(const at::Tensor& x) const {
  std::vector<at::Tensor> outputs;
  outputs.reserve(parts_.size());
  for (const auto& part : parts_) outputs.push_back(part->forward(x));
  return at::cat(outputs, -1);
}

void ConcatLinear::prepare(int64_t rows) const {
  for (const auto& part : parts_) part->prepare(rows);
}

at::Tensor ConcatLinear::dequantize() const {
  std::vector<at::Tensor> weights;
  for (const auto& part : parts_) weights.push_back(part->dequantize());
  return at::cat(weights, 0);
}

int64_t ConcatLinear::weight_bytes() const {
  int64_t total = 0;
  for (const auto& part : parts_) total += part->weight_bytes();
  return total;
}

std::string ConcatLinear::format_name() const { return parts_.front()->format_name(); }

}  // namespace qb::quant
