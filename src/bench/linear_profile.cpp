#include "quantbench/bench/linear_profile.h"

#include <map>

#include "quantbench/bench/timeline.h"
#include "quantbench/core/error.h"

namespace qb::bench {

// One timed layer: a mark before and after each forward (intervals alternate call, gap, call, ...), and whether
// each call was the run's prefill (a layer's first call in a generate run) or a decode step.
struct LinearProfile::Layer {
  std::string role;
  int64_t bytes_per_call = 0;
  std::unique_ptr<Timeline> timeline;
  std::vector<bool> prefill;
  const int64_t* run = nullptr;  // the profile's run counter
  int64_t last_run = -1;
};

namespace {

class TimedLinear final : public quant::Linear {
 public:
  TimedLinear(quant::LinearPtr inner, std::shared_ptr<LinearProfile::Layer> layer)
      : Linear(inner->in_features(), inner->out_features()), inner_(std::move(inner)), layer_(std::move(layer)) {}

  at::Tensor forward(const at::Tensor& x) const override {
    layer_->prefill.push_back(layer_->last_run != *layer_->run);
    layer_->last_run = *layer_->run;
    layer_->timeline->mark();
    at::Tensor y = inner_->forward(x);
    layer_->timeline->mark();
    return y;
  }
  at::Tensor dequantize() const override { return inner_->dequantize(); }
  int64_t weight_bytes() const override { return inner_->weight_bytes(); }
  int64_t bytes_read_per_token() const override { return inner_->bytes_read_per_token(); }
  std::string format_name() const override { return inner_->format_name(); }

 private:
  quant::LinearPtr inner_;
  std::shared_ptr<LinearProfile::Layer> layer_;
};

// "model.layers.3.self_attn.{q,k,v}_proj" -> "self_attn.q_proj+k_proj+v_proj"; "transformer.h.0.mlp.c_proj" ->
// "mlp.c_proj" (GPT-2 has a c_proj in attention and in the MLP); "model.decoder.layers.0.fc1" -> "fc1".
std::string role_of(const std::vector<std::string>& prefixes) {
  auto split = [](const std::string& prefix) {
    const size_t dot = prefix.rfind('.');
    if (dot == std::string::npos) return std::make_pair(std::string(), prefix);
    const size_t before = prefix.rfind('.', dot - 1);
    std::string parent = prefix.substr(before == std::string::npos ? 0 : before + 1, dot - (before == std::string::npos ? 0 : before + 1));
    if (!parent.empty() && parent.find_first_not_of("0123456789") == std::string::npos) parent.clear();
    return std::make_pair(parent, prefix.substr(dot + 1));
  };
  std::string role;
  for (const auto& prefix : prefixes) {
    const auto [parent, name] = split(prefix);
    role += role.empty() ? (parent.empty() ? name : parent + "." + name) : "+" + name;
  }
  return role;
}

}  // namespace

LinearProfile::LinearProfile(c10::Device device) : device_(device) {}
LinearProfile::~LinearProfile() = default;

std::function<quant::LinearPtr(const std::vector<std::string>&, quant::LinearPtr)> LinearProfile::wrapper() {
  return [this](const std::vector<std::string>& prefixes, quant::LinearPtr linear) -> quant::LinearPtr {
    auto layer = std::make_shared<Layer>();
    layer->role = role_of(prefixes);
    layer->bytes_per_call = linear->bytes_read_per_token();
    layer->timeline = make_timeline(device_);
    layer->run = &run_;
    layers_.push_back(layer);
    return std::make_unique<TimedLinear>(std::move(linear), std::move(layer));
  };
}

void LinearProfile::clear() {
  for (auto& layer : layers_) {
    layer->timeline->clear();
    layer->prefill.clear();
  }
}

void LinearProfile::begin_run() { ++run_; }

nlohmann::json LinearProfile::summary(int64_t decode_steps) const {
  struct Totals {
    int64_t layers = 0, decode_calls = 0, prefill_calls = 0, bytes_per_call = 0;
    double decode_ms = 0, prefill_ms = 0;
  };
  std::map<std::string, Totals> by_role;
  std::vector<std::string> order;  // roles in model order
  for (const auto& layer : layers_) {
    const std::vector<double> intervals = layer->timeline->intervals_ms();
    QB_CHECK(intervals.size() + 1 == 2 * layer->prefill.size() || (intervals.empty() && layer->prefill.empty()),
             kInternal, "linear profile of {}: {} marks for {} calls", layer->role, intervals.size() + 1,
             layer->prefill.size());
    if (by_role.count(layer->role) == 0) order.push_back(layer->role);
    Totals& t = by_role[layer->role];
    t.layers += 1;
    t.bytes_per_call += layer->bytes_per_call;
    for (size_t call = 0; call < layer->prefill.size(); ++call) {
      const double ms = intervals[2 * call];
      if (layer->prefill[call]) {
        t.prefill_calls += 1;
        t.prefill_ms += ms;
      } else {
        t.decode_calls += 1;
        t.decode_ms += ms;
      }
    }
  }
  nlohmann::json roles = nlohmann::json::array();
  double decode_ms = 0, prefill_ms = 0;
  for (const auto& role : order) {
    const Totals& t = by_role[role];
    nlohmann::json entry = {{"role", role},
                            {"layers", t.layers},
                            {"bytes_per_step", t.bytes_per_call},
                            {"decode_calls", t.decode_calls},
                            {"decode_ms", t.decode_ms},
                            {"prefill_calls", t.prefill_calls},
                            {"prefill_ms", t.prefill_ms}};
    if (decode_steps > 0 && t.decode_ms > 0) {
      const double per_step_ms = t.decode_ms / static_cast<double>(decode_steps);
      entry["decode_ms_per_step"] = per_step_ms;
      entry["decode_gbps"] = static_cast<double>(t.bytes_per_call) / (per_step_ms / 1e3) / 1e9;
    }
    decode_ms += t.decode_ms;
    prefill_ms += t.prefill_ms;
    roles.push_back(entry);
  }
  nlohmann::json out = {{"roles", roles},
                        {"decode_steps", decode_steps},
                        {"linear_decode_ms", decode_ms},
                        {"linear_prefill_ms", prefill_ms},
                        {"clock", layers_.empty() ? "none" : layers_.front()->timeline->clock_name()},
                        {"mode", "eager (no CUDA graph): host launch time is inside wherever the GPU waited for it"}};
  if (decode_steps > 0) out["linear_decode_ms_per_step"] = decode_ms / static_cast<double>(decode_steps);
  return out;
}

}  // namespace qb::bench
