#include "quantbench/cli/app.h"

#include <ATen/Context.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <fstream>
#include <iostream>
#include <set>

#include "commands.h"
#include "quantbench/core/error.h"

namespace qb::cli {

c10::Device parse_device(const std::string& name) {
  if (name == "auto") return at::hasCUDA() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  if (name == "cpu") return c10::Device(c10::kCPU);
  if (name.rfind("cuda", 0) == 0) {
    QB_CHECK(at::hasCUDA(), kDevice, "--device {}: no CUDA device is available on this machine", name);
    return name == "cuda" ? c10::Device(c10::kCUDA, 0) : c10::Device(name);
  }
  fail(ErrorKind::kInvalidInput, "--device '{}' is not one of auto, cpu, cuda, cuda:N", name);
}

void write_output(const std::string& path, const std::string& text) {
  if (path.empty() || path == "-") {
    std::cout << text << std::flush;
    return;
  }
  std::ofstream out(path, std::ios::trunc);
  QB_CHECK(out.good(), kInvalidInput, "{}: cannot open for writing", path);
  out << text;
}

int run_app(int argc, char** argv) {
  // Progress and logs on stderr; stdout carries only results.
  spdlog::set_default_logger(spdlog::stderr_color_mt("quantbench"));
  spdlog::set_pattern("[%H:%M:%S] %^%l%$ %v");
  std::string command_line;
  for (int i = 0; i < argc; ++i) command_line += (i ? " " : "") + std::string(argv[i]);

  CLI::App app{"quantbench: what INT8, NF4 or AWQ buys on this GPU, for this model"};
  app.require_subcommand(1);
  app.fallthrough();  // --quiet may follow the subcommand
  bool quiet = false;
  app.add_flag("-q,--quiet", quiet, "only warnings and errors on stderr");
  Action action;
  add_run_command(app, action, command_line);
  add_ppl_command(app, action, command_line);
  add_compare_command(app, action);
  add_report_command(app, action);
  add_sweep_command(app, action, command_line);
  add_env_command(app, action, command_line);
  add_quantize_command(app, action);

  // `quantbench --model gpt2 ...` means `quantbench run --model gpt2 ...`.
  std::vector<std::string> args(argv + 1, argv + argc);
  std::set<std::string> subcommands;
  for (const auto* sub : app.get_subcommands({})) subcommands.insert(sub->get_name());
  if (args.empty() || (subcommands.count(args.front()) == 0 && args.front() != "-h" && args.front() != "--help")) {
    args.insert(args.begin(), "run");
  }
  std::reverse(args.begin(), args.end());  // CLI11 consumes the vector from its back
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (quiet) spdlog::set_level(spdlog::level::warn);
  try {
    return action ? action() : 0;
  } catch (const Error& e) {
    std::cerr << "quantbench: error: " << e.what() << "\n";
    return 2;
  } catch (const c10::Error& e) {
    std::cerr << "quantbench: error (libtorch): " << e.what_without_backtrace() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "quantbench: error: " << e.what() << "\n";
    return 2;
  }
}

}  // namespace qb::cli
