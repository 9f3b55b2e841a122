// The AWQ scale and clip searches and the driver over a model's decoder layers (formulas: awq_search.h).
//
// Deviations from AutoAWQ, all deliberate:
//  - Everything is computed in float32 on the CPU (AutoAWQ runs the model in fp16 on a GPU); the final RTN is
//    AutoAWQ's, in fp16 (awq_quantize_rtn).
//  - s = 1 (plain RTN) is scored beside the 20 duo-scaling ratios and wins when strictly better: with duo
//    scaling no grid point is s = 1 (ratio 0 gives s = 1 / w_mean), so AutoAWQ can pick scales worse than none.
//  - 1/s folds into exactly the rows that produce the group's input (AutoAWQ divides the last rows of the
//    previous linear and its whole bias, the same thing for unfused v/up projections).
#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "quantbench/core/error.h"
#include "quantbench/quant/awq.h"
#include "quantbench/quant/awq_search.h"

namespace qb::quant {
namespace {

double mean_squared_error(const at::Tensor& out, const at::Tensor& ref) {
  return (out - ref).pow(2).sum(at::kDouble).item<double>() / static_cast<double>(ref.numel());
}

// The group's linears the method quantizes (modules_to_not_convert left out).
std::vector<std::string> converted(const ScaleGroup& group, const AwqQuantizeOptions& options) {
  std::vector<std::string> names;
  for (const auto& name : group.linears)
    if (!awq_excluded(name, options)) names.push_back(name);
  return names;
}

// Output rows of several weights [out_i, in] concatenated.
at::Tensor stacked_weights(const DenseModel& m, const std::vector<std::string>& prefixes) {
  std::vector<at::Tensor> weights;
  for (const auto& p : prefixes) weights.push_back(m.weight(p));
  return at::cat(weights, 0);
}

}  // namespace

bool awq_excluded(const std::string& prefix, const AwqQuantizeOptions& options) {
  return std::any_of(options.modules_to_not_convert.begin(), options.modules_to_not_convert.end(),
                     [&](const std::string& key) { return !key.empty() && prefix.find(key) != std::string::npos; });
}

void awq_check_fits(const DenseModel& m, const AwqQuantizeOptions& options) {
  QB_CHECK(options.method == "awq" || options.method == "rtn", kInvalidInput,
           "quantize method '{}' is not one of awq, rtn", options.method);
  QB_CHECK(options.group_size > 0, kInvalidInput, "group size must be positive, got {}", options.group_size);
  QB_CHECK(options.scale_grid > 0 && options.clip_grid > 0 && options.clip_sample_tokens > 0, kInvalidInput,
           "awq search grids and sample sizes must be positive");
  int64_t converted_count = 0;
  for (const std::string& prefix : m.decoder_linears()) {
    if (awq_excluded(prefix, options)) continue;
    ++converted_count;
    const int64_t out = m.weight(prefix).size(0), in = m.weight(prefix).size(1);
    const std::string leaf = prefix.substr(prefix.rfind('.') + 1);
    QB_CHECK(in % options.group_size == 0, kInvalidInput,
             "{}: in_features {} is not a multiple of the group size {} (AutoAWQ's GEMM layout needs "
             "in_features % group_size == 0); pick a group size that divides every layer's in_features, or keep "
             "this layer dense with --modules-to-not-convert {}",
             prefix, in, options.group_size, leaf);
    QB_CHECK(out % 8 == 0, kInvalidInput,
             "{}: out_features {} is not a multiple of 8 (AutoAWQ packs 8 outputs per int32); keep this layer "
             "dense with --modules-to-not-convert {}",
             prefix, out, leaf);
  }
  QB_CHECK(converted_count > 0, kInvalidInput, "{}: modules_to_not_convert excludes every decoder linear", m.dir);
}

at::Tensor awq_fake_quantize(const at::Tensor& weight, int64_t group_size) {
  const at::Tensor w = weight.reshape({-1, group_size});
  const at::Tensor max_val = std::get<0>(w.max(1, true));
  const at::Tensor min_val = std::get<0>(w.min(1, true));
  const at::Tensor scales = at::clamp_min(max_val - min_val, 1e-5) / 15;
  const at::Tensor zeros = at::clamp(-at::round(min_val / scales), 0, 15);
  return ((at::clamp(at::round(w / scales) + zeros, 0, 15) - zeros) * scales).reshape(weight.sizes());
}

ScaleSearchRecord awq_search_scales(const DenseModel& m, const ScaleGroup& group, const at::Tensor& x,
                                    const AwqQuantizeOptions& options) {
  const int64_t g = options.group_size;
  const std::vector<std::string> targets = converted(group, options);
  QB_CHECK(!targets.empty(), kInternal, "awq: scale group {} has nothing to quantize", group.name);

  // w_mean[c]: each weight divided by the max |w| of its quantization group, averaged over all output rows.
  const at::Tensor w = stacked_weights(m, targets).abs();
  const at::Tensor w_groups = w.reshape({-1, g});
  const at::Tensor w_mean = (w_groups / (w_groups.amax(1, true) + 1e-6)).reshape(w.sizes()).mean(0);
  // x_mean[c]: mean |x| over every calibration token.
  const at::Tensor x_rows = x.reshape({-1, x.size(-1)});
  const at::Tensor x_mean = x_rows.abs().sum(0) / static_cast<double>(x_rows.size(0));

  const at::Tensor reference = awq_group_forward(m, group, x);
  auto loss_with = [&](const at::Tensor& s) {
    const at::Tensor s_row = s.view({1, -1});
    std::map<std::string, at::Tensor> quantized;  // Q(W diag(s)) diag(s)^-1: the same as Q(W diag(s)) on x / s
    for (const auto& name : targets) quantized[name] = awq_fake_quantize(m.weight(name) * s_row, g) / s_row;
    return mean_squared_error(awq_group_forward(m, group, x, quantized), reference);
  };

  ScaleSearchRecord record;
  record.group = group.name;
  const at::Tensor identity = at::ones_like(x_mean);
  record.rtn_loss = loss_with(identity);
  record.best_loss = std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < options.scale_grid; ++i) {
    const double ratio = static_cast<double>(i) / static_cast<double>(options.scale_grid);
    at::Tensor s = options.duo_scaling ? at::clamp_min(x_mean.pow(ratio) / (w_mean.pow(1 - ratio) + 1e-4), 1e-4)
                                       : at::clamp_min(x_mean.pow(ratio), 1e-4);
    s = s / (s.max() * s.min()).sqrt();
    s.masked_fill_(at::logical_not(at::isfinite(s)), 1.0);
    const double loss = loss_with(s);
    if (loss < record.best_loss) {
      record.best_loss = loss;
      record.ratio = ratio;
      record.scales = s;
    }
  }
  if (options.identity_candidate && record.rtn_loss < record.best_loss) {
    record.best_loss = record.rtn_loss;
    record.ratio = -1;
    record.scales = identity;
  }
  QB_CHECK(record.scales.defined() && std::isfinite(record.best_loss), kInternal,
           "awq: the scale search for {} found no finite loss (NaN in weights or calibration inputs?)", group.name);
  return record;
}

