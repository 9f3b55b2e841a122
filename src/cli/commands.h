// Private to src/cli: each subcommand registers its options on the app and returns the action
// that runs it (returning the process exit code).
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

#include <c10/core/Device.h>

namespace qb::cli {

using Action = std::function<int()>;

void add_run_command(CLI::App& app, Action& action, const std::string& command_line);
void add_ppl_command(CLI::App& app, Action& action, const std::string& command_line);
void add_compare_command(CLI::App& app, Action& action);
void add_report_command(CLI::App& app, Action& action);
void add_sweep_command(CLI::App& app, Action& action, const std::string& command_line);
void add_env_command(CLI::App& app, Action& action, const std::string& command_line);
void add_quantize_command(CLI::App& app, Action& action);

// "auto" -> cuda when a device is present, else cpu; "cpu" | "cuda" | "cuda:N".
c10::Device parse_device(const std::string& name);
// Writes text to `path`, or to stdout when path is "-" or empty.
void write_output(const std::string& path, const std::string& text);

}  // namespace qb::cli
