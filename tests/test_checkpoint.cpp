// Sharded and single-file checkpoints, and the errors a broken index gives.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "quantbench/core/error.h"
#include "quantbench/io/checkpoint.h"
#include "test_support.h"

namespace qb::io {
namespace {
namespace fs = std::filesystem;

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Checkpoint, ReadsAShardedIndexWrittenByPython) {
  const auto checkpoint = Checkpoint::open(test::fixtures_dir() + "/safetensors/sharded");
  EXPECT_EQ(checkpoint.names().size(), 6u);
  EXPECT_TRUE(checkpoint.has("layers.1.proj.weight"));
  EXPECT_EQ(checkpoint.total_bytes(), 224u);
  EXPECT_EQ(checkpoint.get("norm.weight").dim(), 1);
  const std::string message = error_of([&] { checkpoint.get("layers.2.proj.weight"); });
  EXPECT_NE(message.find("layers.2.proj.weight"), std::string::npos) << message;
  EXPECT_NE(message.find("sharded"), std::string::npos) << message;
}

TEST(Checkpoint, ReadsTheRealShardedGpt2) {
  const std::string dir = test::shared_data_dir() + "/models/gpt2-tiny-wikitext";
  if (!fs::exists(dir + "/model.safetensors.index.json")) GTEST_SKIP() << "shared data not found at " << dir;
  const auto checkpoint = Checkpoint::open(dir);
  EXPECT_TRUE(checkpoint.has("transformer.wte.weight") || checkpoint.has("wte.weight"));
}

class BrokenIndex : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::copy(test::fixtures_dir() + "/safetensors/sharded", dir_.path(), fs::copy_options::recursive);
  }
  void write_index(const std::string& text) {
    std::ofstream(dir_.file("model.safetensors.index.json")) << text;
  }
  test::TempDir dir_;
};

TEST_F(BrokenIndex, MissingShardIsNamed) {
  write_index(R"({"weight_map": {"embed.weight": "model-00009-of-00009.safetensors"}})");
  const std::string message = error_of([&] { Checkpoint::open(dir_.path()); });
  EXPECT_NE(message.find("model-00009-of-00009.safetensors"), std::string::npos) << message;
}

TEST_F(BrokenIndex, TensorNotInItsShardIsNamed) {
  write_index(R"({"weight_map": {"ghost.weight": "model-00001-of-00002.safetensors"}})");
  const std::string message = error_of([&] { Checkpoint::open(dir_.path()); });
  EXPECT_NE(message.find("ghost.weight"), std::string::npos) << message;
}

TEST_F(BrokenIndex, ShardOutsideTheDirectoryIsRefused) {
  write_index(R"({"weight_map": {"embed.weight": "../etc/passwd"}})");
  const std::string message = error_of([&] { Checkpoint::open(dir_.path()); });
  EXPECT_NE(message.find("leaves the checkpoint directory"), std::string::npos) << message;
}

TEST_F(BrokenIndex, InvalidJsonAndMissingWeightMap) {
  write_index("{not json");
  EXPECT_NE(error_of([&] { Checkpoint::open(dir_.path()); }).find("not valid JSON"), std::string::npos);
  write_index(R"({"metadata": {}})");
  EXPECT_NE(error_of([&] { Checkpoint::open(dir_.path()); }).find("weight_map"), std::string::npos);
}

TEST(Checkpoint, DirectoryWithoutWeightsIsNotFound) {
  test::TempDir dir;
  try {
    Checkpoint::open(dir.path());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNotFound);
  }
}

}  // namespace
}  // namespace qb::io
