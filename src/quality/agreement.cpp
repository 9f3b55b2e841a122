#include "quantbench/quality/agreement.h"

#include <ATen/ATen.h>

#include "quantbench/core/error.h"

namespace qb::quality {

nlohmann::json greedy_agreement(const at::Tensor& tokens, const at::Tensor& baseline) {
  QB_CHECK(tokens.dim() == 2 && baseline.dim() == 2 && tokens.size(0) == baseline.size(0), kInvalidInput,
           "greedy agreement needs [batch, tokens] of the same batch");
  const int64_t length = std::min(tokens.size(1), baseline.size(1));
  const at::Tensor equal = tokens.narrow(1, 0, length).eq(baseline.narrow(1, 0, length));
  nlohmann::json first = nlohmann::json::array();
  for (int64_t b = 0; b < equal.size(0); ++b) {
    int64_t position = -1;
    for (int64_t t = 0; t < length; ++t) {
      if (!equal[b][t].item<bool>()) {
        position = t;
        break;
      }
    }
    first.push_back(position);
  }
  return {{"agreement", equal.to(at::kDouble).mean().item<double>()}, {"first_divergence", first},
          {"compared_tokens", equal.numel()}};
}

}  // namespace qb::quality
