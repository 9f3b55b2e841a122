// --model resolution: local directories, the HuggingFace hub-cache layout (a fake cache in a temp
// dir), synthetic presets, and a miss that says where it looked.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "quantbench/core/error.h"
#include "quantbench/io/model_resolver.h"
#include "test_support.h"

namespace qb::io {
namespace {
namespace fs = std::filesystem;

using test::ScopedEnv;

void make_snapshot(const fs::path& repo, const std::string& revision) {
  fs::create_directories(repo / "snapshots" / revision);
  std::ofstream(repo / "snapshots" / revision / "config.json") << R"({"model_type": "gpt2", "rev": ")" << revision << "\"}";
}

TEST(ModelResolver, LocalDirectory) {
  const auto resolved = resolve_model(test::fixtures_dir() + "/models/llama");
  EXPECT_EQ(resolved.source, ModelSource::kLocal);
  EXPECT_EQ(resolved.id, "llama");
  EXPECT_EQ(resolved.config["model_type"], "llama");
}

TEST(ModelResolver, HubCacheFollowsRefsMain) {
  test::TempDir cache;
  const fs::path repo = fs::path(cache.path()) / "models--Org--Tiny-Model";
  make_snapshot(repo, "aaaa1111");
  make_snapshot(repo, "bbbb2222");
  fs::create_directories(repo / "refs");
  std::ofstream(repo / "refs" / "main") << "bbbb2222\n";
  ScopedEnv env("HF_HUB_CACHE", cache.path());
  const auto resolved = resolve_model("Org/Tiny-Model");
  EXPECT_EQ(resolved.source, ModelSource::kHubCache);
  EXPECT_EQ(resolved.revision, "bbbb2222");
  EXPECT_EQ(resolved.config["rev"], "bbbb2222");
}

TEST(ModelResolver, HubCacheRootFromHfHome) {
  test::TempDir home;
  make_snapshot(fs::path(home.path()) / "hub" / "models--gpt2", "cccc3333");
  ScopedEnv unset_cache("HF_HUB_CACHE", "");
  ::unsetenv("HF_HUB_CACHE");
  ScopedEnv env("HF_HOME", home.path());
  EXPECT_EQ(hub_cache_dir(), (fs::path(home.path()) / "hub").string());
  const auto resolved = resolve_model("gpt2");
  EXPECT_EQ(resolved.revision, "cccc3333");  // the only snapshot, no refs/main
}

TEST(ModelResolver, AmbiguousSnapshotsWithoutRefsAreAnError) {
  test::TempDir cache;
  const fs::path repo = fs::path(cache.path()) / "models--Org--Two";
  make_snapshot(repo, "one");
  make_snapshot(repo, "two");
  ScopedEnv env("HF_HUB_CACHE", cache.path());
  EXPECT_THROW(resolve_model("Org/Two"), Error);
}

TEST(ModelResolver, MissListsWhereItLookedAndHowToGetIt) {
  test::TempDir cache;
  ScopedEnv env("HF_HUB_CACHE", cache.path());
  try {
    resolve_model("Qwen/Qwen2-7B");
    FAIL();
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::kNotFound);
    EXPECT_NE(message.find("models--Qwen--Qwen2-7B"), std::string::npos) << message;
    EXPECT_NE(message.find("huggingface-cli download"), std::string::npos) << message;
    EXPECT_NE(message.find("synthetic:"), std::string::npos) << message;
  }
}

TEST(ModelResolver, SyntheticPresetsAndUnknownPreset) {
  const auto resolved = resolve_model("synthetic:qwen2-7b");
  EXPECT_EQ(resolved.source, ModelSource::kSynthetic);
  EXPECT_EQ(resolved.config["hidden_size"], 3584);
  for (const char* required : {"gpt2", "dialogpt-small", "opt-125m", "qwen2.5-0.5b", "tinyllama-1.1b", "llama-3.2-1b",
                               "phi-2", "qwen2-7b", "llama-3-8b"}) {
    EXPECT_NO_THROW(resolve_model(std::string("synthetic:") + required)) << required;
  }
  try {
    resolve_model("synthetic:gpt5");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tinyllama-1.1b"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qb::io
