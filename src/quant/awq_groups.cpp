// Which linears share an input and where their scales fold (AutoAWQ's get_layers_for_scaling, per
// architecture), and the module each group's search compares outputs of, built from the shared blocks.
#include <ATen/ATen.h>

#include "quantbench/core/error.h"
#include "quantbench/model/blocks.h"
#include "quantbench/quant/awq_search.h"
#include "quantbench/quant/dense.h"

namespace qb::quant {
namespace {

std::string parent_of(const std::string& prefix) {
  const size_t dot = prefix.rfind('.');
  return dot == std::string::npos ? std::string() : prefix.substr(0, dot);
}

// "model.layers.0.self_attn.{q_proj,k_proj,v_proj}" (or the names joined when their parents differ).
std::string group_name(const std::vector<std::string>& linears) {
  if (linears.size() == 1) return linears.front();
  const std::string parent = parent_of(linears.front());
  std::string joined;
  bool same_parent = !parent.empty();
  for (const auto& name : linears) same_parent &= parent_of(name) == parent;
  for (const auto& name : linears) {
    joined += (joined.empty() ? "" : ",") + (same_parent ? name.substr(parent.size() + 1) : name);
  }
  return same_parent ? parent + ".{" + joined + "}" : joined;
}

ScaleGroup make_group(int64_t layer, ScaleGroup::Prev kind, std::string prev, int64_t row_begin,
                      std::vector<std::string> linears, ScaleGroup::Module module) {
  ScaleGroup g;
  g.layer = layer;
  g.name = group_name(linears);
  g.prev_kind = kind;
  g.prev = std::move(prev);
  g.prev_row_begin = row_begin;
  g.linears = std::move(linears);
  g.module = module;
  return g;
}

// Several checkpoint linears as one fused fp32 DenseLinear (rows in order; zero bias where a part has none).
LinearPtr fused_dense(const DenseModel& m, const std::vector<std::string>& prefixes,
                      const std::map<std::string, at::Tensor>& weights) {
  std::vector<at::Tensor> ws, bs;
  bool any_bias = false;
  for (const auto& p : prefixes) any_bias |= m.bias(p) != nullptr;
  for (const auto& p : prefixes) {
    auto it = weights.find(p);
    const at::Tensor& w = it != weights.end() ? it->second : m.weight(p);
    ws.push_back(w);
    if (any_bias) bs.push_back(m.bias(p) != nullptr ? *m.bias(p) : at::zeros({w.size(0)}, w.options()));
  }
  std::optional<at::Tensor> bias;
  if (any_bias) bias = at::cat(bs, 0);
  return std::make_unique<DenseLinear>(at::cat(ws, 0).contiguous(), bias, "fp32");
}

}  // namespace

std::vector<ScaleGroup> awq_scale_groups(const DenseModel& m, int64_t layer) {
  const ModelConfig& c = m.config;
  QB_CHECK(!c.post_norm, kUnsupported,
           "awq: {} normalises after each block (post-norm); the scale search needs a norm before each block "
           "(use --method rtn)",
           m.dir);
  QB_CHECK(layer >= 0 && layer < static_cast<int64_t>(m.layout.layers.size()), kInternal, "no decoder layer {}",
           layer);
  const model::LayerLayout& l = m.layout.layers[layer];
  using Prev = ScaleGroup::Prev;
  using Module = ScaleGroup::Module;
  std::vector<ScaleGroup> groups;

  // Attention input: q/k/v share the attention norm's output (phi: the MLP input shares it too).
  if (c.parallel_residual) {
    std::vector<std::string> linears = l.qkv;
    linears.insert(linears.end(), l.mlp_in.begin(), l.mlp_in.end());
    groups.push_back(make_group(layer, Prev::kNorm, l.attn_norm, 0, linears, Module::kLinears));
  } else {
    groups.push_back(make_group(layer, Prev::kNorm, l.attn_norm, 0, l.qkv, Module::kAttention));
  }

  // Attention output: o_proj's input is the attention-weighted sum of v rows, so v's output rows absorb 1/s
  // exactly when each o_proj input channel is one v channel (no grouped-query sharing).
  const std::string v_linear = l.qkv.back();
  const int64_t v_begin = l.qkv.size() == 1 ? c.q_size() + c.kv_size() : 0;
  const int64_t v_rows = l.qkv.size() == 1 ? c.kv_size() : m.weight(v_linear).size(0);
  if (v_rows == m.weight(l.attn_out).size(1)) {
    groups.push_back(make_group(layer, Prev::kLinearRows, v_linear, v_begin, {l.attn_out}, Module::kLinears));
  }

  // MLP input (AutoAWQ compares the MLP block's output for llama, fc1's own output for opt).
  if (!c.parallel_residual) {
    groups.push_back(make_group(layer, Prev::kNorm, l.mlp_norm, 0, l.mlp_in,
                                c.arch == Arch::kOpt ? Module::kLinears : Module::kMlp));
  }

  // MLP output: act(gate) * up / s = (act(gate) * up) / s, and relu(x / s) = relu(x) / s for s > 0; a GELU
  // has no such identity.
  if (c.gated_mlp) {
    const int64_t up_begin = l.mlp_in.size() == 1 ? c.intermediate_size : 0;
    groups.push_back(make_group(layer, Prev::kLinearRows, l.mlp_in.back(), up_begin, {l.mlp_out}, Module::kLinears));
  } else if (c.activation == Activation::kRelu) {
    groups.push_back(make_group(layer, Prev::kLinearRows, l.mlp_in.front(), 0, {l.mlp_out}, Module::kLinears));
  }
  return groups;
}

bool awq_clip_allowed(const DenseModel& m, int64_t layer, const std::string& prefix) {
  const model::LayerLayout& l = m.layout.layers.at(layer);
  if (l.qkv.size() == 1) return prefix != l.qkv.front();  // fused qkv holds q and k
  return prefix != l.qkv[0] && prefix != l.qkv[1];
}

at::Tensor awq_group_forward(const DenseModel& m, const ScaleGroup& group, const at::Tensor& x,
                             const std::map<std::string, at::Tensor>& weights) {
  const model::LayerLayout& l = m.layout.layers.at(group.layer);
  switch (group.module) {
    case ScaleGroup::Module::kAttention: {
      const model::Attention attention(m.config, fused_dense(m, l.qkv, weights), fused_dense(m, {l.attn_out}, weights));
      model::RotaryTable rope;
      if (m.config.use_rope) rope = model::RotaryTable(m.config, x.size(1), x.device());
      return attention.forward(x, nullptr, 0, model::StepPositions{}, rope);
    }
    case ScaleGroup::Module::kMlp: {
      const model::Mlp mlp(m.config, fused_dense(m, l.mlp_in, weights), fused_dense(m, {l.mlp_out}, weights));
      return mlp.forward(x);
    }
    case ScaleGroup::Module::kLinears:
      return fused_dense(m, group.linears, weights)->forward(x);
  }
  fail(ErrorKind::kInternal, "unknown scale group module");
}

}  // namespace qb::quant
