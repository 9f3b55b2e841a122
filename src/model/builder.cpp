#include "quantbench/model/builder.h"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <set>

#include "quantbench/core/dtype_label.h"
#include "quantbench/core/error.h"
#include "quantbench/model/arch_layout.h"
#include "quantbench/model/weight_source.h"
#include "quantbench/quant/dense.h"

namespace qb::model {
namespace {

// Reads parameters through a WeightSource and records which checkpoint tensors were consumed.
class ParameterLoader {
 public:
  // `unconverted`: where the checkpoint is pre-quantized, the format of the linears it holds no serialized
  // tensors for (dense in the compute dtype), else nullptr.
  ParameterLoader(const WeightSource& source, const BuildOptions& options, const ArchLayout& layout,
                  const quant::WeightFormat* unconverted)
      : source_(source), options_(options), layout_(layout), format_(quant::find_format(options.precision)),
        unconverted_(unconverted) {}

  at::Tensor param(const std::string& name, at::IntArrayRef shape, TensorRole role) {
    used_.insert(name);
    return source_.get(name, shape, role).to(options_.device, options_.compute_dtype).contiguous();
  }

  Norm norm(const std::string& prefix, NormKind kind, int64_t width, double eps) {
    at::Tensor weight = param(prefix + ".weight", {width}, TensorRole::kNormWeight);
    std::optional<at::Tensor> bias;
    if (kind == NormKind::kLayerNorm) bias = param(prefix + ".bias", {width}, TensorRole::kNormBias);
    return Norm(kind, weight, bias, eps);
  }

  // One linear made of `prefixes` (row blocks of `outs` outputs each), fused.
  quant::LinearPtr linear(const std::vector<std::string>& prefixes, const std::vector<int64_t>& outs, int64_t in,
                          bool bias) {
    std::vector<quant::LinearPtr> parts;
    for (size_t i = 0; i < prefixes.size(); ++i) parts.push_back(linear_part(prefixes[i], outs[i], in, bias, format_));
    return wrapped(prefixes, format_.fuse(std::move(parts)));
  }

  quant::LinearPtr linear_with(const quant::WeightFormat& format, const std::string& prefix, int64_t out, int64_t in,
                               bool bias) {
    return wrapped({prefix}, linear_part(prefix, out, in, bias, format));
  }

  int64_t unused_checkpoint_tensors() const {
    const io::Checkpoint* checkpoint = source_.checkpoint();
    if (checkpoint == nullptr) return 0;
    int64_t unused = 0;
    std::vector<std::string> examples;
    for (const auto& name : checkpoint->names()) {
      if (consumed(name)) continue;
      ++unused;
      if (examples.size() < 5) examples.push_back(name);
    }
    if (unused > 0) {
      spdlog::warn("{}: {} tensors were not used (e.g. {})", checkpoint->dir(), unused, fmt::join(examples, ", "));
    }
    return unused;
  }
  bool prequantized() const { return prequantized_; }
  const quant::WeightFormat& format() const { return format_; }

  // The BuildOptions::wrap_linear hook applied (calibration, profiling), or the linear as it is.
  quant::LinearPtr wrapped(const std::vector<std::string>& prefixes, quant::LinearPtr linear) const {
    return options_.wrap_linear ? options_.wrap_linear(prefixes, std::move(linear)) : std::move(linear);
  }

