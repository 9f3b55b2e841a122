// Result records: schema validation, round trip through JSON and JSON Lines, tables checked
// against hand-computed values, and compare's verdicts on crafted inputs.
#include <gtest/gtest.h>

#include <fstream>

#include "quantbench/core/error.h"
#include "quantbench/report/compare.h"
#include "quantbench/report/result.h"
#include "quantbench/report/table.h"
#include "test_support.h"

namespace qb::report {
namespace {

nlohmann::json summary(double median, double stddev) {
  return {{"count", 5}, {"mean", median}, {"median", median}, {"min", median - stddev}, {"max", median + stddev},
          {"stddev", stddev}, {"p90", median + stddev}, {"p99", median + 2 * stddev}};
}

// A minimal valid "ok" record with the figures compare and the tables read.
nlohmann::json record(const std::string& precision, double decode_tps, double decode_sd, double prefill_ms,
                      double peak_bytes, int64_t batch = 1) {
  const RunKey key{"synthetic:gpt2", precision, "cuda", batch, 128, 128};
  return {{"schema", kResultSchema},
          {"key", key_to_json(key)},
          {"status", "ok"},
          {"model", {{"weights", "synthetic"}}},
          {"environment", nlohmann::json::object()},
          {"timing", {{"prefill_ms", summary(prefill_ms, 0.01 * prefill_ms)},
                      {"decode_step_ms", summary(1000.0 / decode_tps, 0.001)},
                      {"decode_tokens_per_s", summary(decode_tps, decode_sd)},
                      {"prefill_tokens_per_s", summary(128e3 / prefill_ms, 1)},
                      {"e2e_ms", summary(prefill_ms + 127e3 / decode_tps, 1)}}},
          {"memory", {{"weight_bytes", 250000000}, {"peak_allocated_bytes", peak_bytes}, {"device_peak_used_bytes", peak_bytes + 1e8}}},
          {"floor", {{"fraction_of_floor", 0.5}}}};
}

TEST(ResultSchema, ValidRecordsPassAndBrokenOnesNameTheProblem) {
  EXPECT_NO_THROW(validate_result(record("fp16", 1000, 10, 5, 3e8)));
  EXPECT_NO_THROW(validate_result(make_error_result({"m", "nf4", "cuda", 1, 8, 8}, "out_of_memory", "boom", {})));
  nlohmann::json broken = record("fp16", 1000, 10, 5, 3e8);
  broken["timing"].erase("prefill_ms");
  broken["key"].erase("batch");
  try {
    validate_result(broken);
    FAIL();
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("timing.prefill_ms missing"), std::string::npos) << message;
    EXPECT_NE(message.find("key.batch missing"), std::string::npos) << message;
  }
  nlohmann::json wrong_schema = record("fp16", 1000, 10, 5, 3e8);
  wrong_schema["schema"] = "something/9";
  EXPECT_THROW(validate_result(wrong_schema), Error);
}

TEST(ResultSchema, JsonAndJsonLinesRoundTrip) {
  test::TempDir dir;
  const std::vector<nlohmann::json> records = {record("fp16", 1000, 10, 5, 3e8), record("int8", 1500, 10, 6, 2e8)};
  write_results_json(dir.file("a.json"), records);
  EXPECT_EQ(read_results(dir.file("a.json")), records);
  for (const auto& r : records) append_result_line(dir.file("a.jsonl"), r);
  EXPECT_EQ(read_results(dir.file("a.jsonl")), records);
  std::ofstream(dir.file("bad.jsonl")) << records[0].dump() << "\n{not json\n";
  EXPECT_THROW(read_results(dir.file("bad.jsonl")), Error);
}

TEST(Tables, NumbersMatchHandComputedValues) {
  const auto rows = table_rows({record("fp16", 1000, 10, 5, 3e8), record("int8", 1500, 10, 6, 2e8),
                                make_error_result({"synthetic:gpt2", "nf4", "cuda", 1, 128, 128}, "out_of_memory",
                                                  "CUDA out of memory", {})});
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_DOUBLE_EQ(rows[0].speedup_vs_fp16, 1.0);
  EXPECT_DOUBLE_EQ(rows[1].speedup_vs_fp16, 1.5);
  EXPECT_DOUBLE_EQ(rows[1].weight_mb, 250.0);
  EXPECT_DOUBLE_EQ(rows[1].peak_allocated_mb, 200.0);
  EXPECT_DOUBLE_EQ(rows[1].fraction_of_floor, 0.5);
  EXPECT_EQ(rows[2].status, "error");
  const std::string md = render_markdown(rows);
  EXPECT_NE(md.find("| 1.50x |"), std::string::npos) << md;
  EXPECT_NE(md.find("out_of_memory: CUDA out of memory"), std::string::npos) << md;
  const std::string csv = render_csv(rows);
  EXPECT_NE(csv.find("synthetic:gpt2,int8,cuda,synthetic,1,128,128,250,"), std::string::npos) << csv;
}

// An eager (no CUDA graph) fp16 run of the same key is its own baseline, not the graph rows'.
TEST(Tables, EagerRunsCompareWithEagerRuns) {
  nlohmann::json eager = record("fp16", 500, 10, 5, 3e8);
  eager["run"]["cuda_graph"] = false;
  const auto rows = table_rows({record("fp16", 1000, 10, 5, 3e8), record("int8", 1500, 10, 6, 2e8), eager});
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_DOUBLE_EQ(rows[1].speedup_vs_fp16, 1.5);
  EXPECT_DOUBLE_EQ(rows[2].speedup_vs_fp16, 1.0);
}

TEST(Compare, VerdictsOnCraftedInputs) {
  CompareOptions options;  // 5% + 2 sigma
  // Same figures: pass.
  EXPECT_TRUE(compare_results({record("fp16", 1000, 1, 5, 3e8)}, {record("fp16", 1000, 1, 5, 3e8)}, options).passed);
  // 10% slower decode with tiny spread: regression.
  auto slower = compare_results({record("fp16", 1000, 1, 5, 3e8)}, {record("fp16", 900, 1, 5, 3e8)}, options);
  EXPECT_FALSE(slower.passed);
  EXPECT_EQ(slower.runs[0].verdict, "regressed");
  // The same 10% with 5% spread on both sides: 5% + 2 * hypot(0.05, 0.0555) = 19.9% allowed -> pass.
  EXPECT_TRUE(compare_results({record("fp16", 1000, 50, 5, 3e8)}, {record("fp16", 900, 50, 5, 3e8)}, options).passed);
  // Prefill 20% slower: regression; faster everything: pass.
  EXPECT_FALSE(compare_results({record("fp16", 1000, 1, 5, 3e8)}, {record("fp16", 1000, 1, 6, 3e8)}, options).passed);
  EXPECT_TRUE(compare_results({record("fp16", 1000, 1, 5, 3e8)}, {record("fp16", 2000, 1, 2, 1e8)}, options).passed);
  // Memory 10% up: regression (no noise allowance on memory).
  EXPECT_FALSE(compare_results({record("fp16", 1000, 1, 5, 3e8)}, {record("fp16", 1000, 1, 5, 3.3e8)}, options).passed);
  // A run that now fails, or that disappeared: fail. A new run: fine.
  const auto err = make_error_result({"synthetic:gpt2", "fp16", "cuda", 1, 128, 128}, "out_of_memory", "oom", {});
  const auto failed = compare_results({record("fp16", 1000, 1, 5, 3e8)}, {err}, options);
  EXPECT_FALSE(failed.passed);
  EXPECT_EQ(failed.runs[0].verdict, "failed");
  EXPECT_FALSE(compare_results({record("fp16", 1000, 1, 5, 3e8), record("int8", 1, 1, 1, 1)},
                               {record("fp16", 1000, 1, 5, 3e8)}, options).passed);
  EXPECT_TRUE(compare_results({record("fp16", 1000, 1, 5, 3e8)},
                              {record("fp16", 1000, 1, 5, 3e8), record("int8", 1, 1, 1, 1)}, options).passed);
}

TEST(Compare, FractionParsing) {
  EXPECT_DOUBLE_EQ(parse_fraction("5%", "--max-slowdown"), 0.05);
  EXPECT_DOUBLE_EQ(parse_fraction("0.1", "--max-slowdown"), 0.1);
  EXPECT_THROW(parse_fraction("five", "--max-slowdown"), Error);
  EXPECT_THROW(parse_fraction("5%%", "--max-slowdown"), Error);
  EXPECT_THROW(parse_fraction("-1", "--max-slowdown"), Error);
}

}  // namespace
}  // namespace qb::report
