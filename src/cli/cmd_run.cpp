// `quantbench run`: the benchmark of one model over precisions x batches x prompt lengths.
#include <spdlog/spdlog.h>

#include <memory>

#include "commands.h"
#include "quantbench/bench/benchmark.h"
#include "quantbench/core/error.h"
#include "quantbench/report/result.h"
#include "quantbench/report/table.h"

namespace qb::cli {
namespace {

struct RunFlags {
  std::string model = "synthetic:gpt2";
  std::vector<std::string> precisions;
  std::vector<int64_t> batches = {1};
  std::vector<int64_t> prompt_lens;
  int64_t gen_len = 0;
  std::string device = "auto";
  std::string compute_dtype = "auto";
  int warmup = -1, repetitions = -1;
  bool eager = false, stop_at_eos = false, dense_lm_head = false, no_probe = false, int8_per_group = false;
  bool profile_linears = false;
  bool kernel_trace = false;
  std::string prompt;
  int64_t blocksize = 64, group_size = 128;
  std::string double_quant = "off";
  double outlier_threshold = 6.0;
  uint64_t seed = 0;
  std::string out, format = "md", baseline, quality_text;
  int64_t quality_max_tokens = 8192;
};

}  // namespace

void add_run_command(CLI::App& app, Action& action, const std::string& command_line) {
  auto flags = std::make_shared<RunFlags>();
  CLI::App* run = app.add_subcommand("run", "benchmark generation (the default subcommand)");
  run->add_option("-m,--model", flags->model,
                  "local directory, HuggingFace id in the local hub cache, or synthetic:PRESET")->capture_default_str();
  run->add_option("-p,--precision", flags->precisions, "weight formats, comma-separated (default: fp32 on CPU, fp16 on CUDA)")
      ->delimiter(',');
  run->add_option("-b,--batch", flags->batches, "batch sizes, comma-separated")->delimiter(',')->capture_default_str();
  run->add_option("--prompt-len", flags->prompt_lens, "prompt lengths in tokens, comma-separated (default 128; 32 on CPU)")
      ->delimiter(',');
  run->add_option("-g,--gen-len", flags->gen_len, "tokens to generate (default 128; 32 on CPU)");
  run->add_option("--device", flags->device, "auto | cpu | cuda | cuda:N")->capture_default_str();
  run->add_option("--compute-dtype", flags->compute_dtype, "activation dtype: auto | fp32 | fp16 | bf16")->capture_default_str();
  run->add_option("--warmup", flags->warmup, "untimed runs before timing (default 2; 1 on CPU)");
  run->add_option("-r,--repetitions", flags->repetitions, "timed runs (default 5; 3 on CPU)");
  run->add_flag("--eager", flags->eager, "decode without CUDA graphs");
  run->add_flag("--profile-linears", flags->profile_linears,
                "time every linear layer on its own (decodes eagerly); records linear_profile");
  run->add_flag("--kernel-trace", flags->kernel_trace,
                "after timing, one traced call: the decode step's time per kernel (CUPTI); records kernel_trace");
  run->add_flag("--stop-at-eos", flags->stop_at_eos, "stop when every sequence has produced EOS (default: fixed length)");
  run->add_option("--prompt", flags->prompt, "prompt text (models with a tokenizer; default: a built-in passage)");
  run->add_option("--blocksize", flags->blocksize, "nf4/fp4 block size")->capture_default_str();
  run->add_option("--double-quant", flags->double_quant, "nf4/fp4 double quantization: on | off")->capture_default_str();
  run->add_option("--group-size", flags->group_size, "awq (and int8 --int8-per-group) group size")->capture_default_str();
  run->add_flag("--int8-per-group", flags->int8_per_group, "int8: per-group scales instead of per-output-channel");
  run->add_option("--outlier-threshold", flags->outlier_threshold, "llm.int8 outlier threshold")->capture_default_str();
  run->add_flag("--dense-lm-head", flags->dense_lm_head, "keep the LM head dense in the compute dtype");
  run->add_flag("--no-probe", flags->no_probe, "skip the copy-bandwidth probe (no floor in the results)");
  run->add_option("--seed", flags->seed, "seed for synthetic weights and random prompts")->capture_default_str();
  run->add_option("--baseline", flags->baseline, "precision whose greedy tokens the others are compared with (default fp16; fp32 on CPU)");
  run->add_option("--quality-text", flags->quality_text, "also measure perplexity on this text (checkpoints with a tokenizer)");
  run->add_option("--quality-max-tokens", flags->quality_max_tokens, "tokens of --quality-text to use")->capture_default_str();
  run->add_option("-o,--out,--json", flags->out, "write the result records (JSON array) to this file");
  run->add_option("--format", flags->format, "stdout: md | csv | json")->capture_default_str();
  run->callback([&action, flags, command_line] {
    action = [flags, command_line]() -> int {
      bench::BenchmarkPlan plan;
      plan.device = parse_device(flags->device);
      const bool cpu = plan.device.is_cpu();
      plan.model = flags->model;
      plan.precisions = flags->precisions.empty() ? std::vector<std::string>{cpu ? "fp32" : "fp16"} : flags->precisions;
      plan.batches = flags->batches;
      plan.prompt_lens = flags->prompt_lens.empty() ? std::vector<int64_t>{cpu ? 32 : 128} : flags->prompt_lens;
      plan.gen_len = flags->gen_len > 0 ? flags->gen_len : (cpu ? 32 : 128);
      plan.compute_dtype = flags->compute_dtype;
      plan.warmup = flags->warmup >= 0 ? flags->warmup : (cpu ? 1 : 2);
      plan.repetitions = flags->repetitions > 0 ? flags->repetitions : (cpu ? 3 : 5);
      plan.cuda_graph = !flags->eager;
      plan.profile_linears = flags->profile_linears;
      plan.kernel_trace = flags->kernel_trace;
      plan.stop_at_eos = flags->stop_at_eos;
      if (!flags->prompt.empty()) plan.prompt_text = flags->prompt;
      QB_CHECK(flags->double_quant == "on" || flags->double_quant == "off", kInvalidInput,
               "--double-quant must be on or off, not '{}'", flags->double_quant);
      plan.format.blocksize = flags->blocksize;
      plan.format.double_quant = flags->double_quant == "on";
      plan.format.group_size = flags->group_size;
      plan.format.int8_per_group = flags->int8_per_group;
      plan.format.outlier_threshold = flags->outlier_threshold;
      plan.quantize_lm_head = !flags->dense_lm_head;
      plan.seed = flags->seed;
      plan.baseline = flags->baseline.empty() ? (cpu ? "fp32" : "fp16") : flags->baseline;
      if (!flags->quality_text.empty()) plan.quality_text = flags->quality_text;
      plan.quality_max_tokens = flags->quality_max_tokens;
      for (int64_t b : plan.batches) QB_CHECK(b > 0, kInvalidInput, "--batch values must be positive, got {}", b);
      QB_CHECK(flags->format == "md" || flags->format == "csv" || flags->format == "json", kInvalidInput,
               "--format must be md, csv or json");

      bench::BenchmarkSession session(plan.device, command_line, !flags->no_probe);
      const auto results = session.run(plan);
      if (!flags->out.empty()) {
        report::write_results_json(flags->out, results);
        spdlog::info("wrote {} result records to {}", results.size(), flags->out);
      }
      if (flags->format == "json") {
        write_output("-", nlohmann::json(results).dump(2) + "\n");
      } else {
        const auto rows = report::table_rows(results);
        write_output("-", flags->format == "csv" ? report::render_csv(rows) : report::render_markdown(rows));
      }
      if (results.size() == 1 && results.front().contains("generated_text")) {
        spdlog::info("generated: {}", results.front()["generated_text"].get<std::string>());
      }
      for (const auto& r : results) {
        if (r.value("status", "") != "ok") return 1;
      }
      return 0;
    };
  });
}

}  // namespace qb::cli
