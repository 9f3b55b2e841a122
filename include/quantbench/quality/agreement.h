// Agreement of greedy generations with a baseline precision's, on the same prompts: the fraction
// of generated positions where the tokens are equal, and the first position (per sequence) where
// they differ (-1 when they never do).
#pragma once

#include <ATen/Tensor.h>
#include <nlohmann/json.hpp>

namespace qb::quality {

// tokens and baseline [B, T] int64 (CPU); compares the common prefix length of T.
nlohmann::json greedy_agreement(const at::Tensor& tokens, const at::Tensor& baseline);

}  // namespace qb::quality
