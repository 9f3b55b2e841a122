// `quantbench compare BASE NEW`: runs matched by key; a figure regresses when it is worse than the
// base by more than the allowed fraction PLUS the noise both runs measured (noise_sigmas x the
// combined relative standard deviation), so a noisy machine does not fail CI on noise alone.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "quantbench/report/result.h"

namespace qb::report {

struct CompareOptions {
  double max_slowdown = 0.05;        // decode tokens/s may drop, prefill ms may rise, by this fraction
  double max_memory_growth = 0.05;   // peak allocated bytes may grow by this fraction (no noise term)
  double noise_sigmas = 2.0;
};

struct FigureComparison {
  std::string figure;                // "decode_tokens_per_s", "prefill_ms", "peak_allocated_bytes"
  double base = 0, current = 0;
  double ratio = 0;                  // current / base
  double allowed_change = 0;         // fraction, threshold + noise
  bool regressed = false;
};

struct RunComparison {
  RunKey key;
  std::string verdict;               // "ok" | "regressed" | "failed" | "missing" | "new" | "base_failed"
  std::string detail;
  std::vector<FigureComparison> figures;
};

struct CompareReport {
  std::vector<RunComparison> runs;
  bool passed = true;
};

CompareReport compare_results(const std::vector<nlohmann::json>& base, const std::vector<nlohmann::json>& current,
                              const CompareOptions& options);
std::string render_compare_markdown(const CompareReport& report);
// "5%" or "0.05" -> 0.05; throws kInvalidInput otherwise.
double parse_fraction(const std::string& text, const std::string& flag);

}  // namespace qb::report
