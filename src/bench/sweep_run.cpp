// Running a sweep: resolve each entry's models (falling back to a synthetic preset), plan the run
// keys, skip those already recorded ok, and drive BenchmarkSession over what is left of each
// model's product, appending every record to results.jsonl the moment the session emits it.
// Perplexity records (schema quantbench.quality/1, the fields `quantbench ppl` writes, with KL and
// top-1 agreement vs the baseline) follow each model.
#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <regex>

#include "quantbench/bench/benchmark.h"
#include "quantbench/bench/build_options.h"
#include "quantbench/bench/memory.h"
#include "quantbench/bench/sweep.h"
#include "quantbench/core/error.h"
#include "quantbench/io/model_config.h"
#include "quantbench/io/model_resolver.h"
#include "quantbench/model/builder.h"
#include "quantbench/quality/perplexity.h"
#include "quantbench/quality/quality_record.h"
#include "quantbench/quality/text_source.h"

namespace qb::bench {
namespace fs = std::filesystem;
namespace {

using nlohmann::json;

// The runs of one (entry, model) still to do, and the perplexity precisions.
struct ModelWork {
  size_t entry_index = 0;
  std::string requested_model;
  ModelChoice choice;
  std::vector<PlannedRun> runs;           // filtered by --only; keys use choice.key_model
  std::vector<std::string> ppl_precisions;
};

report::RunKey key_for(const PlannedRun& run, const ModelChoice& choice, const std::string& device) {
  return {choice.key_model, run.precision, device, run.batch, run.prompt_len, run.gen_len};
}

std::pair<std::string, std::string> describe_failure(std::exception_ptr failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const Error& e) {
    return {error_kind_name(e.kind()), e.what()};
  } catch (const c10::OutOfMemoryError& e) {
    return {"out_of_memory", e.what_without_backtrace()};
  } catch (const c10::Error& e) {
    return {"libtorch", e.what_without_backtrace()};
  } catch (const std::exception& e) {
    return {"internal", e.what()};
  }
}

std::unique_ptr<model::CausalLM> build_for_quality(const io::ResolvedModel& resolved, const std::string& precision,
                                                   const SweepEntry& entry, c10::Device device) {
  return model::build_causal_lm(resolved, build_options(resolved, precision, device, entry.compute_dtype, entry.format,
                                                        /*quantize_lm_head=*/true));
}

// One quality record per precision, the fields `quantbench ppl` writes. Synthetic weights have no
// tokenizer and a meaningless perplexity: those become error records saying so.
void run_perplexity(const SweepDefinition& sweep, const ModelWork& work, c10::Device device, const json& environment,
                    const std::function<void(json)>& emit) {
  const SweepEntry& entry = sweep.entries[work.entry_index];
  const PerplexitySpec& spec = *entry.perplexity;
  const std::string device_name = device.is_cuda() ? "cuda" : "cpu";
  auto record_for = [&](const std::string& precision) {
    return json{{"schema", report::kQualitySchema},
                {"key", {{"model", work.choice.key_model}, {"precision", precision}, {"device", device_name},
                         {"text", spec.text}}},
                {"environment", environment}};
  };
  std::vector<int64_t> ids;
  io::ResolvedModel resolved;
  std::exception_ptr setup_failure;
  try {
    resolved = io::resolve_model(work.choice.run_spec);
    QB_CHECK(resolved.source != io::ModelSource::kSynthetic, kUnsupported,
             "perplexity needs real weights and a tokenizer.json; {} ran on synthetic weights{}", work.choice.key_model,
             work.choice.fell_back ? " because " + work.requested_model + " is not in the local hub cache" : "");
    const tok::Tokenizer tokenizer = quality::tokenizer_for_model_dir(resolved.dir);
    const std::vector<int32_t> ids32 = tokenizer.encode(quality::read_text_file(expand_spec(spec.text, sweep.path)), true);
    ids.assign(ids32.begin(), ids32.end());
    if (spec.max_tokens > 0 && static_cast<int64_t>(ids.size()) > spec.max_tokens) ids.resize(spec.max_tokens);
  } catch (...) {
    setup_failure = std::current_exception();
  }
  const std::string baseline_name = spec.baseline.empty() ? (device.is_cuda() ? "fp16" : "fp32") : spec.baseline;
  std::unique_ptr<model::CausalLM> baseline;
  json baseline_error;
  const bool needs_baseline = std::any_of(work.ppl_precisions.begin(), work.ppl_precisions.end(),
                                          [&](const std::string& p) { return p != baseline_name; });
  if (!setup_failure && baseline_name != "none" && needs_baseline) {
    try {
      baseline = build_for_quality(resolved, baseline_name, entry, device);
    } catch (...) {
      const auto [kind, message] = describe_failure(std::current_exception());
      spdlog::warn("{}: baseline {} failed ({}); perplexity without KL", work.choice.key_model, baseline_name, message);
      baseline_error = {{"kind", kind}, {"message", message}};
    }
  }
  for (const auto& precision : work.ppl_precisions) {
    json record = record_for(precision);
    try {
      if (setup_failure) std::rethrow_exception(setup_failure);
      const auto lm = build_for_quality(resolved, precision, entry, device);
      quality::PerplexityOptions options;
      options.context = spec.ctx > 0 ? spec.ctx : std::min<int64_t>(lm->max_positions(), 1024);
      options.stride = spec.stride > 0 ? spec.stride : options.context / 2;
      const bool compare = baseline != nullptr && precision != baseline_name;
      const auto r = quality::evaluate_perplexity(*lm, ids, options, compare ? baseline.get() : nullptr);
      record["status"] = "ok";
      record["quality"] = quality::quality_section(r, options, *lm, "checkpoint", baseline_name);
      record["format_options"] = format_options_json(entry.format, precision);
      if (!compare && !baseline_error.is_null()) record["quality"]["baseline_error"] = baseline_error;
      spdlog::info("{} {}: perplexity {:.4f} over {} tokens", work.choice.key_model, precision, r.perplexity,
                   r.scored_tokens);
    } catch (...) {
      const auto [kind, message] = describe_failure(std::current_exception());
      spdlog::error("{} {} perplexity: {}", work.choice.key_model, precision, message);
      record["status"] = "error";
      record["error"] = {{"kind", kind}, {"message", message}};
    }
    emit(std::move(record));
    release_cached_memory(device);
  }
}

// What is left of one model's product, as session plans. A session loads each precision once and
// compares every precision's greedy tokens with the baseline's when both run in the same plan, so
// the usual case (nothing or everything left) is one plan per gen_len with all precisions; a
// partial remainder falls back to one plan per precision, or per (precision, batch).
struct PlanShape {
  int64_t gen_len = 0;
  std::vector<std::string> precisions;
  std::vector<int64_t> batches, prompt_lens;
};

template <typename T>
void add_unique(std::vector<T>& values, const T& value) {
  if (std::find(values.begin(), values.end(), value) == values.end()) values.push_back(value);
}

std::vector<PlanShape> plan_shapes(const std::vector<PlannedRun>& left) {
  std::vector<PlanShape> shapes;
  auto split = [&](const std::vector<PlannedRun>& runs, auto&& finer) {
    PlanShape shape{runs.front().gen_len, {}, {}, {}};
    for (const auto& r : runs) {
      add_unique(shape.precisions, r.precision);
      add_unique(shape.batches, r.batch);
      add_unique(shape.prompt_lens, r.prompt_len);
    }
    if (shape.precisions.size() * shape.batches.size() * shape.prompt_lens.size() == runs.size()) {
      shapes.push_back(shape);
    } else {
      finer(runs);
    }
  };
  auto by = [](const std::vector<PlannedRun>& runs, auto&& field) {
    std::vector<std::vector<PlannedRun>> groups;
    std::vector<decltype(field(runs.front()))> order;
    for (const auto& r : runs) add_unique(order, field(r));
    for (const auto& value : order) {
      groups.emplace_back();
      for (const auto& r : runs) if (field(r) == value) groups.back().push_back(r);
    }
    return groups;
  };
  auto per_batch = [&](const std::vector<PlannedRun>& runs) {
    for (const auto& group : by(runs, [](const PlannedRun& r) { return r.batch; })) split(group, [](const auto&) {});
  };
  auto per_precision = [&](const std::vector<PlannedRun>& runs) {
    for (const auto& group : by(runs, [](const PlannedRun& r) { return r.precision; })) split(group, per_batch);
  };
  if (left.empty()) return shapes;
  for (const auto& group : by(left, [](const PlannedRun& r) { return r.gen_len; })) split(group, per_precision);
  return shapes;
}

}  // namespace

