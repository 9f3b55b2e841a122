// Activation-aware weight quantization (AWQ, Lin et al. 2023) as AutoAWQ runs it (awq/quantize/quantizer.py,
// awq/quantize/scale.py), and the round-to-nearest baseline, on a dense checkpoint held in memory.
//
// Per decoder layer, for each group of linears that share one input x (q/k/v after the attention norm,
// gate/up after the MLP norm, o_proj after v_proj where shapes allow, down_proj after up_proj):
//   x_mean[c] = mean over calibration tokens of |x[:, c]|
//   w_mean[c] = mean over the group's rows of |W[r, c]| / (max |W| of c's quantization group in row r + 1e-6)
//   for ratio = i / 20, i = 0..19 ("duo" scaling, AutoAWQ's default):
//       s = clamp(x_mean^ratio / (w_mean^(1 - ratio) + 1e-4), min 1e-4);  s /= sqrt(max(s) * min(s))
//       loss = mean (M(x; Q(W diag(s)) diag(s)^-1) - M(x; W))^2
//   where M is the module the group feeds (the attention block for q/k/v, the MLP block for gate/up, the linear
//   itself otherwise) and Q is RTN at the group size. The s with the least loss is kept (s = 1, plain RTN, is a
//   candidate too: see awq_search.cpp). Then W <- W diag(s) and 1/s is folded into the op before the group
//   (the norm's weight and bias, or the previous linear's output rows and bias): the float model computes the
//   same function. Then, for every linear but q/k (AutoAWQ avoids clipping what feeds q k^T), a clip search:
//   per (output row, input group), max |w| shrunk by 1 - i/20, i = 0..9, keeping the bound whose clamped RTN
//   gives the least squared error of that group's partial output on <= 512 sampled calibration rows of x / s.
//   Finally every linear is RTN-quantized in fp16 exactly as the "awq" format quantizes (awq.h).
//
// Calibration inputs come from one float32 pass of the original model (awq_calibration.h). AutoAWQ does the
// same: it computes layer i + 1's inputs with layer i before scaling or quantizing it, so every layer sees
// inputs propagated through the unquantized model.
#pragma once

#include <ATen/Tensor.h>
#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "quantbench/io/model_config.h"
#include "quantbench/io/model_resolver.h"
#include "quantbench/model/arch_layout.h"
#include "quantbench/quant/awq_pack.h"

namespace qb::quant {

// A dense checkpoint as the quantizer edits it: every tensor by its checkpoint name, floating ones in float32;
// the weights of the layout's linears in nn.Linear orientation [out, in] (gpt2's Conv1D weights are transposed
// on load; `transposed` names them so that a writer can turn them back).
struct DenseModel {
  std::string dir;  // the source checkpoint (its tokenizer files travel with what is written)
  nlohmann::json config_json;
  ModelConfig config;
  model::ArchLayout layout;
  std::map<std::string, at::Tensor> tensors;
  std::set<std::string> transposed;

