#include "quantbench/bench/benchmark.h"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <numeric>
#include <filesystem>

#include "quantbench/bench/build_options.h"
#include "quantbench/bench/environment.h"
#include "quantbench/bench/kernel_trace.h"
#include "quantbench/bench/linear_profile.h"
#include "quantbench/bench/memory.h"
#include "quantbench/bench/stats.h"
#include "quantbench/bench/timeline.h"
#include "quantbench/core/error.h"
#include "quantbench/engine/generator.h"
#include "quantbench/engine/prompt.h"
#ifdef QB_HAVE_CUDA
#include <c10/cuda/CUDAStream.h>

#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/diag_fault.h"
#include "quantbench/kernels/pdl.h"
#endif
#include "quantbench/io/model_resolver.h"
#include "quantbench/model/builder.h"
#include "quantbench/quality/agreement.h"
#include "quantbench/quality/perplexity.h"
#include "quantbench/quality/text_source.h"
#include "quantbench/report/result.h"

namespace qb::bench {
namespace {

// Runs `action`, turning any failure into (kind, message); out-of-memory from libtorch included.
template <typename Action>
std::optional<std::pair<std::string, std::string>> capture_failure(Action&& action) {
  try {
    action();
    return std::nullopt;
  } catch (const Error& e) {
    return std::make_pair(std::string(error_kind_name(e.kind())), std::string(e.what()));
  } catch (const c10::OutOfMemoryError& e) {
    return std::make_pair(std::string("out_of_memory"), std::string(e.what_without_backtrace()));
  } catch (const c10::Error& e) {
    return std::make_pair(std::string("libtorch"), std::string(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return std::make_pair(std::string("internal"), std::string(e.what()));
  }
}

struct LoadedModel {
  io::ResolvedModel resolved;
  std::unique_ptr<model::CausalLM> lm;
  model::BuildReport report;
  std::optional<tok::Tokenizer> tokenizer;
  int64_t allocated_after_load_bytes = 0;
  int64_t device_used_after_load_bytes = 0;
  int64_t device_used_before_load_bytes = 0;
};

// The traced step, largest kernels first (the record has them all).
void log_kernel_trace(const std::string& key, const nlohmann::json& trace) {
  spdlog::info("{}: decode step in the graph {:.1f} us ({:.1f} idle), by exclusive time (kernel_trace):", key,
               trace["span_us_per_step"].get<double>(), trace["idle_us_per_step"].get<double>());
  int shown = 0;
  for (const auto& k : trace["kernels"]) {
    if (++shown > 16) break;
    spdlog::info("  {:8.2f} us  {:5.1f} calls  (own {:8.2f} us)  {}", k["exclusive_us_per_step"].get<double>(),
                 k["calls_per_step"].get<double>(), k["own_us_per_step"].get<double>(),
                 k["name"].get<std::string>().substr(0, 150));
  }
}

// Whether this run's decode kernels overlap their predecessors' tails (kernels/pdl.cuh); false on the CPU.
bool programmatic_launch(const c10::Device& device) {
#ifdef QB_HAVE_CUDA
  return device.is_cuda() && kernels::pdl_enabled();
#else
  (void)device;
  return false;
#endif
}

// QB_DIAG_KERNEL_FAULT=<precision>: a kernel that traps at the start of each of that precision's runs, so that
// tests can check what a run records after a kernel fault (kernels/diag_fault.cu). Read once.
void inject_kernel_fault_if_asked(const c10::Device& device, const std::string& precision) {
#ifdef QB_HAVE_CUDA
  static const char* const target = std::getenv("QB_DIAG_KERNEL_FAULT");
  if (device.is_cuda() && target != nullptr && precision == target) {
    kernels::launch_trap_kernel(c10::cuda::getCurrentCUDAStream(device.index()).stream());
    QB_CUDA_CHECK(cudaDeviceSynchronize());
  }
#else
  (void)device, (void)precision;
#endif
}

// The record of a run that was not attempted because an earlier kernel fault took the GPU (lost_device_context).
nlohmann::json not_run_result(const report::RunKey& key, const std::string& lost, const nlohmann::json& environment) {
  return report::make_error_result(key, error_kind_name(ErrorKind::kDevice),
                                   "not run: " + lost + "; run it again in a new process", environment);
}

}  // namespace

BenchmarkSession::BenchmarkSession(c10::Device device, std::string command_line, bool probe_bandwidth)
    : device_(device), environment_(capture_environment(device, command_line)) {
  if (device.is_cuda() && probe_bandwidth) {
    bandwidth_ = probe_copy_bandwidth(device);
    spdlog::info("copy bandwidth {:.0f} GB/s (read + write, {} MiB buffers)", bandwidth_->copy_gbps,
                 bandwidth_->buffer_bytes >> 20);
    environment_["copy_bandwidth"] = {{"gbps", bandwidth_->copy_gbps},     {"median_ms", bandwidth_->median_ms},
                                      {"buffer_bytes", bandwidth_->buffer_bytes}, {"repetitions", bandwidth_->repetitions},
                                      {"method", bandwidth_->method}};
  }
}

std::vector<nlohmann::json> BenchmarkSession::run(const BenchmarkPlan& plan,
                                                  const std::function<void(const nlohmann::json&)>& on_result) {
  // Refused before any model loads: there would be nothing to trace.
  QB_CHECK(!plan.kernel_trace || (device_.is_cuda() && kernel_trace_available()), kUnsupported,
           "--kernel-trace records CUDA kernels with CUPTI: it needs a CUDA device ({} here) and a build with CUPTI ({})",
           device_.str(), kernel_trace_available() ? "this one has it" : "this one has not");
  std::vector<nlohmann::json> results;
  auto emit = [&](nlohmann::json record) {
    if (on_result) on_result(record);
    results.push_back(std::move(record));
  };
  const char* device_name = device_.is_cuda() ? "cuda" : "cpu";
  // The baseline runs first so that every other precision can be compared with its tokens.
  std::vector<std::string> precisions = plan.precisions;
  const auto baseline_at = std::find(precisions.begin(), precisions.end(), plan.baseline);
  if (baseline_at != precisions.end()) std::rotate(precisions.begin(), baseline_at, baseline_at + 1);
  std::map<std::string, at::Tensor> baseline_tokens;  // RunKey without precision -> generated tokens
  for (const std::string& precision : precisions) {
    auto key_for = [&](int64_t batch, int64_t prompt_len) {
      return report::RunKey{plan.model, precision, device_name, batch, prompt_len, plan.gen_len};
    };
    if (const auto lost = lost_device_context(device_)) {
      spdlog::error("{} {}: not run: {}", plan.model, precision, *lost);
      for (int64_t batch : plan.batches) {
        for (int64_t prompt_len : plan.prompt_lens) emit(not_run_result(key_for(batch, prompt_len), *lost, environment_));
      }
      continue;
    }
    // Declared before the model it wraps, so that it outlives it.
    std::unique_ptr<LinearProfile> profile =
        plan.profile_linears ? std::make_unique<LinearProfile>(device_) : nullptr;
    LoadedModel loaded;
    const auto load_failure = capture_failure([&] {
      loaded.resolved = io::resolve_model(plan.model);
      model::BuildOptions options =
          build_options(loaded.resolved, precision, device_, plan.compute_dtype, plan.format, plan.quantize_lm_head);
      options.synthetic_seed = plan.seed;
      if (profile != nullptr) options.wrap_linear = profile->wrapper();
      release_cached_memory(device_);
      loaded.device_used_before_load_bytes = device_memory(device_).used_bytes;
      spdlog::info("loading {} as {} ({} compute) on {}", plan.model, precision, dtype_label(options.compute_dtype),
                   device_name);
      loaded.lm = model::build_causal_lm(loaded.resolved, options, &loaded.report);
      loaded.allocated_after_load_bytes = allocator_stats(device_).allocated_bytes;
      loaded.device_used_after_load_bytes = device_memory(device_).used_bytes;
      const std::string tokenizer_path = loaded.resolved.dir.empty() ? "" : loaded.resolved.dir + "/tokenizer.json";
      if (!tokenizer_path.empty() && std::filesystem::exists(tokenizer_path)) {
        loaded.tokenizer.emplace(tok::Tokenizer::from_file(tokenizer_path));
      }
    });
    if (load_failure) {
      spdlog::error("{} {}: {}", plan.model, precision, load_failure->second);
      (void)lost_device_context(device_);  // a fault while loading takes the later runs too
      for (int64_t batch : plan.batches) {
        for (int64_t prompt_len : plan.prompt_lens) {
          emit(report::make_error_result(key_for(batch, prompt_len), load_failure->first, load_failure->second,
                                         environment_));
        }
      }
      loaded.lm.reset();
      release_cached_memory(device_);
      continue;
    }
    const ModelConfig& config = loaded.lm->config();
    const model::ModelFootprint footprint = loaded.lm->footprint();

    for (int64_t batch : plan.batches) {
      for (int64_t prompt_len : plan.prompt_lens) {
        const report::RunKey key = key_for(batch, prompt_len);
        if (const auto lost = lost_device_context(device_)) {
          spdlog::error("{}: not run: {}", key.str(), *lost);
          emit(not_run_result(key, *lost, environment_));
          continue;
        }
        nlohmann::json record;
        const auto failure = capture_failure([&] {
          inject_kernel_fault_if_asked(device_, precision);
          engine::GenerateOptions gen;
          gen.gen_len = plan.gen_len;
          gen.use_cuda_graph = plan.cuda_graph && device_.is_cuda() && profile == nullptr;
          gen.stop_at_eos = plan.stop_at_eos;
          gen.eos_ids = config.eos_token_ids;
          release_cached_memory(device_);  // the previous shape's generator is gone: its workspace goes too
          reset_allocator_peaks(device_);
          DeviceMemorySampler sampler(device_);
          sampler.start();
          engine::Generator generator(*loaded.lm, batch, prompt_len, gen);
          const at::Tensor prompt = engine::make_prompt(loaded.tokenizer ? &*loaded.tokenizer : nullptr, plan.prompt_text,
                                                        config.vocab_size, batch, prompt_len, plan.seed + 1);
          auto timeline = make_timeline(device_);
          timeline->reserve(static_cast<size_t>(plan.gen_len) + 2);
          for (int i = 0; i < plan.warmup; ++i) generator.run(prompt, timeline.get()), timeline->clear();
          if (profile != nullptr) profile->clear();
          int64_t timed_decode_steps = 0;

          std::vector<double> prefill_ms, step_ms, decode_tps, prefill_tps, e2e_ms, wall_ms;
          engine::GenerateResult first;
          for (int rep = 0; rep < plan.repetitions; ++rep) {
            timeline->clear();
            if (profile != nullptr) profile->begin_run();
            const auto wall_start = std::chrono::steady_clock::now();
            engine::GenerateResult out = generator.run(prompt, timeline.get());
            timed_decode_steps += out.decode_steps;
            const std::vector<double> intervals = timeline->intervals_ms();
            wall_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - wall_start).count());
            const double prefill = intervals.front();
            double decode = 0;
            for (size_t i = 1; i < intervals.size(); ++i) {
              step_ms.push_back(intervals[i]);
              decode += intervals[i];
            }
            prefill_ms.push_back(prefill);
            prefill_tps.push_back(static_cast<double>(batch * prompt_len) / (prefill / 1e3));
            if (out.decode_steps > 0) decode_tps.push_back(static_cast<double>(batch * out.decode_steps) / (decode / 1e3));
            e2e_ms.push_back(prefill + decode);
            if (rep == 0) first = out;
          }
          const int64_t device_peak = sampler.stop();
          const AllocatorStats alloc = allocator_stats(device_);
          nlohmann::json kernel_trace;
          if (plan.kernel_trace) {  // after the timed calls and the memory figures: it perturbs neither
            KernelTrace trace;
            const engine::GenerateResult traced = generator.run(prompt, nullptr);
            kernel_trace = summarize_kernel_trace(trace.stop(), traced.decode_steps);
            log_kernel_trace(key_for(batch, prompt_len).str(), kernel_trace);
          }

          const Summary decode_summary = summarize(decode_tps);
          // Bytes one decode step must read: weights (with scales), norms, embedding rows, and the
          // KV cache over the positions it attends to, averaged over the steps.
          const int64_t weight_read = loaded.lm->decode_weight_bytes_per_step(batch);
          const double mean_attended = static_cast<double>(prompt_len) + static_cast<double>(plan.gen_len) / 2.0;
          const double kv_read = static_cast<double>(generator.cache().bytes_read_for_length(1)) * mean_attended;
          const double step_bytes = static_cast<double>(weight_read) + kv_read;
          nlohmann::json floor = {{"bytes_per_decode_step", step_bytes},
                                  {"weight_bytes_per_step", weight_read},
                                  {"kv_bytes_per_step_mean", kv_read}};
          if (bandwidth_.has_value()) {
            const double floor_tps = static_cast<double>(batch) * bandwidth_->copy_gbps * 1e9 / step_bytes;
            floor["copy_bandwidth_gbps"] = bandwidth_->copy_gbps;
            floor["floor_tokens_per_s"] = floor_tps;
            floor["fraction_of_floor"] = decode_summary.median / floor_tps;
          } else {
            floor["note"] = "no bandwidth probe on the CPU: floor not computed";
          }

          nlohmann::json generated = nlohmann::json::array();
          for (int64_t b = 0; b < first.tokens.size(0); ++b) {
            std::vector<int64_t> row(first.tokens[b].data_ptr<int64_t>(),
                                     first.tokens[b].data_ptr<int64_t>() + first.tokens.size(1));
            generated.push_back(row);
          }
          record = {
              {"schema", report::kResultSchema},
              {"key", report::key_to_json(key)},
              {"status", "ok"},
              {"model", {{"spec", plan.model},
                         {"id", loaded.resolved.id},
                         {"source", io::model_source_name(loaded.resolved.source)},
                         {"revision", loaded.resolved.revision},
                         {"weights", loaded.report.weights},
                         {"architecture", arch_name(config.arch)},
                         {"parameters", config.parameter_count()}}},
              {"precision", precision},
              {"compute_dtype", dtype_label(loaded.lm->dtype())},
              {"format_options", format_options_json(plan.format, precision)},
              {"lm_head_format", loaded.report.lm_head_format},
              {"prequantized_checkpoint", loaded.report.prequantized},
              {"load_seconds", loaded.report.load_seconds},
              {"run", {{"warmup", plan.warmup},
                       {"repetitions", plan.repetitions},
                       {"cuda_graph", generator.graph_captured()},
                       {"programmatic_dependent_launch", programmatic_launch(device_)},
                       {"stop_at_eos", plan.stop_at_eos},
                       {"prompt", loaded.tokenizer ? (plan.prompt_text ? "user text" : "built-in text") : "random ids"}}},
              {"timing", {{"clock", timeline->clock_name()},
                          {"prefill_ms", to_json(summarize(prefill_ms))},
                          {"ttft_ms", to_json(summarize(prefill_ms))},
                          {"decode_step_ms", to_json(summarize(step_ms))},
                          {"decode_tokens_per_s", to_json(decode_summary)},
                          {"prefill_tokens_per_s", to_json(summarize(prefill_tps))},
                          {"e2e_ms", to_json(summarize(e2e_ms))},
                          {"request_wall_ms", to_json(summarize(wall_ms))}}},
              {"memory", {{"weight_bytes", footprint.total_bytes()},
                          {"linear_bytes", footprint.linear_bytes},
                          {"linear_bytes_by_format", footprint.linear_bytes_by_format},
                          {"lm_head_bytes", footprint.lm_head_bytes},
                          {"embedding_bytes", footprint.embedding_bytes},
                          {"norm_bytes", footprint.norm_bytes},
                          {"kv_cache_bytes", generator.cache().bytes()},
                          {"allocated_after_load_bytes", loaded.allocated_after_load_bytes},
                          {"peak_allocated_bytes", alloc.peak_allocated_bytes},
                          {"peak_reserved_bytes", alloc.peak_reserved_bytes},
                          {"device_used_before_load_bytes", loaded.device_used_before_load_bytes},
                          {"device_used_after_load_bytes", loaded.device_used_after_load_bytes},
                          {"device_peak_used_bytes", device_peak},
                          {"device_samples", sampler.samples()},
                          {"methods", {{"weight_bytes", "sum of bytes each layer holds (packed weights, scales, biases), norms and embeddings"},
                                       {"peak_allocated_bytes", "libtorch CUDA caching allocator, peak since the run began"},
                                       {"peak_reserved_bytes", "libtorch CUDA caching allocator, peak reserved since the run began"},
                                       {"device_peak_used_bytes", "sampling thread, cudaMemGetInfo total - free every 0.5 ms (whole device, all processes)"}}}}},
              {"floor", floor},
              {"generated_tokens", generated},
              {"environment", environment_},
          };
          if (profile != nullptr) {
            nlohmann::json linear_profile = profile->summary(timed_decode_steps);
            if (linear_profile.contains("linear_decode_ms_per_step") && !step_ms.empty()) {
              const double step_mean = std::accumulate(step_ms.begin(), step_ms.end(), 0.0) / step_ms.size();
              linear_profile["decode_step_ms_mean"] = step_mean;
              linear_profile["other_decode_ms_per_step"] =
                  step_mean - linear_profile["linear_decode_ms_per_step"].get<double>();
              std::string by_role;
              for (const auto& role : linear_profile["roles"]) {
                if (!role.contains("decode_ms_per_step")) continue;
                by_role += fmt::format("{}{} {:.3f} ms ({:.0f} GB/s)", by_role.empty() ? "" : ", ",
                                       role["role"].get<std::string>(), role["decode_ms_per_step"].get<double>(),
                                       role["decode_gbps"].get<double>());
              }
              spdlog::info("{}: linear layers {:.3f} of {:.3f} ms per decode step (eager); {}", key.str(),
                           linear_profile["linear_decode_ms_per_step"].get<double>(), step_mean, by_role);
            }
            record["linear_profile"] = std::move(linear_profile);
          }
          if (!kernel_trace.is_null()) record["kernel_trace"] = std::move(kernel_trace);
          if (device_.is_cpu()) {
            // The allocator statistics and cudaMemGetInfo are CUDA's; on the CPU they were not measured, and a 0
            // would read as a measurement.
            auto& memory = record["memory"];
            for (const char* figure : {"allocated_after_load_bytes", "peak_allocated_bytes", "peak_reserved_bytes",
                                       "device_used_before_load_bytes", "device_used_after_load_bytes",
                                       "device_peak_used_bytes", "device_samples"}) {
              memory[figure] = nullptr;
            }
            memory["methods"] = {{"weight_bytes", memory["methods"]["weight_bytes"]},
                                 {"device_memory", "not measured: the run was on the CPU"}};
          }
          if (loaded.tokenizer.has_value()) {
            std::vector<int32_t> ids;
            for (int64_t t = 0; t < first.tokens.size(1); ++t) ids.push_back(static_cast<int32_t>(first.tokens[0][t].item<int64_t>()));
            record["generated_text"] = loaded.tokenizer->decode(ids);
          }
          nlohmann::json quality = nlohmann::json::object();
          const std::string tokens_key = fmt::format("b{}|p{}", batch, prompt_len);
          if (precision == plan.baseline) {
            baseline_tokens[tokens_key] = first.tokens;
          } else if (baseline_tokens.count(tokens_key) != 0) {
            quality["greedy_vs_" + plan.baseline] = quality::greedy_agreement(first.tokens, baseline_tokens[tokens_key]);
          }
          if (plan.quality_text.has_value() && loaded.tokenizer.has_value() && batch == plan.batches.front() &&
              prompt_len == plan.prompt_lens.front()) {
            const auto ids32 = loaded.tokenizer->encode(quality::read_text_file(*plan.quality_text), true);
            std::vector<int64_t> text_ids(ids32.begin(), ids32.end());
            if (static_cast<int64_t>(text_ids.size()) > plan.quality_max_tokens) text_ids.resize(plan.quality_max_tokens);
            quality::PerplexityOptions ppl;
            ppl.context = plan.quality_ctx > 0 ? plan.quality_ctx : std::min<int64_t>(loaded.lm->max_positions(), 1024);
            ppl.stride = ppl.context / 2;
            const auto measured = quality::evaluate_perplexity(*loaded.lm, text_ids, ppl);
            quality["perplexity"] = measured.perplexity;
            quality["perplexity_text"] = *plan.quality_text;
            quality["perplexity_tokens"] = measured.scored_tokens;
            quality["perplexity_ctx"] = ppl.context;
            quality["perplexity_stride"] = ppl.stride;
          }
          if (!quality.empty()) record["quality"] = quality;
          spdlog::info("{} {} b{} p{} g{}: decode {:.1f} tok/s{}, prefill {:.2f} ms", plan.model, precision, batch,
                       prompt_len, plan.gen_len, decode_summary.median,
                       bandwidth_ ? fmt::format(" ({:.0f}% of floor)", 100 * floor.value("fraction_of_floor", 0.0)) : "",
                       summarize(prefill_ms).median);
        });
        if (failure) {
          spdlog::error("{}: {}", key.str(), failure->second);
          record = report::make_error_result(key, failure->first, failure->second, environment_);
          release_cached_memory(device_);
        }
        emit(std::move(record));
      }
    }
    loaded.lm.reset();
    release_cached_memory(device_);
  }
  return results;
}

}  // namespace qb::bench
