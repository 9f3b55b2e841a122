// Summary statistics of a sample (timings of repetitions or of decode steps). Percentiles use
// linear interpolation between closest ranks (numpy's default), so small samples are honest.
#pragma once

#include <nlohmann/json.hpp>

#include <vector>

namespace qb::bench {

struct Summary {
  size_t count = 0;
  double mean = 0, median = 0, min = 0, max = 0, stddev = 0;  // stddev: sample (n - 1)
  double p90 = 0, p99 = 0;
};

Summary summarize(std::vector<double> values);
double percentile(std::vector<double> sorted_values, double q);  // q in [0, 100]; input need not be sorted

nlohmann::json to_json(const Summary& summary);
Summary summary_from_json(const nlohmann::json& json);

}  // namespace qb::bench