void awq_apply_scales(DenseModel& m, const ScaleGroup& group, const at::Tensor& scales, LinearInputs* inputs) {
  const int64_t width = scales.numel();
  if (group.prev_kind == ScaleGroup::Prev::kNorm) {
    // norm(x) = w * n(x) (+ b): dividing w and b by s divides the output by s.
    m.weight(group.prev).div_(scales);
    if (at::Tensor* b = m.bias(group.prev)) b->div_(scales);
  } else {
    // The rows of the previous linear that produce the group's input channels.
    m.weight(group.prev).narrow(0, group.prev_row_begin, width).div_(scales.view({-1, 1}));
    if (at::Tensor* b = m.bias(group.prev)) b->narrow(0, group.prev_row_begin, width).div_(scales);
  }
  for (const auto& name : group.linears) m.weight(name).mul_(scales.view({1, -1}));
  if (inputs != nullptr) {
    const at::Tensor scaled = inputs->at(group.linears.front()) / scales;
    for (const auto& name : group.linears) (*inputs)[name] = scaled;
  }
}

at::Tensor awq_search_clip(const at::Tensor& weight, const at::Tensor& x, const AwqQuantizeOptions& options) {
  const int64_t g = options.group_size, out = weight.size(0), in = weight.size(1), groups = in / g;
  at::Tensor rows = x.reshape({-1, in});
  const int64_t step = std::max<int64_t>(1, rows.size(0) / options.clip_sample_tokens);
  rows = rows.slice(0, 0, rows.size(0), step);  // AutoAWQ samples every step-th token
  const int64_t tokens = rows.size(0);
  const at::Tensor x_groups = rows.reshape({tokens, groups, g}).permute({1, 0, 2}).contiguous();  // [groups, n, g]
  // Partial outputs per input group: [rows, groups, g] weights -> [groups, n, rows].
  auto partial_out = [&](const at::Tensor& w) { return at::bmm(x_groups, w.permute({1, 2, 0})); };
  const int64_t steps = static_cast<int64_t>(options.clip_max_shrink * static_cast<double>(options.clip_grid));

  at::Tensor best_all = at::empty({out, groups}, at::kFloat);
  constexpr int64_t kRowsPerBatch = 256;  // bounds the [groups, n, rows] products
  for (int64_t begin = 0; begin < out; begin += kRowsPerBatch) {
    const int64_t count = std::min(kRowsPerBatch, out - begin);
    const at::Tensor w = weight.narrow(0, begin, count).reshape({count, groups, g});
    const at::Tensor org_max = w.abs().amax(-1, true);  // [count, groups, 1]
    const at::Tensor org_out = partial_out(w);
    at::Tensor best = org_max.clone();
    at::Tensor min_err = at::full({count, groups, 1}, 1e9, at::kFloat);
    for (int64_t i = 0; i < steps; ++i) {
      const at::Tensor max_val = org_max * (1.0 - static_cast<double>(i) / static_cast<double>(options.clip_grid));
      const at::Tensor clipped = at::max(at::min(w, max_val), -max_val);
      const at::Tensor q = awq_fake_quantize(clipped, g);
      const at::Tensor err = (partial_out(q) - org_out).pow(2).mean(1).t().unsqueeze(-1);  // [count, groups, 1]
      const at::Tensor better = err < min_err;
      min_err = at::where(better, err, min_err);
      best = at::where(better, max_val, best);
    }
    best_all.narrow(0, begin, count).copy_(best.squeeze(-1));
  }
  return best_all;
}

