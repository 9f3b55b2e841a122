// `quantbench quantize`: a dense checkpoint in, an AutoAWQ-layout 4-bit checkpoint out, by the AWQ search
// (calibrated on a text file) or by plain round-to-nearest. Runs in float32 on the CPU. Prints one JSON record
// (schema quantbench.quantize/1) with what was searched and written.
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>

#include "commands.h"
#include "quantbench/core/error.h"
#include "quantbench/io/model_resolver.h"
#include "quantbench/quality/text_source.h"
#include "quantbench/quant/awq_calibration.h"
#include "quantbench/quant/awq_search.h"
#include "quantbench/quant/awq_writer.h"

namespace qb::cli {
namespace {

struct QuantizeFlags {
  std::string model, method = "awq", calib, out, report;
  int64_t group_size = 128, calib_samples = 128, calib_seqlen = 512, calib_batch = 4;
  std::vector<std::string> modules_to_not_convert;
  bool no_clip = false, no_duo_scaling = false, no_rtn_candidate = false, overwrite = false;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int run_quantize(const QuantizeFlags& flags) {
  const auto start = std::chrono::steady_clock::now();
  quant::AwqQuantizeOptions options;
  options.method = flags.method;
  options.group_size = flags.group_size;
  options.modules_to_not_convert = flags.modules_to_not_convert;
  options.apply_clip = !flags.no_clip;
  options.duo_scaling = !flags.no_duo_scaling;
  options.identity_candidate = !flags.no_rtn_candidate;
  QB_CHECK(options.method != "awq" || !flags.calib.empty(), kInvalidInput,
           "--method awq needs --calib FILE (calibration text, e.g. wikitext-2/valid.txt)");

  const io::ResolvedModel resolved = io::resolve_model(flags.model);
  quant::DenseModel dense = quant::load_dense_model(resolved);
  quant::awq_check_fits(dense, options);  // before the calibration pass, which is the slow part

  nlohmann::json calibration = nullptr;
  quant::LinearInputs inputs;
  const auto calib_start = std::chrono::steady_clock::now();
  if (options.method == "awq") {
    const tok::Tokenizer tokenizer = quality::tokenizer_for_model_dir(resolved.dir);
    const at::Tensor blocks = quant::calibration_blocks(tokenizer, quality::read_text_file(flags.calib),
                                                        flags.calib_samples, flags.calib_seqlen);
    spdlog::info("calibration: {} blocks of {} tokens from {}", blocks.size(0), blocks.size(1), flags.calib);
    inputs = quant::capture_linear_inputs(resolved, dense.decoder_linears(), blocks, flags.calib_batch);
    calibration = {{"file", flags.calib},           {"samples", flags.calib_samples},
                   {"blocks", blocks.size(0)},      {"block_tokens", blocks.size(1)},
                   {"tokens", blocks.numel()},      {"seconds", seconds_since(calib_start)}};
  }
  const auto search_start = std::chrono::steady_clock::now();
  const quant::AwqQuantizedModel quantized = quant::awq_quantize_model(std::move(dense), std::move(inputs), options);
  const double search_seconds = seconds_since(search_start);
  const quant::CheckpointWriteSummary written = quant::write_awq_checkpoint(quantized, flags.out, flags.overwrite);

  nlohmann::json searches = nlohmann::json::array();
  for (const auto& s : quantized.searches) {
    searches.push_back({{"group", s.group},
                        {"ratio", s.ratio < 0 ? nlohmann::json(nullptr) : nlohmann::json(s.ratio)},
                        {"identity", s.ratio < 0},
                        {"loss", s.best_loss},
                        {"rtn_loss", s.rtn_loss}});
  }
  const nlohmann::json record = {
      {"schema", "quantbench.quantize/1"},
      {"model", flags.model},
      {"method", options.method},
      {"quantization_config", quant::awq_quantization_config(options)},
      {"search", {{"duo_scaling", options.duo_scaling}, {"clip", options.apply_clip},
                  {"rtn_candidate", options.identity_candidate}, {"groups", searches}}},
      {"calibration", calibration},
      {"quantized_linears", quantized.quantized.size()},
      {"not_converted", quantized.not_converted},
      {"out", {{"dir", written.dir}, {"tensors", written.tensors}, {"file_bytes", written.file_bytes},
               {"copied", written.copied}}},
      {"seconds", {{"search", search_seconds}, {"total", seconds_since(start)}}}};
  spdlog::info("{}: {} linears quantized ({}), {} kept dense, {:.1f} s", written.dir, quantized.quantized.size(),
               options.method, quantized.not_converted.size(), seconds_since(start));
  if (!flags.report.empty()) write_output(flags.report, record.dump(2) + "\n");
  write_output("-", record.dump(2) + "\n");
  return 0;
}

}  // namespace

void add_quantize_command(CLI::App& app, Action& action) {
  auto flags = std::make_shared<QuantizeFlags>();
  CLI::App* cmd = app.add_subcommand("quantize", "write a 4-bit AutoAWQ-layout checkpoint (AWQ search or RTN)");
  cmd->add_option("-m,--model", flags->model, "dense model directory or hub id")->required();
  cmd->add_option("--method", flags->method, "awq | rtn")->check(CLI::IsMember({"awq", "rtn"}))->capture_default_str();
  cmd->add_option("--calib", flags->calib, "calibration text (one sample per line), needed by awq");
  cmd->add_option("-o,--out", flags->out, "output directory")->required();
  cmd->add_option("-g,--group-size", flags->group_size, "inputs per quantization group")->capture_default_str();
  cmd->add_option("--modules-to-not-convert", flags->modules_to_not_convert,
                  "keep linears whose name contains one of these dense (comma-separated)")
      ->delimiter(',');
  cmd->add_option("--calib-samples", flags->calib_samples, "calibration lines to use")->capture_default_str();
  cmd->add_option("--calib-seqlen", flags->calib_seqlen, "tokens per calibration block")->capture_default_str();
  cmd->add_option("--calib-batch", flags->calib_batch, "blocks per forward pass of the calibration run")
      ->capture_default_str();
  cmd->add_flag("--no-clip", flags->no_clip, "skip the clip search");
  cmd->add_flag("--no-duo-scaling", flags->no_duo_scaling, "s = mean|x|^ratio alone (llm-awq), not AutoAWQ's default");
  cmd->add_flag("--no-rtn-candidate", flags->no_rtn_candidate, "score only AutoAWQ's 20 ratios, not s = 1 as well");
  cmd->add_flag("--overwrite", flags->overwrite, "replace an earlier model.safetensors in --out");
  cmd->add_option("--report", flags->report, "also write the JSON record here");
  cmd->callback([&action, flags] { action = [flags]() -> int { return run_quantize(*flags); }; });
}

}  // namespace qb::cli