 private:
  quant::LinearPtr linear_part(const std::string& prefix, int64_t out, int64_t in, bool bias,
                               const quant::WeightFormat& format) {
    const io::Checkpoint* checkpoint = source_.checkpoint();
    std::optional<at::Tensor> bias_tensor;
    if (bias) bias_tensor = param(prefix + ".bias", {out}, TensorRole::kBias);
    if (checkpoint != nullptr && format.has_serialized(*checkpoint, prefix)) {
      prequantized_ = true;
      serialized_prefixes_.insert(prefix + ".");
      return format.load_serialized(*checkpoint, prefix, bias_tensor, options_.format);
    }
    // A pre-quantized checkpoint keeps some linears dense (AutoAWQ's modules_to_not_convert, the LM head):
    // they load as the checkpoint holds them, as transformers does, never re-quantized here.
    const quant::WeightFormat& target = unconverted_ != nullptr ? *unconverted_ : format;
    at::Tensor weight;
    if (layout_.conv1d_weights) {
      weight = param(prefix + ".weight", {in, out}, TensorRole::kLinearWeight).t().contiguous();
    } else {
      weight = param(prefix + ".weight", {out, in}, TensorRole::kLinearWeight);
    }
    return target.quantize(weight, bias_tensor, options_.format);
  }


  bool consumed(const std::string& name) const {
    if (used_.count(name) != 0) return true;
    for (const auto& suffix : layout_.ignored_suffixes) {
      if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        return true;
      }
    }
    for (const auto& prefix : serialized_prefixes_) {
      if (name.rfind(prefix, 0) == 0) return true;
    }
    return false;
  }

  const WeightSource& source_;
  const BuildOptions& options_;
  const ArchLayout& layout_;
  const quant::WeightFormat& format_;
  const quant::WeightFormat* unconverted_;
  std::set<std::string> used_;
  std::set<std::string> serialized_prefixes_;
  bool prequantized_ = false;
};

std::unique_ptr<WeightSource> open_source(const io::ResolvedModel& model, const ModelConfig& config,
                                          const BuildOptions& options) {
  if (model.source == io::ModelSource::kSynthetic) {
    return make_synthetic_source(options.synthetic_seed, options.device, stored_dtype(config));
  }
  return make_checkpoint_source(io::Checkpoint::open(model.dir));
}

}  // namespace

at::ScalarType default_compute_dtype(const std::string& precision, const ModelConfig& config, c10::Device device) {
  if (precision == "fp32") return at::kFloat;
  if (precision == "fp16") return at::kHalf;
  if (precision == "bf16") return at::kBFloat16;
  if (device.is_cpu()) return at::kFloat;
  // bf16 checkpoints compute in bf16, others in fp16.
  return stored_dtype(config) == at::kBFloat16 ? at::kBFloat16 : at::kHalf;
}

std::string checkpoint_precision(const ModelConfig& config) {
  const nlohmann::json& q = config.quantization_config;
  if (!q.is_object()) return "";
  const std::string method = q.value("quant_method", "");
  if (method == "awq") return "awq";
  if (method == "bitsandbytes") {
    if (q.value("load_in_8bit", false)) return "llm.int8";
    if (q.value("load_in_4bit", false)) return q.value("bnb_4bit_quant_type", "fp4");
  }
  fail(ErrorKind::kUnsupported, "quantization_config with quant_method '{}' is not supported (awq, bitsandbytes)",
       method);
}

