// Sweeps: a JSON definition (configs/sweeps/*.json) expanded into runs, the llama-bench way: each
// entry is a cartesian product models x gen_lens x precisions x batches x prompt_lens, plus optional
// perplexity per (model, precision). Records are appended one line at a time to DIR/results.jsonl,
// so a crash loses nothing; a rerun with `resume` skips every key already recorded with status ok
// and retries the failed ones.
//
// File format (strict: unknown keys, wrong types, empty lists and unknown precisions are errors that
// name the file and the entry index):
//   {"description": "...",                      optional
//    "defaults": {ENTRY KEYS but name/models/fallback},   optional, merged under every entry
//    "entries": [{
//      "name": "gpt2",                          optional, default models[0]; --only matches it
//      "models": ["gpt2"],                      --model specs; "./" or "../" paths are relative to the
//                                               sweep file; ${VAR} expands from the environment
//                                               (${QB_SHARED_DATA} defaults to ../shared/data beside
//                                               the source tree, as the tests do)
//      "fallback": "synthetic:gpt2",            used when the single model does not resolve (not in
//                                               the hub cache); the records then carry its key
//      "precisions": ["fp16", "nf4"],           registered format names
//      "batches": [1], "prompt_lens": [128], "gen_lens": [128],
//      "warmup": 2, "repetitions": 5, "compute_dtype": "auto", "cuda_graph": true,
//      "perplexity": {"text": "PATH", "ctx": 512, "stride": 256, "max_tokens": 0, "baseline": "fp16"},
//      "format": {"blocksize": 64, "double_quant": false, "group_size": 128, "int8_per_group": false,
//                 "outlier_threshold": 6.0}    each optional; merged key by key with the defaults
//    }]}
#pragma once

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include <functional>
#include <set>
#include <optional>
#include <string>
#include <vector>

#include "quantbench/quant/format.h"
#include "quantbench/report/result.h"

namespace qb::bench {

struct PerplexitySpec {
  std::string text;            // as written; resolved like model paths
  int64_t ctx = 0;             // 0: the model's context, at most 1024 (as `quantbench ppl`)
  int64_t stride = 0;          // 0: ctx / 2
  int64_t max_tokens = 0;      // 0: the whole text
  std::string baseline;        // precision for KL / top-1 agreement; "" = fp16 on CUDA, fp32 on CPU; "none"
};

struct SweepEntry {
  std::string name;
  std::vector<std::string> models;
  std::optional<std::string> fallback;
  std::vector<std::string> precisions;
  std::vector<int64_t> batches = {1};
  std::vector<int64_t> prompt_lens = {128};
  std::vector<int64_t> gen_lens = {128};
  int warmup = 2;
  int repetitions = 5;
  std::string compute_dtype = "auto";
  bool cuda_graph = true;
  quant::FormatOptions format;  // "format": block size, double quantization, group size, ...
  std::optional<PerplexitySpec> perplexity;
};

struct SweepDefinition {
  std::string path;       // the file it came from (errors and relative paths)
  std::string description;
  std::vector<SweepEntry> entries;
};

SweepDefinition parse_sweep(const nlohmann::json& document, const std::string& path);
SweepDefinition load_sweep(const std::string& path);

// One timed run of the product, model as written in the entry (before resolution and fallback).
struct PlannedRun {
  size_t entry_index = 0;
  std::string model;
  std::string precision;
  int64_t batch = 0, prompt_len = 0, gen_len = 0;
};
// Order: entry, model, gen_len, precision, batch, prompt_len (a session's own loop order).
std::vector<PlannedRun> expand_runs(const SweepDefinition& sweep);

// A model spec after ${VAR} expansion and sweep-relative paths, and what ran in its place.
struct ModelChoice {
  std::string key_model;  // what records are keyed by: the spec as written, or the fallback
  std::string run_spec;   // what BenchmarkSession loads (expanded, absolute where it was relative)
  bool fell_back = false;
  std::string why;        // the resolver's message when it fell back
};
std::string expand_spec(const std::string& spec, const std::string& sweep_path);
ModelChoice choose_model(const std::string& spec, const std::optional<std::string>& fallback,
                         const std::string& sweep_path);

// Resume state: the records already in DIR/results.jsonl.
struct RecordedRuns {
  std::set<std::string> ok_keys;  // RunKey::str() of results, quality_key() of perplexity records
  int64_t dropped_error_records = 0;
  bool truncated_line_dropped = false;
};
std::string quality_key(const std::string& model, const std::string& precision, const std::string& device,
                        const std::string& text);
// Reads a results.jsonl and rewrites it without a truncated last line (a kill mid-write) and
// without the error records whose keys are in `planned_keys` (their retry appends a fresh record, and
// a report must not show both); a broken line elsewhere throws naming the line.
RecordedRuns prepare_resume(const std::string& results_path, const std::set<std::string>& planned_keys);

struct SweepOptions {
  std::string out_dir = "results";
  bool resume = false;
  c10::Device device = c10::Device(c10::kCPU);
  std::string only_regex;        // keep runs whose "ENTRY|KEY" matches (std::regex_search); KEY as resume uses
  bool probe_bandwidth = true;
  std::string command_line;
};

struct SweepSummary {
  int64_t ran = 0, skipped = 0, failed = 0;
  std::string results_path;
};

// Runs every planned run not yet recorded ok, appending each record as it is produced; `on_record`
// sees each appended record (tests count them).
SweepSummary run_sweep(const SweepDefinition& sweep, const SweepOptions& options,
                       const std::function<void(const nlohmann::json&)>& on_record = {});

}  // namespace qb::bench
