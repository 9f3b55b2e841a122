// The "quality" section of a quantbench.quality/1 record, one function for every writer (ppl,
// sweep), so the fields stay the same everywhere.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "quantbench/model/causal_lm.h"
#include "quantbench/quality/perplexity.h"

namespace qb::quality {

// `baseline` names the precision the KL and top-1 figures compare with (used when r has them).
nlohmann::json quality_section(const PerplexityResult& r, const PerplexityOptions& options, const model::CausalLM& lm,
                               const std::string& weights, const std::string& baseline);

}  // namespace qb::quality