std::unique_ptr<CausalLM> build_causal_lm(const io::ResolvedModel& model, const BuildOptions& options,
                                          BuildReport* report) {
  const auto start = std::chrono::steady_clock::now();
  const ModelConfig config = parse_model_config(model.config, model.config_path);
  const std::string stored = checkpoint_precision(config);
  QB_CHECK(stored.empty() || stored == options.precision, kInvalidInput,
           "{}: the checkpoint is quantized as {}; run it with --precision {}", model.config_path, stored, stored);
  const auto source = open_source(model, config, options);
  const ArchLayout layout = make_arch_layout(config, [&](const std::string& name) { return source->has(name) && !source->is_synthetic(); });
  const quant::WeightFormat& dense_head_format = quant::find_format(dtype_label(options.compute_dtype));
  ParameterLoader load(*source, options, layout, stored.empty() ? nullptr : &dense_head_format);

  CausalLMParts parts;
  parts.config = config;
  parts.dtype = options.compute_dtype;
  parts.device = options.device;
  const int64_t embed_dim = config.word_embed_proj_dim > 0 ? config.word_embed_proj_dim : config.hidden_size;
  const int64_t h = config.hidden_size;
  parts.token_embedding = load.param(layout.token_embedding + ".weight", {config.vocab_size, embed_dim}, TensorRole::kEmbedding);
  if (!layout.position_embedding.empty()) {
    parts.position_embedding = load.param(layout.position_embedding + ".weight",
                                          {config.max_positions + config.position_offset, h}, TensorRole::kEmbedding);
  }
  if (!layout.project_in.empty()) {
    parts.project_in = load.linear({layout.project_in}, {h}, embed_dim, false);
    parts.project_out = load.linear({layout.project_out}, {embed_dim}, h, false);
  }
  for (const LayerLayout& names : layout.layers) {
    DecoderLayer layer;
    layer.attn_norm = load.norm(names.attn_norm, config.norm, h, config.norm_eps);
    std::vector<int64_t> qkv_outs = {config.q_size(), config.kv_size(), config.kv_size()};
    if (names.qkv.size() == 1) qkv_outs = {config.q_size() + 2 * config.kv_size()};
    auto qkv = load.linear(names.qkv, qkv_outs, h, config.qkv_bias);
    auto out = load.linear({names.attn_out}, {h}, config.q_size(), config.o_bias);
    layer.attention = std::make_unique<Attention>(config, std::move(qkv), std::move(out));
    if (!names.mlp_norm.empty()) layer.mlp_norm = load.norm(names.mlp_norm, config.norm, h, config.norm_eps);
    std::vector<int64_t> in_outs(names.mlp_in.size(), config.intermediate_size);
    auto mlp_in = load.linear(names.mlp_in, in_outs, h, config.mlp_bias);
    auto mlp_out = load.linear({names.mlp_out}, {h}, config.intermediate_size, config.mlp_bias);
    layer.mlp = std::make_unique<Mlp>(config, std::move(mlp_in), std::move(mlp_out));
    parts.layers.push_back(std::move(layer));
  }
  if (!layout.final_norm.empty()) parts.final_norm = load.norm(layout.final_norm, config.norm, h, config.norm_eps);

  // The head takes the run's format unless asked not to, or unless its shape does not fit the format (a
  // format's quantize rejects it as invalid input); then it stays dense, and the result's lm_head_format says so.
  auto build_head = [&](const quant::WeightFormat& format) -> quant::LinearPtr {
    if (config.tie_word_embeddings) {
      if (format.name() == dense_head_format.name()) {
        parts.lm_head_shares_embedding = true;
        return load.wrapped({layout.lm_head},
                            std::make_unique<quant::DenseLinear>(parts.token_embedding, std::nullopt,
                                                                 dense_head_format.name()));
      }
      return load.wrapped({layout.lm_head}, format.quantize(parts.token_embedding, std::nullopt, options.format));
    }
    return load.linear_with(format, layout.lm_head, config.vocab_size, embed_dim, config.lm_head_bias);
  };
  // A pre-quantized checkpoint's tied head is its (dense) embedding table, as in transformers.
  if (options.quantize_lm_head && !(config.tie_word_embeddings && !stored.empty())) {
    try {
      parts.lm_head = build_head(load.format());
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kInvalidInput) throw;
      spdlog::warn("lm_head stays {}: {}", dense_head_format.name(), e.what());
    }
  }
  if (parts.lm_head == nullptr) parts.lm_head = build_head(dense_head_format);

  auto lm = std::make_unique<CausalLM>(std::move(parts));
  if (report != nullptr) {
    report->weights = source->is_synthetic() ? "synthetic" : "checkpoint";
    report->weights_source = source->description();
    report->prequantized = load.prequantized();
    report->lm_head_format = lm->lm_head_format();
    report->checkpoint_tensors_unused = load.unused_checkpoint_tensors();
    report->load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return lm;
}

}  // namespace qb::model
