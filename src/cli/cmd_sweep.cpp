// `quantbench sweep FILE`: run a sweep definition (configs/sweeps/*.json), appending each record to
// DIR/results.jsonl as it is produced; --resume continues a sweep that was killed or had failures.
#include <memory>

#include "commands.h"
#include "quantbench/bench/sweep.h"

namespace qb::cli {

void add_sweep_command(CLI::App& app, Action& action, const std::string& command_line) {
  struct Flags {
    std::string file, out = "results", device = "auto", only;
    bool resume = false, no_probe = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("sweep", "run a sweep definition, one JSON line per run into DIR/results.jsonl");
  cmd->add_option("file", flags->file, "sweep definition (JSON), e.g. configs/sweeps/seed-tables.json")->required();
  cmd->add_option("-o,--out", flags->out, "output directory (results.jsonl goes there)")->capture_default_str();
  cmd->add_flag("--resume", flags->resume, "skip runs already recorded ok in DIR/results.jsonl; retry failed ones");
  cmd->add_option("--device", flags->device, "auto | cpu | cuda | cuda:N")->capture_default_str();
  cmd->add_option("--only", flags->only,
                  "run only what matches this regex: ENTRY|model|precision|device|bB|pP|gG (timed runs), "
                  "ENTRY|model|precision|device|ppl|TEXT (perplexity)");
  cmd->add_flag("--no-probe", flags->no_probe, "skip the copy-bandwidth probe (no floor in the results)");
  cmd->callback([&action, flags, command_line] {
    action = [flags, command_line]() -> int {
      const bench::SweepDefinition sweep = bench::load_sweep(flags->file);
      bench::SweepOptions options;
      options.out_dir = flags->out;
      options.resume = flags->resume;
      options.device = parse_device(flags->device);
      options.only_regex = flags->only;
      options.probe_bandwidth = !flags->no_probe;
      options.command_line = command_line;
      const bench::SweepSummary summary = bench::run_sweep(sweep, options);
      return summary.failed > 0 ? 1 : 0;
    };
  });
}

}  // namespace qb::cli
