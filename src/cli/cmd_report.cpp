// `quantbench report RESULTS --format md|csv|html|json [--plots DIR]`: tables from result records
// (quantbench's, `quantbench ppl`'s quality records, and peers' such as scripts/peers/hf_generate.py).
// Plots stay out of the C++ tool: --plots runs scripts/plot_results.py (matplotlib) on the same files.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>

#include "commands.h"
#include "quantbench/core/error.h"
#include "quantbench/report/result.h"
#include "quantbench/report/quality_table.h"
#include "quantbench/report/table.h"

namespace qb::cli {
namespace {
namespace fs = std::filesystem;

std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// $QB_SCRIPTS_DIR, else scripts/ beside the binary's prefix (installed or build-dir layout), else
// the source tree's.
std::string plot_script_path() {
  std::vector<fs::path> candidates;
  if (const char* dir = std::getenv("QB_SCRIPTS_DIR"); dir != nullptr && *dir != '\0') candidates.emplace_back(dir);
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back(exe.parent_path() / ".." / "scripts");
    candidates.push_back(exe.parent_path() / ".." / "share" / "quantbench" / "scripts");
  }
  candidates.push_back(fs::path(QB_SOURCE_DIR) / "scripts");
  for (const auto& dir : candidates) {
    if (fs::exists(dir / "plot_results.py")) return (dir / "plot_results.py").lexically_normal().string();
  }
  fail(ErrorKind::kNotFound, "--plots: scripts/plot_results.py not found (set $QB_SCRIPTS_DIR to the folder holding it)");
}

void run_plot_script(const std::vector<std::string>& inputs, const std::string& plots_dir) {
  // $QB_PYTHON, else the project's .venv (scripts/setup.sh installs matplotlib there), else python3.
  const char* python_env = std::getenv("QB_PYTHON");
  const fs::path venv_python = fs::path(QB_SOURCE_DIR) / ".venv" / "bin" / "python";
  std::error_code ec;
  const std::string python = python_env != nullptr && *python_env != '\0' ? std::string(python_env)
                             : fs::exists(venv_python, ec)               ? venv_python.string()
                                                                         : std::string("python3");
  std::string command = shell_quote(python) + " " + shell_quote(plot_script_path()) + " --out " + shell_quote(plots_dir);
  for (const auto& input : inputs) command += " " + shell_quote(input);
  const int status = std::system(command.c_str());
  QB_CHECK(status == 0, kInternal,
           "--plots: the plot script failed (exit status {}); it needs python3 with matplotlib ($QB_PYTHON picks "
           "another interpreter). Run it by hand: {}",
           status, command);
}

}  // namespace

void add_report_command(CLI::App& app, Action& action) {
  struct Flags {
    std::vector<std::string> inputs;
    std::string format = "md", out, plots, title = "quantbench results";
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("report", "print tables from result files (and plots)");
  cmd->add_option("results", flags->inputs, "result files (JSON array or JSON Lines)")->required();
  cmd->add_option("--format", flags->format, "md | csv | html | json")->capture_default_str();
  cmd->add_option("-o,--out", flags->out, "write to this file instead of stdout");
  cmd->add_option("--title", flags->title, "html: the page title")->capture_default_str();
  cmd->add_option("--plots", flags->plots, "also write PNG plots into this folder (runs scripts/plot_results.py)");
  cmd->callback([&action, flags] {
    action = [flags]() -> int {
      QB_CHECK(flags->format == "md" || flags->format == "csv" || flags->format == "html" || flags->format == "json",
               kInvalidInput, "--format must be md, csv, html or json, not '{}'", flags->format);
      std::vector<nlohmann::json> results;
      for (const auto& path : flags->inputs) {
        size_t index = 0;
        for (auto& r : report::read_results(path)) {
          ++index;
          try {
            if (r.value("schema", "") != report::kQualitySchema) report::validate_result(r);
          } catch (const Error& e) {
            fail(ErrorKind::kInvalidInput, "{}: record {}: {}", path, index, e.what());
          }
          results.push_back(std::move(r));
        }
      }
      if (flags->format == "json") {
        write_output(flags->out, nlohmann::json(results).dump(2) + "\n");
      } else {
        // Timed runs make the main table (with the perplexity a quality record measured for the same key);
        // quality records also get their own table (KL, top-1), after it in markdown, alone in CSV when
        // there are no timed runs (a CSV file holds one table).
        const auto rows = report::table_rows(results);
        const auto quality = report::quality_rows(results);
        std::string text;
        if (flags->format == "html") {
          text = report::render_html(rows, flags->title);
        } else if (flags->format == "csv") {
          text = rows.empty() && !quality.empty() ? report::render_quality_csv(quality) : report::render_csv(rows);
        } else {
          if (!rows.empty() || quality.empty()) text = report::render_markdown(rows);
          if (!quality.empty()) text += (text.empty() ? "" : "\n") + report::render_quality_markdown(quality);
        }
        write_output(flags->out, text);
      }
      if (!flags->plots.empty()) run_plot_script(flags->inputs, flags->plots);
      return 0;
    };
  });
}

}  // namespace qb::cli
