// DenseModel: a dense checkpoint read whole into float32 tensors the quantizer may edit in place.
#include <ATen/ATen.h>

#include "quantbench/core/error.h"
#include "quantbench/io/checkpoint.h"
#include "quantbench/model/builder.h"
#include "quantbench/quant/awq_search.h"

namespace qb::quant {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Every linear the layout names (decoder layers, opt-350m's projections, an untied head).
std::set<std::string> layout_linears(const model::ArchLayout& layout) {
  std::set<std::string> names;
  for (const auto& layer : layout.layers) {
    names.insert(layer.qkv.begin(), layer.qkv.end());
    names.insert(layer.attn_out);
    names.insert(layer.mlp_in.begin(), layer.mlp_in.end());
    names.insert(layer.mlp_out);
  }
  for (const std::string& name : {layout.project_in, layout.project_out, layout.lm_head}) {
    if (!name.empty()) names.insert(name);
  }
  return names;
}

}  // namespace

at::Tensor& DenseModel::weight(const std::string& prefix) {
  auto it = tensors.find(prefix + ".weight");
  QB_CHECK(it != tensors.end(), kNotFound, "{}: no tensor '{}.weight'", dir, prefix);
  return it->second;
}

const at::Tensor& DenseModel::weight(const std::string& prefix) const {
  return const_cast<DenseModel*>(this)->weight(prefix);
}

at::Tensor* DenseModel::bias(const std::string& prefix) {
  auto it = tensors.find(prefix + ".bias");
  return it == tensors.end() ? nullptr : &it->second;
}

const at::Tensor* DenseModel::bias(const std::string& prefix) const {
  return const_cast<DenseModel*>(this)->bias(prefix);
}

std::vector<std::string> DenseModel::layer_linears(int64_t layer) const {
  QB_CHECK(layer >= 0 && layer < static_cast<int64_t>(layout.layers.size()), kInternal, "no decoder layer {}", layer);
  const model::LayerLayout& l = layout.layers[layer];
  std::vector<std::string> names(l.qkv.begin(), l.qkv.end());
  names.push_back(l.attn_out);
  names.insert(names.end(), l.mlp_in.begin(), l.mlp_in.end());
  names.push_back(l.mlp_out);
  return names;
}

std::vector<std::string> DenseModel::decoder_linears() const {
  std::vector<std::string> names;
  for (int64_t i = 0; i < static_cast<int64_t>(layout.layers.size()); ++i) {
    const auto layer = layer_linears(i);
    names.insert(names.end(), layer.begin(), layer.end());
  }
  return names;
}

DenseModel load_dense_model(const io::ResolvedModel& resolved) {
  QB_CHECK(resolved.source != io::ModelSource::kSynthetic, kUnsupported,
           "{}: quantize needs a checkpoint on disk (synthetic weights have nothing to calibrate)", resolved.spec);
  DenseModel m;
  m.dir = resolved.dir;
  m.config_json = resolved.config;
  m.config = parse_model_config(resolved.config, resolved.config_path);
  const std::string stored = model::checkpoint_precision(m.config);
  QB_CHECK(stored.empty(), kUnsupported, "{}: the checkpoint is already quantized ({}); quantize a dense one",
           resolved.config_path, stored);
  const io::Checkpoint checkpoint = io::Checkpoint::open(resolved.dir);
  m.layout = model::make_arch_layout(m.config, [&](const std::string& name) { return checkpoint.has(name); });
  const std::set<std::string> linears = layout_linears(m.layout);
  for (const std::string& name : checkpoint.names()) {
    bool ignored = false;
    for (const auto& suffix : m.layout.ignored_suffixes) ignored |= ends_with(name, suffix);
    if (ignored) continue;
    at::Tensor t = checkpoint.get(name);
    // A private float32 copy: the mapped checkpoint is read-only and the search edits weights in place.
    t = at::isFloatingType(t.scalar_type()) ? t.to(at::kFloat).clone() : t.clone();
    if (m.layout.conv1d_weights && ends_with(name, ".weight") &&
        linears.count(name.substr(0, name.size() - 7)) != 0 && t.dim() == 2) {
      t = t.t().contiguous();  // Conv1D [in, out] -> [out, in]
      m.transposed.insert(name);
    }
    m.tensors.emplace(name, t.contiguous());
  }
  for (const std::string& prefix : m.decoder_linears()) m.weight(prefix);  // every decoder linear is present
  return m;
}

}  // namespace qb::quant