SweepSummary run_sweep(const SweepDefinition& sweep, const SweepOptions& options,
                       const std::function<void(const json&)>& on_record) {
  const std::string device_name = options.device.is_cuda() ? "cuda" : "cpu";
  SweepSummary summary;
  fs::create_directories(options.out_dir);
  summary.results_path = (fs::path(options.out_dir) / "results.jsonl").string();
  std::error_code ec;
  QB_CHECK(options.resume || !fs::exists(summary.results_path) || fs::file_size(summary.results_path, ec) == 0,
           kInvalidInput, "{} already holds results: pass --resume to continue that sweep, or choose another --out",
           summary.results_path);
  std::optional<std::regex> only;
  try {
    if (!options.only_regex.empty()) only.emplace(options.only_regex);
  } catch (const std::regex_error& e) {
    fail(ErrorKind::kInvalidInput, "--only '{}' is not a valid regular expression: {}", options.only_regex, e.what());
  }
  auto selected = [&](const SweepEntry& entry, const std::string& key) {
    return !only || std::regex_search(entry.name + "|" + key, *only);
  };

  // Plan every key first: resume needs the whole set to know which error records it retries.
  std::vector<ModelWork> work;
  std::set<std::string> planned_keys;
  const std::vector<PlannedRun> all_runs = expand_runs(sweep);
  for (size_t e = 0; e < sweep.entries.size(); ++e) {
    const SweepEntry& entry = sweep.entries[e];
    for (const auto& model : entry.models) {
      ModelWork item{e, model, choose_model(model, entry.fallback, sweep.path), {}, {}};
      if (item.choice.fell_back) spdlog::info("{}: not found locally, running {}", model, item.choice.key_model);
      for (const auto& run : all_runs) {
        if (run.entry_index != e || run.model != model) continue;
        const std::string key = key_for(run, item.choice, device_name).str();
        if (!selected(entry, key)) continue;
        item.runs.push_back(run);
        planned_keys.insert(key);
      }
      if (entry.perplexity) {
        for (const auto& precision : entry.precisions) {
          const std::string key = quality_key(item.choice.key_model, precision, device_name, entry.perplexity->text);
          if (!selected(entry, key)) continue;
          item.ppl_precisions.push_back(precision);
          planned_keys.insert(key);
        }
      }
      work.push_back(std::move(item));
    }
  }
  const RecordedRuns recorded = options.resume ? prepare_resume(summary.results_path, planned_keys) : RecordedRuns{};
  summary.skipped = static_cast<int64_t>(std::count_if(planned_keys.begin(), planned_keys.end(),
                                                       [&](const std::string& k) { return recorded.ok_keys.count(k); }));
  spdlog::info("sweep {}: {} runs planned, {} already recorded ok", sweep.path, planned_keys.size(), summary.skipped);

  std::unique_ptr<BenchmarkSession> session;  // made on first use: the bandwidth probe takes a moment
  auto ensure_session = [&]() -> BenchmarkSession& {
    if (!session) session = std::make_unique<BenchmarkSession>(options.device, options.command_line, options.probe_bandwidth);
    return *session;
  };
  for (const ModelWork& item : work) {
    const SweepEntry& entry = sweep.entries[item.entry_index];
    // Greedy tokens are compared with this precision's (the session runs it first when listed).
    const std::string default_baseline =
        entry.perplexity && !entry.perplexity->baseline.empty() && entry.perplexity->baseline != "none"
            ? entry.perplexity->baseline
            : (options.device.is_cuda() ? "fp16" : "fp32");
    auto emit = [&](json record) {
      record["key"]["model"] = item.choice.key_model;
      record["sweep"] = {{"file", sweep.path}, {"entry", entry.name}, {"requested_model", item.requested_model},
                         {"fell_back", item.choice.fell_back}};
      if (item.choice.fell_back) record["sweep"]["fallback_reason"] = item.choice.why;
      report::append_result_line(summary.results_path, record);
      ++summary.ran;
      if (record.value("status", "") != "ok") ++summary.failed;
      if (on_record) on_record(record);
    };
    std::vector<PlannedRun> left;
    for (const auto& run : item.runs) {
      if (!recorded.ok_keys.count(key_for(run, item.choice, device_name).str())) left.push_back(run);
    }
    for (const PlanShape& shape : plan_shapes(left)) {
      BenchmarkPlan plan;
      plan.model = item.choice.run_spec;
      plan.precisions = shape.precisions;
      plan.batches = shape.batches;
      plan.prompt_lens = shape.prompt_lens;
      plan.gen_len = shape.gen_len;
      plan.device = options.device;
      plan.compute_dtype = entry.compute_dtype;
      plan.format = entry.format;
      plan.warmup = entry.warmup;
      plan.repetitions = entry.repetitions;
      plan.cuda_graph = entry.cuda_graph;
      plan.baseline = default_baseline;
      ensure_session().run(plan, emit);
    }
    std::vector<std::string> ppl_left;
    for (const auto& precision : item.ppl_precisions) {
      if (!recorded.ok_keys.count(quality_key(item.choice.key_model, precision, device_name, entry.perplexity->text))) {
        ppl_left.push_back(precision);
      }
    }
    if (!ppl_left.empty()) {
      ModelWork left = item;
      left.ppl_precisions = ppl_left;
      run_perplexity(sweep, left, options.device, ensure_session().environment(), emit);
    }
  }
  spdlog::info("sweep done: {} records written ({} failed), {} skipped as already recorded; {}", summary.ran,
               summary.failed, summary.skipped, summary.results_path);
  return summary;
}

}  // namespace qb::bench
