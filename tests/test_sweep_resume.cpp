// Running sweeps on the CPU over the fixture models (configs/sweeps/smoke.json: 8 timed runs and 2
// perplexity records, gen_len 3): every record lands in results.jsonl as it is made, and --resume
// after an interrupted sweep (a partial file, a line cut short by a kill, a failed run) runs only
// what is missing or failed.
#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "quantbench/bench/sweep.h"
#include "quantbench/core/error.h"
#include "quantbench/report/result.h"
#include "test_support.h"

namespace qb::bench {
namespace {

using nlohmann::json;

constexpr size_t kSmokeRecords = 8 + 2;

SweepDefinition smoke() { return load_sweep(std::string(QB_SOURCE_DIR) + "/configs/sweeps/smoke.json"); }

// smoke.json's perplexity reads WikiText-2 from the shared data ($QB_SHARED_DATA on the GPU machine).
bool shared_text_present() {
  return std::ifstream(test::shared_data_dir() + "/wikitext-2/test.txt").good();
}
#define QB_REQUIRE_SHARED_TEXT() \
  if (!shared_text_present()) GTEST_SKIP() << "shared data wikitext-2/test.txt did not travel: smoke sweep skipped"

SweepOptions cpu_options(const std::string& out_dir) {
  SweepOptions options;
  options.out_dir = out_dir;
  options.device = c10::Device(c10::kCPU);
  options.command_line = "test";
  return options;
}

std::string key_string(const json& r) {
  if (r.value("schema", "") == report::kQualitySchema) {
    return quality_key(r["key"]["model"], r["key"]["precision"], r["key"]["device"], r["key"]["text"]);
  }
  return report::key_of(r).str();
}

std::vector<std::string> file_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(SweepRun, EveryRecordIsAppendedAsItIsMade) {
  QB_REQUIRE_SHARED_TEXT();
  test::TempDir dir;
  std::vector<json> seen;
  const SweepSummary summary = run_sweep(smoke(), cpu_options(dir.path()), [&](const json& r) {
    seen.push_back(r);
    // The record is in the file by the time the callback sees it.
    EXPECT_EQ(file_lines(dir.file("results.jsonl")).size(), seen.size());
  });
  EXPECT_EQ(summary.ran, static_cast<int64_t>(kSmokeRecords));
  EXPECT_EQ(summary.failed, 0);
  const auto records = report::read_results(summary.results_path);
  ASSERT_EQ(records.size(), kSmokeRecords);
  std::map<std::string, int> count;
  for (const auto& r : records) {
    ++count[key_string(r)];
    EXPECT_EQ(r["status"], "ok") << r.dump(1).substr(0, 2000);
    EXPECT_EQ(r["sweep"]["fell_back"], false);
    if (r["schema"] == report::kResultSchema) {
      EXPECT_NO_THROW(report::validate_result(r));
      EXPECT_EQ(r["model"]["weights"], "checkpoint");
      EXPECT_EQ(r["key"]["gen_len"], 3);
    } else {
      EXPECT_GT(r["quality"]["perplexity"].get<double>(), 1.0);
      EXPECT_EQ(r["key"]["model"], "../../tests/fixtures/models/gpt2");
    }
  }
  EXPECT_EQ(count.size(), kSmokeRecords);  // no key twice
  EXPECT_EQ(records.front()["key"]["model"], "../../tests/fixtures/models/gpt2");  // keyed as written
  EXPECT_EQ(records.front()["sweep"]["entry"], "gpt2-fixture");
  // All precisions of a model run in one session plan, so nf4's greedy tokens are compared with
  // the CPU baseline's (fp32), and the nf4 perplexity record carries KL against it.
  EXPECT_TRUE(records[2]["quality"].contains("greedy_vs_fp32")) << records[2].dump().substr(0, 400);
  EXPECT_EQ(records[5]["quality"]["baseline"], "fp32");
  EXPECT_GE(records[5]["quality"]["kl_mean"].get<double>(), 0.0);

  // A second sweep into the same folder without --resume is refused rather than mixed in.
  EXPECT_THROW(run_sweep(smoke(), cpu_options(dir.path())), Error);
}

TEST(SweepRun, ResumeRunsOnlyWhatIsMissingOrFailed) {
  QB_REQUIRE_SHARED_TEXT();
  test::TempDir full_dir, dir;
  run_sweep(smoke(), cpu_options(full_dir.path()));
  const std::vector<std::string> full = file_lines(full_dir.file("results.jsonl"));
  ASSERT_EQ(full.size(), kSmokeRecords);

  // The state a killed sweep leaves: records 0, 1, 2, 6 kept, record 3 recorded as failed, and
  // the start of record 7 cut off mid-write (no newline).
  json failed = json::parse(full[3]);
  const std::string failed_key = key_string(failed);
  failed = report::make_error_result(report::key_of(failed), "out_of_memory", "simulated", json::object());
  {
    std::ofstream partial(dir.file("results.jsonl"));
    for (int i : {0, 1, 2}) partial << full[i] << "\n";
    partial << failed.dump() << "\n" << full[6] << "\n" << full[7].substr(0, full[7].size() / 2);
  }
  std::vector<std::string> ran;
  SweepOptions options = cpu_options(dir.path());
  options.resume = true;
  const SweepSummary summary = run_sweep(smoke(), options, [&](const json& r) { ran.push_back(key_string(r)); });

  std::vector<std::string> expected;  // the sweep's order, less what was recorded ok
  for (int i : {3, 4, 5, 7, 8, 9}) expected.push_back(key_string(json::parse(full[i])));
  EXPECT_EQ(ran, expected);
  EXPECT_EQ(summary.skipped, 4);
  EXPECT_EQ(summary.failed, 0);
  EXPECT_EQ(std::count(ran.begin(), ran.end(), failed_key), 1);

  // The file now holds every key once, all ok: the failed record and the cut line are gone.
  const auto records = report::read_results(dir.file("results.jsonl"));
  ASSERT_EQ(records.size(), kSmokeRecords);
  std::map<std::string, int> count;
  for (const auto& r : records) {
    ++count[key_string(r)];
    EXPECT_EQ(r["status"], "ok");
  }
  EXPECT_EQ(count.size(), kSmokeRecords);

  // Resuming a complete sweep runs nothing.
  ran.clear();
  EXPECT_EQ(run_sweep(smoke(), options, [&](const json& r) { ran.push_back(key_string(r)); }).skipped,
            static_cast<int64_t>(kSmokeRecords));
  EXPECT_TRUE(ran.empty());
}

TEST(SweepRun, OnlyFiltersByEntryAndKey) {
  test::TempDir dir;
  SweepOptions options = cpu_options(dir.path());
  options.only_regex = "^llama-fixture\\|.*\\|int8\\|";
  std::vector<json> seen;
  run_sweep(smoke(), options, [&](const json& r) { seen.push_back(r); });
  ASSERT_EQ(seen.size(), 2u);  // batches 1 and 2
  for (const auto& r : seen) EXPECT_EQ(r["key"]["precision"], "int8");
  options.only_regex = "([";
  options.resume = true;
  EXPECT_THROW(run_sweep(smoke(), options), Error);
}

TEST(SweepRun, ABrokenLineInsideTheFileIsNotSilentlyDropped) {
  test::TempDir dir;
  {
    std::ofstream partial(dir.file("results.jsonl"));
    partial << "{not json\n" << report::make_error_result({"m", "fp16", "cpu", 1, 5, 3}, "x", "y", {}).dump() << "\n";
  }
  EXPECT_THROW(prepare_resume(dir.file("results.jsonl"), {}), Error);
}

TEST(SweepRun, AWholeLastRecordWithoutItsNewlineIsKeptAndTerminated) {
  test::TempDir dir;
  const json ok = json::parse(R"({"schema": "quantbench.result/1", "status": "ok", "key": {"model": "m",
      "precision": "fp16", "device": "cpu", "batch": 1, "prompt_len": 5, "gen_len": 3}})");
  std::ofstream(dir.file("results.jsonl")) << ok.dump();  // killed between the record and its newline
  const RecordedRuns recorded = prepare_resume(dir.file("results.jsonl"), {});
  EXPECT_EQ(recorded.ok_keys.count("m|fp16|cpu|b1|p5|g3"), 1u);
  EXPECT_EQ(file_lines(dir.file("results.jsonl")), std::vector<std::string>{ok.dump()});
  report::append_result_line(dir.file("results.jsonl"), ok);
  EXPECT_EQ(report::read_results(dir.file("results.jsonl")).size(), 2u);  // the append started a new line
}

