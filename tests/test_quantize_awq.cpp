// `quantbench quantize` on the tiny fixture models (CPU, seconds): scales folded into the previous op leave the
// float model's logits unchanged; the AWQ search's output error is no worse than RTN's on every searched
// module; the written checkpoint loads back with exactly the quantizer's weights and the quantization_config
// AutoAWQ writes; errors name the layer and the constraint.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "quantbench/core/error.h"
#include "quantbench/io/checkpoint.h"
#include "quantbench/io/model_resolver.h"
#include "quantbench/model/builder.h"
#include "quantbench/quality/text_source.h"
#include "quantbench/quant/awq.h"
#include "quantbench/quant/awq_calibration.h"
#include "quantbench/quant/awq_search.h"
#include "quantbench/quant/awq_writer.h"
#include "quantbench/quant/format.h"
#include "test_support.h"

namespace qb::quant {
namespace {

constexpr const char* kCalibrationText =
    "The tower is 324 metres tall, about the same height as an 81-storey building.\n"
    "\n"
    "   During its construction, the Eiffel Tower surpassed the Washington Monument.   \n"
    "It was the first structure in the world to surpass both the 200-metre and 300-metre mark in height.\n"
    "Due to the addition of a broadcasting aerial at the top of the tower in 1957, it is now taller.\n"
    "The tower has three levels for visitors, with restaurants on the first and second levels.\n"
    "The top level's upper platform is 276 m above the ground, the highest observation deck accessible to the public.\n"
    "Tickets can be purchased to ascend by stairs or lift to the first and second levels.\n"
    "The climb from ground level to the first level is over 300 steps, as is the climb to the second level.\n"
    "Although there is a staircase to the top level, it is usually accessible only by lift.\n";

std::string fixture(const std::string& name) { return test::fixtures_dir() + "/models/" + name; }

// The fixture tokenizers spend about one token per 1.5 characters: the text three times over gives ~20 blocks
// of 64 tokens (gpt2's fixture has 64 positions).
at::Tensor calibration_for(const std::string& dir, int64_t block_tokens = 64) {
  const std::string text = std::string(kCalibrationText) + kCalibrationText + kCalibrationText;
  return calibration_blocks(quality::tokenizer_for_model_dir(dir), text, 128, block_tokens);
}

std::unique_ptr<model::CausalLM> build(const std::string& dir, const std::string& precision,
                                       model::BuildReport* report = nullptr) {
  model::BuildOptions options;
  options.precision = precision;
  return model::build_causal_lm(io::resolve_model(dir), options, report);
}

at::Tensor logits_of(const model::CausalLM& lm, const at::Tensor& ids) {
  return lm.forward(ids, nullptr, model::StepPositions{}, false);
}

at::Tensor dequantized(const AwqUnpacked& u) {
  const int64_t g = u.int_weight.size(1) / u.scales.size(1);
  return (u.int_weight.to(at::kFloat) - u.zeros.to(at::kFloat).repeat_interleave(g, 1)) *
         u.scales.to(at::kFloat).repeat_interleave(g, 1);
}

AwqQuantizedModel quantize_fixture(const std::string& dir, AwqQuantizeOptions options) {
  const io::ResolvedModel resolved = io::resolve_model(dir);
  DenseModel dense = load_dense_model(resolved);
  LinearInputs inputs;
  if (options.method == "awq") inputs = capture_linear_inputs(resolved, dense.decoder_linears(), calibration_for(dir));
  return awq_quantize_model(std::move(dense), std::move(inputs), options);
}

template <typename Body>
void expect_error(const Body& body, ErrorKind kind, const std::vector<std::string>& needles) {
  try {
    body();
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    for (const auto& needle : needles) EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(QuantizeAwqCalibration, BlocksFollowAutoAwq) {
  const tok::Tokenizer tokenizer = quality::tokenizer_for_model_dir(fixture("llama"));
  const at::Tensor blocks = calibration_blocks(tokenizer, kCalibrationText, 128, 64);
  // The stripped, non-empty lines, each encoded with special tokens, concatenated; the remainder dropped.
  std::vector<int64_t> ids;
  for (const char* line : {"The tower is 324 metres tall, about the same height as an 81-storey building.",
                           "During its construction, the Eiffel Tower surpassed the Washington Monument."}) {
    const auto encoded = tokenizer.encode(line, true);
    ids.insert(ids.end(), encoded.begin(), encoded.end());
  }
  ASSERT_EQ(blocks.size(1), 64);
  ASSERT_GE(ids.size(), 64u);
  for (int64_t i = 0; i < 64; ++i) EXPECT_EQ(blocks[0][i].item<int64_t>(), ids[i]) << i;
  // Two samples only; lines longer than a block are skipped (the sixth line has 74 tokens).
  const at::Tensor two = calibration_blocks(tokenizer, kCalibrationText, 2, 64);
  EXPECT_TRUE(at::equal(two.flatten(), at::tensor(ids, at::kLong).narrow(0, 0, 64)));
  int64_t short_line_tokens = 0;  // every line of at most 73 tokens
  std::istringstream lines(kCalibrationText);
  for (std::string line; std::getline(lines, line);) {
    const size_t begin = line.find_first_not_of(' ');
    if (begin == std::string::npos) continue;
    const auto encoded = tokenizer.encode(line.substr(begin, line.find_last_not_of(' ') - begin + 1), true);
    if (!encoded.empty() && encoded.size() <= 73) short_line_tokens += static_cast<int64_t>(encoded.size());
  }
  EXPECT_EQ(calibration_blocks(tokenizer, kCalibrationText, 128, 73).size(0), short_line_tokens / 73);
  expect_error([&] { calibration_blocks(tokenizer, "short\n", 8, 512); }, ErrorKind::kInvalidInput,
               {"fewer than one block of 512 tokens"});
}

// Scale then fold, no rounding: every group of every layer gets random scales; logits are unchanged.
TEST(QuantizeAwq, FoldedScalesKeepTheFunction) {
  for (const char* name : {"llama", "gpt2", "opt", "qwen2", "phi", "mistral"}) {
    SCOPED_TRACE(name);
    const io::ResolvedModel resolved = io::resolve_model(fixture(name));
    DenseModel dense = load_dense_model(resolved);
    at::manual_seed(7);
    std::set<ScaleGroup::Prev> prev_kinds;
    for (int64_t layer = 0; layer < static_cast<int64_t>(dense.layout.layers.size()); ++layer) {
      for (const ScaleGroup& group : awq_scale_groups(dense, layer)) {
        const int64_t width = dense.weight(group.linears.front()).size(1);
        awq_apply_scales(dense, group, at::exp(at::rand({width}) * 1.4 - 0.7), nullptr);
        prev_kinds.insert(group.prev_kind);
      }
    }
    EXPECT_EQ(prev_kinds.size(), 2u);  // both fold targets (norm, previous linear's rows) exercised
    test::TempDir dir;
    write_dense_checkpoint(dense, dir.path());
    const at::Tensor ids = at::randint(0, 320, {2, 24}, at::kLong);
    const at::Tensor expected = logits_of(*build(fixture(name), "fp32"), ids);
    EXPECT_LT(test::relative_error(logits_of(*build(dir.path(), "fp32"), ids), expected), 1e-5);
  }
}

// The searched scales alone (no clip) also leave the function unchanged, and the search records them.
TEST(QuantizeAwq, SearchedScalesKeepTheFunction) {
  const io::ResolvedModel resolved = io::resolve_model(fixture("gpt2"));
  DenseModel dense = load_dense_model(resolved);
  LinearInputs inputs = capture_linear_inputs(resolved, dense.decoder_linears(), calibration_for(fixture("gpt2")));
  AwqQuantizeOptions options;
  options.group_size = 16;
  for (int64_t layer = 0; layer < static_cast<int64_t>(dense.layout.layers.size()); ++layer) {
    std::vector<std::pair<ScaleGroup, ScaleSearchRecord>> found;
    for (const ScaleGroup& group : awq_scale_groups(dense, layer)) {
      found.emplace_back(group, awq_search_scales(dense, group, inputs.at(group.linears.front()), options));
      EXPECT_LE(found.back().second.best_loss, found.back().second.rtn_loss) << group.name;
    }
    for (auto& [group, record] : found) awq_apply_scales(dense, group, record.scales, &inputs);
  }
  test::TempDir dir;
  write_dense_checkpoint(dense, dir.path());
  const at::Tensor ids = calibration_for(fixture("gpt2"));
  const at::Tensor expected = logits_of(*build(fixture("gpt2"), "fp32"), ids);
  EXPECT_LT(test::relative_error(logits_of(*build(dir.path(), "fp32"), ids), expected), 1e-5);
}

// On the calibration data, every searched module's output with the final AWQ weights (scaled, clipped, fp16
// RTN) is compared with RTN's. The search's own objective is never worse than RTN's (s = 1 is a candidate);
// the final weights differ from the searched ones by the fp16 rounding and the clip (the later fold of another
// group's scales into v/up rows scales whole rows, which RTN follows exactly), so a module may come out a
// hair worse where the search found almost nothing to gain: at most 1% worse per module, better in sum.
TEST(QuantizeAwq, SearchBeatsRtnOnEveryModule) {
  for (const char* name : {"llama", "gpt2", "opt"}) {
    SCOPED_TRACE(name);
    const io::ResolvedModel resolved = io::resolve_model(fixture(name));
    const DenseModel original = load_dense_model(resolved);
    const LinearInputs inputs =
        capture_linear_inputs(resolved, original.decoder_linears(), calibration_for(fixture(name)));
    AwqQuantizeOptions options;
    options.group_size = 16;
    const AwqQuantizedModel awq = awq_quantize_model(load_dense_model(resolved), inputs, options);
    options.method = "rtn";
    const AwqQuantizedModel rtn = awq_quantize_model(load_dense_model(resolved), {}, options);

    std::map<std::string, at::Tensor> searched;
    for (const auto& record : awq.searches) {
      EXPECT_LE(record.best_loss, record.rtn_loss) << record.group;
      searched[record.group] = record.scales;
    }
    int64_t compared = 0;
    double awq_total = 0, rtn_total = 0;
    for (int64_t layer = 0; layer < static_cast<int64_t>(original.layout.layers.size()); ++layer) {
      // The layer with every searched scale folded in, unrounded: the float function in AWQ's coordinates.
      DenseModel scaled = original;
      for (auto& [prefix, t] : scaled.tensors) t = t.clone();
      const auto groups = awq_scale_groups(original, layer);
      for (const auto& group : groups) awq_apply_scales(scaled, group, searched.at(group.name), nullptr);
      for (const auto& group : groups) {
        const at::Tensor x = inputs.at(group.linears.front());
        std::map<std::string, at::Tensor> awq_weights, rtn_weights;
        for (const auto& linear : group.linears) {
          awq_weights[linear] = dequantized(awq.quantized.at(linear));
          rtn_weights[linear] = dequantized(rtn.quantized.at(linear));
        }
        const at::Tensor reference = awq_group_forward(original, group, x);
        at::Tensor awq_out = awq_group_forward(scaled, group, x / searched.at(group.name), awq_weights);
        // A bare linear whose output rows absorbed a later group's 1/s (opt's fc1): back to the float units.
        int64_t offset = 0;
        for (const auto& linear : group.linears) {
          for (const auto& later : groups) {
            if (group.module != ScaleGroup::Module::kLinears || later.prev_kind != ScaleGroup::Prev::kLinearRows ||
                later.prev != linear) {
              continue;
            }
            const at::Tensor& s = searched.at(later.name);
            awq_out.narrow(-1, offset + later.prev_row_begin, s.numel()).mul_(s);
          }
          offset += original.weight(linear).size(0);
        }
        const at::Tensor rtn_out = awq_group_forward(original, group, x, rtn_weights);
        const double awq_error = (awq_out - reference).pow(2).mean().item<double>();
        const double rtn_error = (rtn_out - reference).pow(2).mean().item<double>();
        EXPECT_LE(awq_error, rtn_error * 1.01) << group.name;
        awq_total += awq_error;
        rtn_total += rtn_error;
        ++compared;
      }
    }
    EXPECT_LT(awq_total, rtn_total);
    EXPECT_GE(compared, 2 * static_cast<int64_t>(original.layout.layers.size()));
  }
}

// The written checkpoint: AutoAWQ's tensors and config; quantbench loads it back with exactly the quantizer's
// weights (the head and modules_to_not_convert dense, as transformers loads them), and computes the same
// logits as a float model made of those weights.
TEST(QuantizeAwq, WrittenCheckpointLoadsBackExactly) {
  AwqQuantizeOptions options;
  options.group_size = 16;
  options.modules_to_not_convert = {"layers.1.mlp.down_proj"};
  const AwqQuantizedModel q = quantize_fixture(fixture("llama"), options);
  ASSERT_EQ(q.not_converted, std::vector<std::string>{"model.layers.1.mlp.down_proj"});
  test::TempDir dir;
  const CheckpointWriteSummary summary = write_awq_checkpoint(q, dir.path());
  EXPECT_EQ(summary.copied, (std::vector<std::string>{"tokenizer.json", "tokenizer_config.json",
                                                      "generation_config.json"}));

  const nlohmann::json config = load_json_file(dir.file("config.json"));
  const nlohmann::json expected_qc = {{"quant_method", "awq"}, {"bits", 4}, {"group_size", 16},
                                      {"zero_point", true},    {"version", "gemm"},
                                      {"modules_to_not_convert", nlohmann::json::array({"layers.1.mlp.down_proj"})}};
  EXPECT_EQ(config["quantization_config"], expected_qc);
  EXPECT_EQ(config["torch_dtype"], "float16");
  EXPECT_EQ(config["hidden_size"], 32);
  EXPECT_EQ(awq_check_quantization_config(config["quantization_config"], "config.json"), 16);

  const io::Checkpoint ckpt = io::Checkpoint::open(dir.path());
  const WeightFormat& awq = find_format("awq");
  for (const auto& [prefix, unpacked] : q.quantized) {
    SCOPED_TRACE(prefix);
    EXPECT_FALSE(ckpt.has(prefix + ".weight"));
    EXPECT_EQ(ckpt.info(prefix + ".qweight").dtype, io::StDtype::kI32);
    EXPECT_EQ(ckpt.info(prefix + ".scales").dtype, io::StDtype::kF16);
    const auto linear = awq.load_serialized(ckpt, prefix, std::nullopt, FormatOptions());
    EXPECT_TRUE(at::equal(linear->dequantize(), dequantized(unpacked)));
  }
  EXPECT_EQ(ckpt.info("model.layers.1.mlp.down_proj.weight").dtype, io::StDtype::kF16);
  for (const char* norm : {"model.layers.0.input_layernorm.weight", "model.layers.1.post_attention_layernorm.weight",
                           "model.norm.weight", "lm_head.weight", "model.embed_tokens.weight"}) {
    EXPECT_TRUE(at::equal(ckpt.get(norm), q.model.tensors.at(norm).to(at::kHalf))) << norm;
  }

  // The float model the checkpoint stands for: fp16 dense tensors, dequantized linears.
  DenseModel reference = q.model;
  for (auto& [name, t] : reference.tensors) t = t.to(at::kHalf).to(at::kFloat);
  for (const auto& [prefix, unpacked] : q.quantized) reference.weight(prefix) = dequantized(unpacked);
  test::TempDir reference_dir;
  write_dense_checkpoint(reference, reference_dir.path());

  model::BuildReport report;
  const auto lm = build(dir.path(), "awq", &report);
  EXPECT_TRUE(report.prequantized);
  EXPECT_EQ(report.checkpoint_tensors_unused, 0);
  EXPECT_EQ(report.lm_head_format, "fp32");  // AutoAWQ keeps the head dense; it is not re-quantized on load
  const at::Tensor ids = calibration_for(fixture("llama"));
  EXPECT_LT(test::relative_error(logits_of(*lm, ids), logits_of(*build(reference_dir.path(), "fp32"), ids)), 1e-5);
  expect_error([&] { build(dir.path(), "fp32"); }, ErrorKind::kInvalidInput, {"--precision awq"});
}

TEST(QuantizeAwq, RtnIsPlainRoundToNearest) {
  AwqQuantizeOptions options;
  options.method = "rtn";
  options.group_size = 32;
  const AwqQuantizedModel q = quantize_fixture(fixture("gpt2"), options);
  const DenseModel original = load_dense_model(io::resolve_model(fixture("gpt2")));
  EXPECT_TRUE(q.searches.empty());
  EXPECT_EQ(q.quantized.size(), 8u);
  for (const auto& [prefix, unpacked] : q.quantized) {
    const AwqUnpacked expected = awq_quantize_rtn(original.weight(prefix), 32);
    EXPECT_TRUE(at::equal(unpacked.int_weight, expected.int_weight)) << prefix;
    EXPECT_TRUE(at::equal(unpacked.zeros, expected.zeros)) << prefix;
    EXPECT_TRUE(at::equal(unpacked.scales, expected.scales)) << prefix;
  }
  // gpt2's Conv1D layout: the quantized linears load back; the checkpoint has no dense c_attn weights.
  test::TempDir dir;
  write_awq_checkpoint(q, dir.path());
  const io::Checkpoint ckpt = io::Checkpoint::open(dir.path());
  EXPECT_FALSE(ckpt.has("h.0.attn.c_attn.weight") || ckpt.has("transformer.h.0.attn.c_attn.weight"));
  const auto lm = build(dir.path(), "awq");
  const at::Tensor ids = calibration_for(fixture("gpt2"));
  EXPECT_TRUE(logits_of(*lm, ids).isfinite().all().item<bool>());
  expect_error([&] { write_awq_checkpoint(q, dir.path()); }, ErrorKind::kInvalidInput, {"--overwrite"});
  write_awq_checkpoint(q, dir.path(), /*overwrite=*/true);
}

TEST(QuantizeAwq, ErrorsNameTheLayerAndTheConstraint) {
  const DenseModel llama = load_dense_model(io::resolve_model(fixture("llama")));
  AwqQuantizeOptions options;
  options.group_size = 128;
  expect_error([&] { awq_check_fits(llama, options); }, ErrorKind::kInvalidInput,
               {"model.layers.0.self_attn.q_proj", "in_features 32 is not a multiple of the group size 128",
                "--modules-to-not-convert"});
  // Excluding what does not fit makes it fit: only down_proj (64 inputs) is quantized at 64.
  options.group_size = 64;
  options.modules_to_not_convert = {"self_attn", "gate_proj", "up_proj"};
  EXPECT_NO_THROW(awq_check_fits(llama, options));
  DenseModel odd = llama;
  odd.weight("model.layers.1.mlp.down_proj") = at::zeros({12, 64});
  expect_error([&] { awq_check_fits(odd, options); }, ErrorKind::kInvalidInput,
               {"model.layers.1.mlp.down_proj", "out_features 12 is not a multiple of 8"});
  options.modules_to_not_convert = {"layers"};
  expect_error([&] { awq_check_fits(llama, options); }, ErrorKind::kInvalidInput, {"excludes every decoder linear"});

  const DenseModel post_norm = load_dense_model(io::resolve_model(fixture("opt-350m-style")));
  expect_error([&] { awq_scale_groups(post_norm, 0); }, ErrorKind::kUnsupported, {"post-norm", "--method rtn"});
  test::TempDir quantized;
  for (const char* file : {"model.safetensors", "tokenizer.json"}) {
    std::filesystem::copy_file(fixture("llama") + "/" + file, quantized.file(file));
  }
  nlohmann::json config = load_json_file(fixture("llama") + "/config.json");
  config["quantization_config"] = awq_quantization_config(AwqQuantizeOptions());
  std::ofstream(quantized.file("config.json")) << config.dump();
  expect_error([&] { load_dense_model(io::resolve_model(quantized.path())); }, ErrorKind::kUnsupported,
               {"already quantized"});
}

}  // namespace
}  // namespace qb::quant
