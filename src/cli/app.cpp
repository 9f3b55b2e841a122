#include "quantbench/cli/app.h"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <iostream>

#include "quantbench/core/error.h"

namespace qb::cli {

int run_app(int argc, char** argv) {
  CLI::App app{"quantbench: what INT8, NF4 or AWQ buys on this GPU, for this model"};
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return 0;
}

}  // namespace qb::cli
