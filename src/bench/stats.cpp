#include "quantbench/bench/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace qb::bench {

double percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double rank = q / 100.0 * static_cast<double>(values.size() - 1);
  const size_t lower = static_cast<size_t>(std::floor(rank));
  const size_t upper = std::min(lower + 1, values.size() - 1);
  return values[lower] + (rank - static_cast<double>(lower)) * (values[upper] - values[lower]);
}

Summary summarize(std::vector<double> values) {
  Summary s;
  s.count = values.size();
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  s.min = values.front();
  s.max = values.back();
  s.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
  s.median = percentile(values, 50);
  s.p90 = percentile(values, 90);
  s.p99 = percentile(values, 99);
  if (values.size() > 1) {
    double squares = 0;
    for (double v : values) squares += (v - s.mean) * (v - s.mean);
    s.stddev = std::sqrt(squares / static_cast<double>(values.size() - 1));
  }
  return s;
}

nlohmann::json to_json(const Summary& s) {
  return {{"count", s.count}, {"mean", s.mean}, {"median", s.median}, {"min", s.min},
          {"max", s.max},     {"stddev", s.stddev}, {"p90", s.p90}, {"p99", s.p99}};
}

Summary summary_from_json(const nlohmann::json& j) {
  Summary s;
  s.count = j.value("count", size_t{0});
  s.mean = j.value("mean", 0.0);
  s.median = j.value("median", 0.0);
  s.min = j.value("min", 0.0);
  s.max = j.value("max", 0.0);
  s.stddev = j.value("stddev", 0.0);
  s.p90 = j.value("p90", 0.0);
  s.p99 = j.value("p99", 0.0);
  return s;
}

}  // namespace qb::bench