TEST(SweepRun, SyntheticFallbackIsRecordedAndPerplexityRefusedWithAReason) {
  test::TempDir dir, empty_cache;
  const char* saved = std::getenv("HF_HUB_CACHE");
  const std::string saved_value = saved ? saved : "";
  ::setenv("HF_HUB_CACHE", empty_cache.path().c_str(), 1);
  const json document = json::parse(R"({"entries": [{"name": "opt", "models": ["facebook/opt-125m"],
      "fallback": "synthetic:gpt2", "precisions": ["fp32"], "prompt_lens": [4], "gen_lens": [2],
      "warmup": 0, "repetitions": 1, "perplexity": {"text": "unused.txt"}}]})");
  std::vector<json> seen;
  run_sweep(parse_sweep(document, dir.file("sweep.json")), cpu_options(dir.path()),
            [&](const json& r) { seen.push_back(r); });
  if (saved) ::setenv("HF_HUB_CACHE", saved_value.c_str(), 1); else ::unsetenv("HF_HUB_CACHE");
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0]["status"], "ok");
  EXPECT_EQ(seen[0]["key"]["model"], "synthetic:gpt2");
  EXPECT_EQ(seen[0]["model"]["weights"], "synthetic");
  EXPECT_EQ(seen[0]["sweep"]["requested_model"], "facebook/opt-125m");
  EXPECT_EQ(seen[0]["sweep"]["fell_back"], true);
  EXPECT_EQ(seen[1]["status"], "error");
  EXPECT_EQ(seen[1]["error"]["kind"], "unsupported");
  EXPECT_NE(seen[1]["error"]["message"].get<std::string>().find("synthetic weights"), std::string::npos);
}

}  // namespace
}  // namespace qb::bench
