#include "quantbench/quant/awq_calibration.h"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <set>

#include "quantbench/core/error.h"
#include "quantbench/model/builder.h"

namespace qb::quant {
namespace {

// Python's str.strip(): ASCII whitespace at both ends.
std::string stripped(const std::string& line) {
  const char* space = " \t\n\r\f\v";
  const size_t begin = line.find_first_not_of(space);
  if (begin == std::string::npos) return "";
  return line.substr(begin, line.find_last_not_of(space) - begin + 1);
}

// A linear that records every input it sees (float32 copies) and then computes as the wrapped one.
class RecordingLinear final : public Linear {
 public:
  RecordingLinear(LinearPtr inner, std::vector<at::Tensor>* record)
      : Linear(inner->in_features(), inner->out_features()), inner_(std::move(inner)), record_(record) {}
  at::Tensor forward(const at::Tensor& x) const override {
    record_->push_back(x.detach().to(at::kFloat).contiguous().clone());
    return inner_->forward(x);
  }
  at::Tensor dequantize() const override { return inner_->dequantize(); }
  int64_t weight_bytes() const override { return inner_->weight_bytes(); }
  std::string format_name() const override { return inner_->format_name(); }

 private:
  LinearPtr inner_;
  std::vector<at::Tensor>* record_;
};

}  // namespace

at::Tensor calibration_blocks(const tok::Tokenizer& tokenizer, const std::string& text, int64_t samples,
                              int64_t block_tokens) {
  QB_CHECK(samples > 0 && block_tokens > 0, kInvalidInput, "calibration samples ({}) and block length ({}) must be positive",
           samples, block_tokens);
  std::vector<int64_t> ids;
  int64_t taken = 0;
  size_t begin = 0;
  while (begin < text.size() && taken < samples) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    const std::string line = stripped(text.substr(begin, end - begin));
    begin = end + 1;
    if (line.empty()) continue;
    const std::vector<int32_t> encoded = tokenizer.encode(line, true);
    if (encoded.empty() || static_cast<int64_t>(encoded.size()) > block_tokens) continue;
    ids.insert(ids.end(), encoded.begin(), encoded.end());
    ++taken;
  }
  const int64_t blocks = static_cast<int64_t>(ids.size()) / block_tokens;
  QB_CHECK(blocks > 0, kInvalidInput,
           "the calibration text gives {} tokens from {} samples, fewer than one block of {} tokens", ids.size(),
           taken, block_tokens);
  ids.resize(blocks * block_tokens);
  return at::tensor(ids, at::kLong).view({blocks, block_tokens});
}

LinearInputs capture_linear_inputs(const io::ResolvedModel& model, const std::vector<std::string>& linears,
                                   const at::Tensor& blocks, int64_t blocks_per_forward) {
  QB_CHECK(blocks.dim() == 2 && blocks.scalar_type() == at::kLong, kInvalidInput,
           "calibration blocks must be int64 [blocks, tokens]");
  const std::set<std::string> wanted(linears.begin(), linears.end());
  // Records keyed by the first prefix of each wrapped (possibly fused) linear; `members` lists its prefixes.
  std::map<std::string, std::vector<at::Tensor>> records;
  std::map<std::string, std::vector<std::string>> members;
  model::BuildOptions options;
  options.precision = "fp32";
  options.compute_dtype = at::kFloat;
  options.quantize_lm_head = false;
  options.wrap_linear = [&](const std::vector<std::string>& prefixes, LinearPtr linear) -> LinearPtr {
    bool any = false;
    for (const auto& p : prefixes) any |= wanted.count(p) != 0;
    if (!any) return linear;
    members[prefixes.front()] = prefixes;
    return std::make_unique<RecordingLinear>(std::move(linear), &records[prefixes.front()]);
  };
  const auto lm = model::build_causal_lm(model, options);
  QB_CHECK(blocks.size(1) <= lm->max_positions(), kInvalidInput,
           "calibration blocks of {} tokens exceed the model's {} positions", blocks.size(1), lm->max_positions());
  const int64_t step = std::max<int64_t>(1, blocks_per_forward);
  for (int64_t b = 0; b < blocks.size(0); b += step) {
    const at::Tensor ids = blocks.narrow(0, b, std::min(step, blocks.size(0) - b));
    lm->forward(ids, nullptr, model::StepPositions{}, /*last_only=*/true);  // logits of the last token only
  }
  LinearInputs inputs;
  for (auto& [key, chunks] : records) {
    const at::Tensor all = at::cat(chunks, 0);
    chunks.clear();
    for (const auto& prefix : members[key]) inputs[prefix] = all;
  }
  for (const auto& name : linears) {
    QB_CHECK(inputs.count(name) != 0, kInternal, "calibration pass recorded no input for {}", name);
  }
  return inputs;
}

}  // namespace qb::quant
