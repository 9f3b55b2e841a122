// The table of quality records (schema quantbench.quality/1, from `quantbench ppl` and sweeps): one row
// per (model, precision, text), perplexity with its window and scored tokens, and against the baseline
// precision the KL divergence and top-1 agreement of the next-token distributions.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace qb::report {

struct QualityRow {
  std::string model, precision, device, text, weights, baseline, format_options, status, error;
  int64_t ctx = 0, stride = 0, scored_tokens = 0;
  double perplexity = -1;
  double kl_mean = -1, kl_p99 = -1, top1_agreement = -1;  // -1: no baseline compared
};

// Rows of the quality records among `results`, in their order; other records are skipped.
std::vector<QualityRow> quality_rows(const std::vector<nlohmann::json>& results);

std::string render_quality_markdown(const std::vector<QualityRow>& rows);
std::string render_quality_csv(const std::vector<QualityRow>& rows);

}  // namespace qb::report
