// `quantbench compare BASE NEW`: the CI regression gate. Exit 0: pass; 1: a regression, a failed
// or a missing run; 2: bad input.
#include <memory>

#include "commands.h"
#include "quantbench/report/compare.h"

namespace qb::cli {

void add_compare_command(CLI::App& app, Action& action) {
  struct Flags {
    std::string base, current, max_slowdown = "5%", max_memory_growth = "5%", out;
    double noise_sigmas = 2.0;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("compare", "compare two result files; non-zero exit on regression");
  cmd->add_option("base", flags->base, "baseline results (JSON or JSON Lines)")->required();
  cmd->add_option("new", flags->current, "new results")->required();
  cmd->add_option("--max-slowdown", flags->max_slowdown, "allowed drop of decode tok/s or rise of prefill ms")->capture_default_str();
  cmd->add_option("--max-memory-growth", flags->max_memory_growth, "allowed growth of peak allocated memory")->capture_default_str();
  cmd->add_option("--noise-sigmas", flags->noise_sigmas, "measured spread added to the threshold, in standard deviations")->capture_default_str();
  cmd->add_option("-o,--out", flags->out, "write the table to this file instead of stdout");
  cmd->callback([&action, flags] {
    action = [flags]() -> int {
      report::CompareOptions options;
      options.max_slowdown = report::parse_fraction(flags->max_slowdown, "--max-slowdown");
      options.max_memory_growth = report::parse_fraction(flags->max_memory_growth, "--max-memory-growth");
      options.noise_sigmas = flags->noise_sigmas;
      const auto report = report::compare_results(report::read_results(flags->base), report::read_results(flags->current), options);
      write_output(flags->out, report::render_compare_markdown(report));
      return report.passed ? 0 : 1;
    };
  });
}

}  // namespace qb::cli
