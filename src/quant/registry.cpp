// The list of weight formats. Adding a format: one unit in src/quant/ + kernels/, one line here.
#include <map>

#include "quantbench/core/error.h"
#include "quantbench/io/checkpoint.h"
#include "quantbench/quant/awq.h"
#include "quantbench/quant/bnb_4bit.h"
#include "quantbench/quant/dense.h"
#include "quantbench/quant/format.h"
#include "quantbench/quant/int8.h"
#include "quantbench/quant/llm_int8.h"

namespace qb::quant {
namespace {

const std::map<std::string, std::unique_ptr<WeightFormat>>& registry() {
  static const auto* formats = [] {
    auto* map = new std::map<std::string, std::unique_ptr<WeightFormat>>();
    auto add = [map](std::unique_ptr<WeightFormat> format) { (*map)[format->name()] = std::move(format); };
    add(make_dense_format("fp32", at::kFloat));
    add(make_dense_format("fp16", at::kHalf));
    add(make_dense_format("bf16", at::kBFloat16));
    add(make_bnb_4bit_format(Bnb4bitType::kNf4));
    add(make_bnb_4bit_format(Bnb4bitType::kFp4));
    add(make_awq_format());
    add(make_int8_format());
    add(make_llm_int8_format());
    return map;
  }();
  return *formats;
}

}  // namespace

const WeightFormat& find_format(const std::string& name) {
  const auto& formats = registry();
  auto it = formats.find(name);
  if (it == formats.end()) {
    std::string known;
    for (const auto& [key, value] : formats) known += (known.empty() ? "" : ", ") + key;
    fail(ErrorKind::kUnsupported, "precision '{}' is not supported (supported: {})", name, known);
  }
  return *it->second;
}

std::vector<std::string> format_names() {
  std::vector<std::string> names;
  for (const auto& [key, value] : registry()) names.push_back(key);
  return names;
}

LinearPtr WeightFormat::load_serialized(const io::Checkpoint& checkpoint, const std::string& prefix,
                                        const std::optional<at::Tensor>& bias, const FormatOptions& options) const {
  fail(ErrorKind::kUnsupported, "{}: format {} cannot load serialized tensors for '{}'", checkpoint.dir(), name(),
       prefix);
}

LinearPtr WeightFormat::fuse(std::vector<LinearPtr> parts) const {
  if (parts.size() == 1) return std::move(parts.front());
  return std::make_unique<ConcatLinear>(std::move(parts));
}

}  // namespace qb::quant
