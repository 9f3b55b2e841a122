// `quantbench ppl`: sliding-window perplexity over a text file, and against a baseline precision
// the KL divergence and top-1 agreement of the next-token distributions. One record per precision
// (schema quantbench.quality/1).
#include <spdlog/spdlog.h>

#include <memory>

#include "commands.h"
#include "quantbench/bench/build_options.h"
#include "quantbench/bench/benchmark.h"
#include "quantbench/bench/environment.h"
#include "quantbench/core/error.h"
#include "quantbench/io/model_resolver.h"
#include "quantbench/model/builder.h"
#include "quantbench/quality/perplexity.h"
#include "quantbench/quality/quality_record.h"
#include "quantbench/quality/text_source.h"
#include "quantbench/report/result.h"

namespace qb::cli {
namespace {

struct PplFlags {
  std::string model, text, device = "auto", baseline, out, compute_dtype = "auto";
  std::vector<std::string> precisions;
  int64_t ctx = 0, stride = 0, max_chars = -1, max_tokens = 0, batch = 0, blocksize = 64, group_size = 128;
  std::string double_quant = "off";
  double outlier_threshold = 6.0;
  bool dense_lm_head = false;
};

quant::FormatOptions format_of(const PplFlags& flags) {
  quant::FormatOptions format;
  format.blocksize = flags.blocksize;
  format.double_quant = flags.double_quant == "on";
  format.group_size = flags.group_size;
  format.outlier_threshold = flags.outlier_threshold;
  return format;
}

std::unique_ptr<model::CausalLM> build(const io::ResolvedModel& resolved, const std::string& precision,
                                       const PplFlags& flags, c10::Device device) {
  return model::build_causal_lm(resolved, bench::build_options(resolved, precision, device, flags.compute_dtype,
                                                               format_of(flags), !flags.dense_lm_head));
}

}  // namespace

void add_ppl_command(CLI::App& app, Action& action, const std::string& command_line) {
  auto flags = std::make_shared<PplFlags>();
  CLI::App* cmd = app.add_subcommand("ppl", "perplexity over a text file (and KL / top-1 agreement vs a baseline)");
  cmd->add_option("-m,--model", flags->model, "model directory or hub id (needs tokenizer.json)")->required();
  cmd->add_option("-p,--precision", flags->precisions, "precisions, comma-separated")->delimiter(',')->required();
  cmd->add_option("--text", flags->text, "UTF-8 text file, e.g. wikitext-2/test.txt")->required();
  cmd->add_option("--ctx", flags->ctx, "window length in tokens (default: the model's context, at most 1024)");
  cmd->add_option("--stride", flags->stride, "window stride (default: ctx / 2)");
  cmd->add_option("--baseline", flags->baseline, "precision to compare distributions with (default fp16; fp32 on the CPU; none to skip)");
  cmd->add_option("--max-chars", flags->max_chars, "use only the first N characters of the text");
  cmd->add_option("--max-tokens", flags->max_tokens, "use only the first N tokens");
  cmd->add_option("--window-batch", flags->batch, "windows per forward pass (default: as memory allows)");
  cmd->add_option("--device", flags->device, "auto | cpu | cuda")->capture_default_str();
  cmd->add_option("--compute-dtype", flags->compute_dtype, "auto | fp32 | fp16 | bf16")->capture_default_str();
  cmd->add_flag("--dense-lm-head", flags->dense_lm_head, "keep the LM head dense");
  cmd->add_option("--blocksize", flags->blocksize, "nf4/fp4 block size")->capture_default_str();
  cmd->add_option("--double-quant", flags->double_quant, "nf4/fp4 double quantization: on | off")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  cmd->add_option("--group-size", flags->group_size, "awq group size")->capture_default_str();
  cmd->add_option("--outlier-threshold", flags->outlier_threshold, "llm.int8 outlier threshold")->capture_default_str();
  cmd->add_option("-o,--out", flags->out, "write the records (JSON array) here");
  cmd->callback([&action, flags, command_line] {
    action = [flags, command_line]() -> int {
      const c10::Device device = parse_device(flags->device);
      const io::ResolvedModel resolved = io::resolve_model(flags->model);
      const tok::Tokenizer tokenizer = quality::tokenizer_for_model_dir(resolved.dir);
      const std::string text = quality::first_code_points(quality::read_text_file(flags->text), flags->max_chars);
      const std::vector<int32_t> ids32 = tokenizer.encode(text, true);
      std::vector<int64_t> ids(ids32.begin(), ids32.end());
      if (flags->max_tokens > 0 && static_cast<int64_t>(ids.size()) > flags->max_tokens) ids.resize(flags->max_tokens);
      std::string baseline_name = flags->baseline.empty() ? (device.is_cpu() ? "fp32" : "fp16") : flags->baseline;
      std::unique_ptr<model::CausalLM> baseline;
      if (baseline_name != "none") baseline = build(resolved, baseline_name, *flags, device);

      const nlohmann::json environment = bench::capture_environment(device, command_line);
      std::vector<nlohmann::json> records;
      int status = 0;
      for (const auto& precision : flags->precisions) {
        nlohmann::json record = {{"schema", report::kQualitySchema},
                                 {"key", {{"model", flags->model}, {"precision", precision},
                                          {"device", device.is_cuda() ? "cuda" : "cpu"}, {"text", flags->text}}},
                                 {"environment", environment}};
        try {
          const auto lm = build(resolved, precision, *flags, device);
          quality::PerplexityOptions options;
          options.context = flags->ctx > 0 ? flags->ctx : std::min<int64_t>(lm->max_positions(), 1024);
          options.stride = flags->stride > 0 ? flags->stride : options.context / 2;
          options.max_batch_windows = flags->batch;
          const bool compare = baseline != nullptr && precision != baseline_name;
          const auto r = quality::evaluate_perplexity(*lm, ids, options, compare ? baseline.get() : nullptr);
          record["status"] = "ok";
          record["quality"] = quality::quality_section(
              r, options, *lm, resolved.source == io::ModelSource::kSynthetic ? "synthetic" : "checkpoint", baseline_name);
          record["quality"]["characters"] = text.size();
          record["format_options"] = bench::format_options_json(format_of(*flags), precision);
          spdlog::info("{} {}: perplexity {:.4f} over {} tokens ({} windows, {:.0f} tok/s){}", flags->model, precision,
                       r.perplexity, r.scored_tokens, r.windows, r.tokens_per_s,
                       compare ? fmt::format(", KL vs {} mean {:.5f} p99 {:.5f}, top-1 agreement {:.4f}", baseline_name,
                                             *r.kl_mean, *r.kl_p99, *r.top1_agreement)
                               : "");
        } catch (const Error& e) {
          record["status"] = "error";
          record["error"] = {{"kind", error_kind_name(e.kind())}, {"message", e.what()}};
          spdlog::error("{} {}: {}", flags->model, precision, e.what());
          status = 1;
        }
        records.push_back(record);
      }
      if (!flags->out.empty()) report::write_results_json(flags->out, records);
      write_output("-", nlohmann::json(records).dump(2) + "\n");
      return status;
    };
  });
}

}  // namespace qb::cli
