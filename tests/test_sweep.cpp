// Sweep definitions: the committed sweeps parse, the product comes out in the session's order, and
// every malformed definition is refused with a message naming the file and the entry or key.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "quantbench/bench/sweep.h"
#include "quantbench/core/error.h"
#include "test_support.h"

namespace qb::bench {
namespace {

using nlohmann::json;

std::string sweeps_dir() { return std::string(QB_SOURCE_DIR) + "/configs/sweeps"; }

json minimal() {
  return json::parse(R"({"entries": [{"models": ["synthetic:gpt2"], "precisions": ["fp16"]}]})");
}

// Parses `document` and expects a qb::Error whose message holds every one of `parts`.
void expect_refused(const json& document, const std::vector<std::string>& parts) {
  try {
    parse_sweep(document, "bad.json");
    ADD_FAILURE() << "accepted: " << document.dump();
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput) << message;
    EXPECT_EQ(message.rfind("bad.json", 0), 0u) << message;
    for (const auto& part : parts) EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
  }
}

TEST(SweepDefinition, CommittedSweepsParse) {
  const SweepDefinition smoke = load_sweep(sweeps_dir() + "/smoke.json");
  ASSERT_EQ(smoke.entries.size(), 2u);
  EXPECT_EQ(smoke.entries[0].name, "gpt2-fixture");
  EXPECT_EQ(smoke.entries[0].precisions, (std::vector<std::string>{"fp32", "nf4"}));  // from defaults
  EXPECT_EQ(smoke.entries[1].precisions, (std::vector<std::string>{"fp32", "int8"}));  // entry overrides
  EXPECT_EQ(smoke.entries[1].batches, (std::vector<int64_t>{1, 2}));
  ASSERT_TRUE(smoke.entries[0].perplexity.has_value());
  EXPECT_EQ(smoke.entries[0].perplexity->ctx, 32);
  EXPECT_FALSE(smoke.entries[1].perplexity.has_value());

  const SweepDefinition seeds = load_sweep(sweeps_dir() + "/seed-tables.json");
  size_t timed = expand_runs(seeds).size();
  EXPECT_GE(timed, 30u);
  EXPECT_LE(timed, 45u);  // the seed sweep must stay within one 10-minute GPU call
  for (const auto& entry : seeds.entries) {
    EXPECT_EQ(entry.batches, (std::vector<int64_t>{1})) << entry.name;
    EXPECT_EQ(entry.gen_lens, (std::vector<int64_t>{128})) << entry.name;
    if (entry.models.size() == 1 && entry.models[0].find("${") == std::string::npos) {
      ASSERT_TRUE(entry.fallback.has_value()) << entry.name;
      EXPECT_EQ(entry.fallback->rfind("synthetic:", 0), 0u);
      // Every fallback names a committed preset.
      EXPECT_NO_THROW(choose_model(*entry.fallback, std::nullopt, seeds.path));
    }
  }
}

TEST(SweepDefinition, ProductComesInTheSessionsOrder) {
  json document = minimal();
  document["entries"][0]["models"] = {"a", "b"};
  document["entries"][0]["precisions"] = {"fp16", "nf4"};
  document["entries"][0]["batches"] = {1, 4};
  document["entries"][0]["prompt_lens"] = {16, 32, 64};
  document["entries"][0]["gen_lens"] = {8};
  document["entries"].push_back(minimal()["entries"][0]);
  document["entries"][1]["name"] = "second";
  const auto runs = expand_runs(parse_sweep(document, "x.json"));
  ASSERT_EQ(runs.size(), 2u * 2 * 2 * 3 + 1);
  EXPECT_EQ(runs[0].model, "a");
  EXPECT_EQ(runs[0].precision, "fp16");
  EXPECT_EQ(runs[1].prompt_len, 32);  // prompt length varies fastest
  EXPECT_EQ(runs[3].batch, 4);
  EXPECT_EQ(runs[6].precision, "nf4");
  EXPECT_EQ(runs[12].model, "b");
  EXPECT_EQ(runs[24].entry_index, 1u);
  EXPECT_EQ(runs[24].gen_len, 128);  // defaults: batch 1, prompt 128, gen 128
  EXPECT_EQ(runs[24].prompt_len, 128);
}

TEST(SweepDefinition, EveryMalformedDefinitionIsRefusedByName) {
  expect_refused(json::array(), {"JSON object"});
  expect_refused(json::parse(R"({"entries": []})"), {"'entries' must be a non-empty list"});
  expect_refused(json::parse(R"({"description": "x"})"), {"'entries' is missing"});
  expect_refused(json::parse(R"({"entries": [1]})"), {"entries[0]", "object"});
  json unknown_top = minimal();
  unknown_top["entry"] = 1;
  expect_refused(unknown_top, {"unknown top-level key 'entry'"});

  // One bad value at a time in an otherwise valid entry (index 1, so the index is checked).
  auto with = [](const std::string& key, const json& value) {
    json document = minimal();
    document["entries"].push_back({{"name", "second"}, {"models", {"synthetic:gpt2"}}, {"precisions", {"fp16"}}});
    document["entries"][1][key] = value;
    return document;
  };
  expect_refused(with("batch", json::array({1})), {"entries[1] (second)", "unknown key 'batch'", "batches"});
  expect_refused(with("batches", "1"), {"entries[1]", "'batches' must be a list"});
  expect_refused(with("batches", json::array()), {"entries[1]", "'batches' is an empty list"});
  expect_refused(with("batches", json::array({1.5})), {"entries[1]", "'batches'", "integer"});
  expect_refused(with("batches", json::array({true})), {"'batches'", "integer"});
  expect_refused(with("prompt_lens", json::array({0})), {"'prompt_lens'", ">= 1"});
  expect_refused(with("gen_lens", json::array({4, 4})), {"'gen_lens' lists 4 twice"});
  expect_refused(with("precisions", json::array()), {"'precisions' is an empty list"});
  expect_refused(with("precisions", json::array({"fp16", "int4"})), {"entries[1]", "unknown precision 'int4'", "nf4"});
  expect_refused(with("precisions", json::array({"fp16", 8})), {"'precisions' must hold non-empty strings"});
  expect_refused(with("models", json::array()), {"'models' is an empty list"});
  expect_refused(with("models", "synthetic:gpt2"), {"'models' must be a list"});
  expect_refused(with("warmup", -1), {"'warmup'", ">= 0"});
  expect_refused(with("repetitions", 0), {"'repetitions'", ">= 1"});
  expect_refused(with("compute_dtype", "fp8"), {"'compute_dtype' must be auto, fp32, fp16 or bf16"});
  expect_refused(with("cuda_graph", "yes"), {"'cuda_graph' must be true or false"});
  expect_refused(with("fallback", "gpt2"), {"'fallback' must be synthetic:PRESET"});
  expect_refused(with("name", "synthetic:gpt2"), {"entries[1]", "name 'synthetic:gpt2' is used by an earlier entry"});
  json two_models = with("models", json::array({"a", "b"}));
  two_models["entries"][1]["fallback"] = "synthetic:gpt2";
  expect_refused(two_models, {"entries[1]", "'fallback' stands in for one model"});
  json no_models = minimal();
  no_models["entries"][0].erase("models");
  expect_refused(no_models, {"entries[0]", "'models' is required"});
  json no_precisions = minimal();
  no_precisions["entries"][0].erase("precisions");
  expect_refused(no_precisions, {"entries[0]", "'precisions' is required"});

  expect_refused(with("perplexity", "wiki.txt"), {"entries[1]", "perplexity must be an object"});
  expect_refused(with("perplexity", {{"ctx", 64}}), {"perplexity", "'text' is required"});
  expect_refused(with("perplexity", {{"text", "t.txt"}, {"window", 64}}), {"perplexity", "unknown key 'window'"});
  expect_refused(with("perplexity", {{"text", "t.txt"}, {"ctx", 64}, {"stride", 128}}), {"stride 128 exceeds ctx 64"});
  expect_refused(with("perplexity", {{"text", "t.txt"}, {"baseline", "fp12"}}), {"unknown precision 'fp12'"});

  expect_refused(with("format", 128), {"entries[1]", "format must be an object"});
  expect_refused(with("format", {{"groupsize", 64}}), {"format", "unknown key 'groupsize'", "group_size"});
  expect_refused(with("format", {{"group_size", 1}}), {"format", "'group_size'", ">= 2"});
  expect_refused(with("format", {{"blocksize", 64.5}}), {"format", "'blocksize'", "integer"});
  expect_refused(with("format", {{"double_quant", "on"}}), {"format", "'double_quant' must be true or false"});
  expect_refused(with("format", {{"outlier_threshold", -1}}), {"format", "'outlier_threshold' must be a number > 0"});

  json defaults_with_models = minimal();
  defaults_with_models["defaults"] = {{"models", {"x"}}};
  expect_refused(defaults_with_models, {"defaults", "'models' belongs in an entry"});
  json bad_default = minimal();
  bad_default["defaults"] = {{"batches", {-2}}};
  expect_refused(bad_default, {"defaults", "'batches'"});
}

TEST(SweepDefinition, FormatOptionsMergeKeyByKeyOverTheDefaults) {
  json document = minimal();
  document["defaults"] = {{"format", {{"group_size", 64}, {"double_quant", true}}}};
  document["entries"][0]["format"] = {{"double_quant", false}, {"blocksize", 128}, {"outlier_threshold", 4.5}};
  document["entries"].push_back({{"name", "plain"}, {"models", {"synthetic:gpt2"}}, {"precisions", {"nf4"}}});
  const SweepDefinition sweep = parse_sweep(document, "x.json");
  const quant::FormatOptions& merged = sweep.entries[0].format;
  EXPECT_EQ(merged.group_size, 64);       // from the defaults
  EXPECT_FALSE(merged.double_quant);      // the entry wins
  EXPECT_EQ(merged.blocksize, 128);
  EXPECT_DOUBLE_EQ(merged.outlier_threshold, 4.5);
  const quant::FormatOptions& defaults_only = sweep.entries[1].format;
  EXPECT_EQ(defaults_only.group_size, 64);
  EXPECT_TRUE(defaults_only.double_quant);
  EXPECT_EQ(defaults_only.blocksize, quant::FormatOptions{}.blocksize);
}

TEST(SweepDefinition, UnreadableFilesNameThePath) {
  test::TempDir dir;
  std::ofstream(dir.file("broken.json")) << "{\"entries\": [";
  try {
    load_sweep(dir.file("broken.json"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("broken.json: not valid JSON"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_sweep(dir.file("absent.json")), Error);
}

TEST(SweepModels, PathsVariablesAndFallback) {
  const std::string sweep = sweeps_dir() + "/smoke.json";
  EXPECT_EQ(expand_spec("../../tests/fixtures/models/gpt2", sweep), test::fixtures_dir() + "/models/gpt2");
  EXPECT_EQ(expand_spec("gpt2", sweep), "gpt2");  // a hub id stays a hub id
  ::setenv("QB_TEST_SWEEP_VAR", "/data", 1);
  EXPECT_EQ(expand_spec("${QB_TEST_SWEEP_VAR}/m", sweep), "/data/m");
  ::unsetenv("QB_TEST_SWEEP_VAR");
  EXPECT_THROW(expand_spec("${QB_TEST_SWEEP_VAR}/m", sweep), Error);
  EXPECT_THROW(expand_spec("${QB_TEST_SWEEP_VAR", sweep), Error);

  test::TempDir empty_cache;  // a hub cache with nothing in it
  const char* saved = std::getenv("HF_HUB_CACHE");
  const std::string saved_value = saved ? saved : "";
  ::setenv("HF_HUB_CACHE", empty_cache.path().c_str(), 1);
  const ModelChoice missing = choose_model("openai-community/gpt2", std::string("synthetic:gpt2"), sweep);
  EXPECT_TRUE(missing.fell_back);
  EXPECT_EQ(missing.key_model, "synthetic:gpt2");
  EXPECT_NE(missing.why.find("not found"), std::string::npos) << missing.why;
  const ModelChoice without = choose_model("openai-community/gpt2", std::nullopt, sweep);
  EXPECT_FALSE(without.fell_back);  // no fallback: the session records the miss as error records
  const ModelChoice local = choose_model("../../tests/fixtures/models/gpt2", std::string("synthetic:gpt2"), sweep);
  EXPECT_FALSE(local.fell_back);
  EXPECT_EQ(local.key_model, "../../tests/fixtures/models/gpt2");  // keyed as written: the same on every machine
  EXPECT_EQ(local.run_spec, test::fixtures_dir() + "/models/gpt2");
  if (saved) ::setenv("HF_HUB_CACHE", saved_value.c_str(), 1); else ::unsetenv("HF_HUB_CACHE");
}

}  // namespace
}  // namespace qb::bench
