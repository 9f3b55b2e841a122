// scripts/plot_results.py over the hand-made results file: the three PNGs are written and are PNGs. Runs with
// the interpreter `quantbench report --plots` uses (the project's .venv, where scripts/setup.sh installs
// matplotlib); skips, saying why, where that interpreter or matplotlib is missing.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "test_support.h"

namespace qb {
namespace {

namespace fs = std::filesystem;
using test::quoted;

TEST(ReportPlots, ThreePngsFromTheFixture) {
  const fs::path python = fs::path(QB_SOURCE_DIR) / ".venv" / "bin" / "python";
  if (!fs::exists(python)) GTEST_SKIP() << "no " << python.string() << " (scripts/setup.sh creates it)";
  if (std::system((quoted(python.string()) + " -c 'import matplotlib' 2>/dev/null").c_str()) != 0) {
    GTEST_SKIP() << "matplotlib is not installed in " << python.string() << " (scripts/setup.sh installs it)";
  }
  test::TempDir dir;
  const std::string command = quoted(python.string()) + " " +
                              quoted(std::string(QB_SOURCE_DIR) + "/scripts/plot_results.py") + " --out " +
                              quoted(dir.path()) + " " + quoted(test::fixtures_dir() + "/report/results.jsonl") +
                              " > /dev/null";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  for (const char* name : {"decode_vs_params.png", "memory.png", "tradeoff.png"}) {
    const std::string path = dir.file(name);
    std::ifstream in(path, std::ios::binary);
    ASSERT_TRUE(in.good()) << path << " was not written";
    char magic[8] = {};
    in.read(magic, 8);
    EXPECT_EQ(std::string(magic + 1, 3), "PNG") << path;
    EXPECT_GT(fs::file_size(path), 5000u) << path;  // a real figure, not an empty canvas
  }
}

}  // namespace
}  // namespace qb