AwqQuantizedModel awq_quantize_model(DenseModel m, LinearInputs inputs, const AwqQuantizeOptions& options) {
  awq_check_fits(m, options);
  AwqQuantizedModel result;
  result.options = options;
  const int64_t g = options.group_size;
  for (const std::string& prefix : m.decoder_linears())
    if (awq_excluded(prefix, options)) result.not_converted.push_back(prefix);

  if (options.method == "awq") {
    for (int64_t layer = 0; layer < static_cast<int64_t>(m.layout.layers.size()); ++layer) {
      // As AutoAWQ: every group of the layer is searched on the weights as they are, then all are applied.
      std::vector<std::pair<ScaleGroup, ScaleSearchRecord>> searched;
      for (const ScaleGroup& group : awq_scale_groups(m, layer)) {
        if (converted(group, options).empty()) continue;
        const auto it = inputs.find(group.linears.front());
        QB_CHECK(it != inputs.end(), kInvalidInput, "awq: no calibration input recorded for {}", group.linears.front());
        searched.emplace_back(group, awq_search_scales(m, group, it->second, options));
        const ScaleSearchRecord& r = searched.back().second;
        spdlog::info("awq {}: {} loss {:.4g} (rtn {:.4g})", r.group,
                     r.ratio < 0 ? std::string("s = 1") : fmt::format("ratio {:.2f}", r.ratio), r.best_loss,
                     r.rtn_loss);
      }
      for (auto& [group, record] : searched) {
        awq_apply_scales(m, group, record.scales, &inputs);
        result.searches.push_back(std::move(record));
      }
      if (options.apply_clip) {
        std::vector<std::pair<std::string, at::Tensor>> bounds;
        for (const std::string& prefix : m.layer_linears(layer)) {
          if (awq_excluded(prefix, options) || !awq_clip_allowed(m, layer, prefix)) continue;
          bounds.emplace_back(prefix, awq_search_clip(m.weight(prefix), inputs.at(prefix), options));
        }
        for (const auto& [prefix, bound] : bounds) {
          at::Tensor& w = m.weight(prefix);
          const at::Tensor max_val = bound.unsqueeze(-1);
          const at::Tensor grouped = w.view({w.size(0), -1, g});
          grouped.copy_(at::max(at::min(grouped, max_val), -max_val));
        }
      }
      for (const std::string& prefix : m.layer_linears(layer)) inputs.erase(prefix);  // done with this layer
    }
  }
  for (const std::string& prefix : m.decoder_linears()) {
    if (!awq_excluded(prefix, options)) result.quantized.emplace(prefix, awq_quantize_rtn(m.weight(prefix), g));
  }
  result.model = std::move(m);
  return result;
}

}  // namespace qb::quant
