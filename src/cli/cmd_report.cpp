// `quantbench report RESULTS --format md|csv|json`: tables from result records.
#include <memory>

#include "commands.h"
#include "quantbench/core/error.h"
#include "quantbench/report/result.h"
#include "quantbench/report/table.h"

namespace qb::cli {

void add_report_command(CLI::App& app, Action& action) {
  struct Flags {
    std::vector<std::string> inputs;
    std::string format = "md", out;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("report", "print tables from result files");
  cmd->add_option("results", flags->inputs, "result files (JSON array or JSON Lines)")->required();
  cmd->add_option("--format", flags->format, "md | csv | json")->capture_default_str();
  cmd->add_option("-o,--out", flags->out, "write to this file instead of stdout");
  cmd->callback([&action, flags] {
    action = [flags]() -> int {
      std::vector<nlohmann::json> results;
      for (const auto& path : flags->inputs) {
        for (auto& r : report::read_results(path)) {
          if (r.value("schema", "") != report::kQualitySchema) report::validate_result(r);
          results.push_back(std::move(r));
        }
      }
      if (flags->format == "json") {
        write_output(flags->out, nlohmann::json(results).dump(2) + "\n");
      } else if (flags->format == "csv") {
        write_output(flags->out, report::render_csv(report::table_rows(results)));
      } else if (flags->format == "md") {
        write_output(flags->out, report::render_markdown(report::table_rows(results)));
      } else {
        fail(ErrorKind::kInvalidInput, "--format must be md, csv or json, not '{}'", flags->format);
      }
      return 0;
    };
  });
}

}  // namespace qb::cli
