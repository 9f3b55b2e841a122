// Perplexity against transformers' sliding-window perplexity computed by
// scripts/gen_quality_reference.py: every tiny fixture on the first 4000 characters of WikiText-2
// test (window 64, stride 32) and the two real trained models on the whole file (window 256,
// stride 128), fp32, within 0.01% relative. The real models run on the GPU when there is one.
#include <gtest/gtest.h>

#include <filesystem>

#include "quantbench/core/error.h"
#include "quantbench/io/model_config.h"
#include "quantbench/io/model_resolver.h"
#include "quantbench/model/builder.h"
#include "quantbench/quality/perplexity.h"
#include "quantbench/quality/text_source.h"
#include "test_support.h"

namespace qb::quality {
namespace {

TEST(SlidingWindows, FollowTheTransformersLoop) {
  // n=10, ctx=4, stride=2: windows [0,4) [2,6) [4,8) [6,10); scored 3, then 2 each.
  const auto w = sliding_windows(10, 4, 2);
  ASSERT_EQ(w.size(), 4u);
  EXPECT_EQ(w[0].scored, 3);
  EXPECT_EQ(w[1].begin, 2);
  EXPECT_EQ(w[1].scored, 2);
  EXPECT_EQ(w.back().end, 10);
  int64_t scored = 0;
  for (const auto& x : w) scored += x.scored;
  EXPECT_EQ(scored, 9);  // every token but the first, exactly once
  // A tail shorter than the stride: [0,4) [3,7) [6,8)
  const auto tail = sliding_windows(8, 4, 3);
  ASSERT_EQ(tail.size(), 3u);
  EXPECT_EQ(tail[2].begin, 6);
  EXPECT_EQ(tail[2].scored, 1);
  EXPECT_THROW(sliding_windows(8, 4, 5), qb::Error);
}

TEST(TextSource, FirstCodePointsCountsCharactersNotBytes) {
  EXPECT_EQ(first_code_points("aé€😀b", 4), "aé€😀");
  EXPECT_EQ(first_code_points("abc", 10), "abc");
  EXPECT_EQ(first_code_points("abc", -1), "abc");
}


void check_entry(const nlohmann::json& entry, c10::Device device) {
  const std::string text_path = test::shared_data_dir() + "/" + entry["text_file"].get<std::string>();
  if (!std::filesystem::exists(text_path)) GTEST_SKIP() << "shared data not found at " << text_path;
  std::string dir = entry["model_dir"];
  if (dir.rfind("../shared/data/", 0) == 0) dir = test::shared_data_dir() + "/" + dir.substr(15);
  else dir = std::string(QB_SOURCE_DIR) + "/" + dir;
  if (!std::filesystem::exists(dir + "/config.json")) GTEST_SKIP() << "model not found at " << dir;
  std::string text = read_text_file(text_path);
  if (entry["num_chars"].get<int64_t>() < static_cast<int64_t>(text.size())) {
    text = first_code_points(text, entry["num_chars"].get<int64_t>());
  }
  const auto ids32 = tokenizer_for_model_dir(dir).encode(text, true);
  ASSERT_EQ(static_cast<int64_t>(ids32.size()), entry["num_tokens"].get<int64_t>());
  model::BuildOptions options;
  options.precision = "fp32";
  options.device = device;
  options.format.device = device;
  const auto lm = model::build_causal_lm(io::resolve_model(dir), options);
  PerplexityOptions ppl;
  ppl.context = entry["window"];
  ppl.stride = entry["stride"];
  const auto r = evaluate_perplexity(*lm, std::vector<int64_t>(ids32.begin(), ids32.end()), ppl);
  EXPECT_EQ(r.scored_tokens, entry["scored_tokens"].get<int64_t>());
  EXPECT_EQ(r.windows, entry["num_windows"].get<int64_t>());
  const double expected = entry["ppl_exact"];
  EXPECT_NEAR(r.perplexity, expected, expected * 1e-4) << entry["model"];
  std::cout << "[ ppl ] " << entry["model"].get<std::string>() << ": quantbench " << r.perplexity << ", transformers "
            << expected << " (doc loop " << r.doc_loop_perplexity << " vs " << entry["ppl_doc"].get<double>() << ")\n";
}

nlohmann::json reference_entries() {
  return load_json_file(test::fixtures_dir() + "/references/perplexity.json")["entries"];
}

TEST(Perplexity, TinyFixturesMatchTransformers) {
  for (const auto& entry : reference_entries()) {
    if (entry["window"].get<int64_t>() != 64) continue;
    SCOPED_TRACE(entry["model"].get<std::string>());
    check_entry(entry, c10::Device(c10::kCPU));
  }
}

// The whole WikiText-2 test file through the real trained models (295,877 tokens each).
TEST(Perplexity, RealModelsOnWikiText2MatchTransformers) {
  const c10::Device device = test::cuda_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  for (const auto& entry : reference_entries()) {
    if (entry["window"].get<int64_t>() != 256) continue;
    SCOPED_TRACE(entry["model"].get<std::string>());
    check_entry(entry, device);
  }
}

}  // namespace
}  // namespace qb::quality
