// The benchmark loop: for each precision, build the model once; for each batch x prompt length,
// warm up, then time repetitions of a whole generate (prefill + decode steps, CUDA events), sample
// memory alongside, and emit one result record. A failure (out of memory, a shape the format cannot
// take) becomes that run's error record and the loop goes on.
#pragma once

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "quantbench/bench/bandwidth_probe.h"
#include "quantbench/quant/format.h"

namespace qb::bench {

struct BenchmarkPlan {
  std::string model;                      // --model spec
  std::vector<std::string> precisions = {"fp16"};
  std::vector<int64_t> batches = {1};
  std::vector<int64_t> prompt_lens = {128};
  int64_t gen_len = 128;
  c10::Device device = c10::Device(c10::kCPU);
  std::string compute_dtype = "auto";     // auto | fp32 | fp16 | bf16
  int warmup = 2;
  int repetitions = 5;
  bool cuda_graph = true;
  bool stop_at_eos = false;
  std::optional<std::string> prompt_text;
  quant::FormatOptions format;            // blocksize, double quant, group size, threshold
  bool quantize_lm_head = true;
  uint64_t seed = 0;
  // Time every linear layer on its own (bench/linear_profile.h): the record gets "linear_profile", and the run
  // decodes eagerly (no CUDA graph) so that the per-layer events can be read.
  bool profile_linears = false;
  // One more generate call after the timed ones, with CUPTI recording every kernel (bench/kernel_trace.h): the
  // record gets "kernel_trace", the decode step's device time per kernel inside the graph.
  bool kernel_trace = false;
  // Quality in the same record: greedy agreement with `baseline` (run first when listed) and,
  // with quality_text, perplexity over its first quality_max_tokens tokens (checkpoints only).
  std::string baseline = "fp16";
  std::optional<std::string> quality_text;
  int64_t quality_max_tokens = 8192;
  int64_t quality_ctx = 0;  // 0: min(model context, 1024); stride ctx / 2
};

class BenchmarkSession {
 public:
  // Captures the environment and, on CUDA, probes copy bandwidth once for every result's floor.
  BenchmarkSession(c10::Device device, std::string command_line, bool probe_bandwidth = true);
  // Emits each record through `on_result` as soon as it exists, and returns them all.
  std::vector<nlohmann::json> run(const BenchmarkPlan& plan,
                                  const std::function<void(const nlohmann::json&)>& on_result = {});
  const nlohmann::json& environment() const { return environment_; }
  const std::optional<BandwidthProbe>& bandwidth() const { return bandwidth_; }

 private:
  c10::Device device_;
  nlohmann::json environment_;
  std::optional<BandwidthProbe> bandwidth_;
};

}  // namespace qb::bench