  at::Tensor& weight(const std::string& prefix);  // prefix + ".weight"; kNotFound naming it when absent
  const at::Tensor& weight(const std::string& prefix) const;
  const at::Tensor* bias(const std::string& prefix) const;  // nullptr when the module has none
  at::Tensor* bias(const std::string& prefix);
  // The linears of decoder layer `layer` in forward order (q, k, v, o, gate, up, down), and of all layers.
  std::vector<std::string> layer_linears(int64_t layer) const;
  std::vector<std::string> decoder_linears() const;
};

// Reads a local dense checkpoint (sharded or not); kUnsupported when it is already quantized or synthetic.
DenseModel load_dense_model(const io::ResolvedModel& model);

// Calibration inputs of decoder linears by checkpoint prefix: float32 [blocks, tokens, in_features]. Linears
// that share an input share one tensor.
using LinearInputs = std::map<std::string, at::Tensor>;

struct ScaleGroup {
  enum class Prev { kNorm, kLinearRows };
  enum class Module { kAttention, kMlp, kLinears };
  int64_t layer = 0;
  std::string name;                  // for logs and reports, e.g. "model.layers.0.self_attn.q_proj+k_proj+v_proj"
  Prev prev_kind = Prev::kNorm;
  std::string prev;                  // the norm, or the linear whose output rows feed the group
  int64_t prev_row_begin = 0;        // kLinearRows: rows [prev_row_begin, prev_row_begin + in) absorb 1/s
  std::vector<std::string> linears;  // one shared input; each one's columns are multiplied by s
  Module module = Module::kLinears;  // whose output the search compares
};

// The scale groups of decoder layer `layer`, as AutoAWQ's get_layers_for_scaling lists them for llama/opt (and
// the same pattern for gpt2/phi, which AutoAWQ does not cover). Omitted where 1/s has nowhere exact to go:
// o_proj when v_proj's output is not o_proj's input (grouped-query attention), and the second MLP linear when
// a GELU sits before it (AutoAWQ would insert a ScaledActivation, a tensor the GEMM checkpoint layout for these
// model types does not carry). kUnsupported for post-norm models (opt-350m): their norms follow the blocks.
std::vector<ScaleGroup> awq_scale_groups(const DenseModel& model, int64_t layer);
// Whether the clip search may touch `prefix`: not query/key projections, nor a fused qkv (AutoAWQ's
// avoid_clipping list: "q_", "k_", "query", "key", "Wqkv").
bool awq_clip_allowed(const DenseModel& model, int64_t layer, const std::string& prefix);

// The output of the group's module for x [blocks, tokens, in] in float32, computing with `model`'s weights
// except the linears named in `weights` (prefix -> [out, in] float32), which use those.
at::Tensor awq_group_forward(const DenseModel& model, const ScaleGroup& group, const at::Tensor& x,
                             const std::map<std::string, at::Tensor>& weights = {});

struct AwqQuantizeOptions {
  std::string method = "awq";  // "awq": scale search, clip search, RTN | "rtn": RTN only
  int64_t group_size = 128;
  // A linear whose checkpoint prefix contains one of these stays dense (AutoAWQ / transformers match the same
  // way); written to quantization_config.modules_to_not_convert.
  std::vector<std::string> modules_to_not_convert;
  int64_t scale_grid = 20;
  bool duo_scaling = true;
  bool identity_candidate = true;  // also try s = 1 (see awq_search.cpp)
  bool apply_clip = true;
  int64_t clip_grid = 20;
  double clip_max_shrink = 0.5;
  int64_t clip_sample_tokens = 512;
};

// One scale search: the best ratio (-1 when s = 1 won), its loss and plain RTN's on the group's module.
struct ScaleSearchRecord {
  std::string group;
  double ratio = -1;
  double rtn_loss = 0;
  double best_loss = 0;
  at::Tensor scales;  // float32 [in]
};

struct AwqQuantizedModel {
  // The dense tensors to write: norms and skipped linears with folded scales; the quantized linears' weights
  // here are their scaled, clipped float values before rounding.
  DenseModel model;
  std::map<std::string, AwqUnpacked> quantized;  // prefix -> RTN codes, zeros, fp16 scales [out, in/g]
  std::vector<std::string> not_converted;        // decoder linears kept dense
  std::vector<ScaleSearchRecord> searches;
  AwqQuantizeOptions options;
};

// Whether `prefix` matches modules_to_not_convert.
bool awq_excluded(const std::string& prefix, const AwqQuantizeOptions& options);
// kInvalidInput naming the first quantized linear whose shape AutoAWQ's GEMM layout cannot hold
// (in_features % group_size, out_features % 8) and what would make it fit; also bad options.
void awq_check_fits(const DenseModel& model, const AwqQuantizeOptions& options);

// The steps, public for tests: the best scales of one group on its calibration input (x), and folding them in
// (weights, prev op, and the group's entries of `inputs`, which become x / s).
ScaleSearchRecord awq_search_scales(const DenseModel& model, const ScaleGroup& group, const at::Tensor& x,
                                    const AwqQuantizeOptions& options);
void awq_apply_scales(DenseModel& model, const ScaleGroup& group, const at::Tensor& scales, LinearInputs* inputs);
// The clip bound per (row, group), float32 [out, in/g], for weight [out, in] and its input x [..., in].
at::Tensor awq_search_clip(const at::Tensor& weight, const at::Tensor& x, const AwqQuantizeOptions& options);
// RTN then dequantize in float32 (AutoAWQ's pseudo_quantize_tensor), for the searches.
at::Tensor awq_fake_quantize(const at::Tensor& weight, int64_t group_size);

// The whole method. `inputs` (awq only) are consumed: scaled in place as the search goes.
AwqQuantizedModel awq_quantize_model(DenseModel model, LinearInputs inputs, const AwqQuantizeOptions& options);

}  // namespace qb::quant
