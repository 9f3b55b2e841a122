#include "quantbench/report/compare.h"

#include <fmt/format.h>

#include <cmath>
#include <map>

#include "quantbench/core/error.h"

namespace qb::report {
namespace {

struct Figure {
  double median = 0, stddev = 0;
  bool present = false;
};

Figure timing_figure(const nlohmann::json& result, const char* name) {
  Figure f;
  if (result.contains("timing") && result["timing"].contains(name)) {
    const auto& s = result["timing"][name];
    f.median = s.value("median", 0.0);
    f.stddev = s.value("stddev", 0.0);
    f.present = f.median > 0;
  }
  return f;
}

double relative_spread(const Figure& f) { return f.median > 0 ? f.stddev / f.median : 0; }

}  // namespace

double parse_fraction(const std::string& text, const std::string& flag) {
  try {
    size_t used = 0;
    double value = std::stod(text, &used);
    const std::string rest = text.substr(used);
    if (rest == "%") {
      value /= 100;
    } else if (!rest.empty()) {
      throw std::invalid_argument(rest);
    }
    if (value < 0) throw std::invalid_argument("negative");
    return value;
  } catch (const std::exception&) {
    fail(ErrorKind::kInvalidInput, "{} '{}' is not a fraction like 5% or 0.05", flag, text);
  }
}

CompareReport compare_results(const std::vector<nlohmann::json>& base, const std::vector<nlohmann::json>& current,
                              const CompareOptions& options) {
  std::map<std::string, const nlohmann::json*> base_by_key, current_by_key;
  std::map<std::string, RunKey> keys;
  for (const auto& r : base) {
    const RunKey key = key_of(r);
    base_by_key[key.str()] = &r;
    keys[key.str()] = key;
  }
  for (const auto& r : current) {
    const RunKey key = key_of(r);
    current_by_key[key.str()] = &r;
    keys[key.str()] = key;
  }
  CompareReport report;
  for (const auto& [name, key] : keys) {
    RunComparison run;
    run.key = key;
    const auto b = base_by_key.find(name);
    const auto c = current_by_key.find(name);
    if (c == current_by_key.end()) {
      run.verdict = "missing";
      run.detail = "in the base, not in the new results";
    } else if (b == base_by_key.end()) {
      run.verdict = "new";
      run.detail = "not in the base";
    } else if (c->second->value("status", "") != "ok") {
      run.verdict = b->second->value("status", "") == "ok" ? "failed" : "base_failed";
      run.detail = (*c->second).contains("error") ? (*c->second)["error"].value("message", "") : "";
    } else if (b->second->value("status", "") != "ok") {
      run.verdict = "base_failed";
      run.detail = "the base run failed; nothing to compare";
    } else {
      run.verdict = "ok";
      const nlohmann::json& old_run = *b->second;
      const nlohmann::json& new_run = *c->second;
      // Higher is better for throughput, lower for times: express both as "how much worse".
      for (const auto& [figure, higher_is_better] : std::vector<std::pair<const char*, bool>>{
               {"decode_tokens_per_s", true}, {"prefill_ms", false}}) {
        const Figure old_f = timing_figure(old_run, figure), new_f = timing_figure(new_run, figure);
        if (!old_f.present || !new_f.present) continue;
        FigureComparison fc;
        fc.figure = figure;
        fc.base = old_f.median;
        fc.current = new_f.median;
        fc.ratio = new_f.median / old_f.median;
        const double noise = options.noise_sigmas * std::hypot(relative_spread(old_f), relative_spread(new_f));
        fc.allowed_change = options.max_slowdown + noise;
        const double worse = higher_is_better ? 1.0 - fc.ratio : fc.ratio - 1.0;
        fc.regressed = worse > fc.allowed_change;
        run.figures.push_back(fc);
      }
      // Compared only where both runs measured it (null on the CPU).
      auto peak_of = [](const nlohmann::json& run) {
        if (!run.contains("memory") || !run["memory"].contains("peak_allocated_bytes")) return 0.0;
        const nlohmann::json& v = run["memory"]["peak_allocated_bytes"];
        return v.is_number() ? v.get<double>() : 0.0;
      };
      const double old_mem = peak_of(old_run), new_mem = peak_of(new_run);
      if (old_mem > 0 && new_mem > 0) {
        FigureComparison fc;
        fc.figure = "peak_allocated_bytes";
        fc.base = old_mem;
        fc.current = new_mem;
        fc.ratio = new_mem / old_mem;
        fc.allowed_change = options.max_memory_growth;
        fc.regressed = fc.ratio - 1.0 > fc.allowed_change;
        run.figures.push_back(fc);
      }
      for (const auto& fc : run.figures) {
        if (fc.regressed) {
          run.verdict = "regressed";
          run.detail += fmt::format("{}{} x{:.3f} (allowed {:.1f}%)", run.detail.empty() ? "" : "; ", fc.figure,
                                    fc.ratio, 100 * fc.allowed_change);
        }
      }
    }
    if (run.verdict == "regressed" || run.verdict == "failed" || run.verdict == "missing") report.passed = false;
    report.runs.push_back(std::move(run));
  }
  return report;
}

std::string render_compare_markdown(const CompareReport& report) {
  std::string out = "| run | verdict | decode tok/s (new/base) | prefill ms (new/base) | peak alloc (new/base) | detail |\n";
  out += "|---|---|---|---|---|---|\n";
  for (const auto& run : report.runs) {
    std::map<std::string, std::string> cells;
    for (const auto& fc : run.figures) {
      cells[fc.figure] = fmt::format("{:.4g} / {:.4g} (x{:.3f})", fc.current, fc.base, fc.ratio);
    }
    auto cell = [&](const char* figure) { return cells.count(figure) ? cells[figure] : std::string("-"); };
    out += fmt::format("| {} | {} | {} | {} | {} | {} |\n", run.key.str(), run.verdict, cell("decode_tokens_per_s"),
                       cell("prefill_ms"), cell("peak_allocated_bytes"), run.detail);
  }
  out += report.passed ? "\nverdict: PASS\n" : "\nverdict: FAIL\n";
  return out;
}

}  // namespace qb::report
