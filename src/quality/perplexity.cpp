#include "quantbench/quality/perplexity.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>

#include "quantbench/bench/stats.h"
#include "quantbench/core/error.h"

namespace qb::quality {
namespace {

// Windows of equal length run together; the logits of one batch stay under this many bytes (fp32).
constexpr double kLogitsBudgetBytes = 2.0e9;

struct Batch {
  std::vector<Window> windows;
};

std::vector<Batch> batch_windows(const std::vector<Window>& windows, int64_t vocab, int64_t max_batch) {
  std::vector<Batch> batches;
  for (const Window& w : windows) {
    const int64_t length = w.end - w.begin;
    const int64_t fit = std::max<int64_t>(1, static_cast<int64_t>(kLogitsBudgetBytes / (4.0 * 3 * length * vocab)));
    const int64_t limit = max_batch > 0 ? std::min(max_batch, fit) : fit;
    if (!batches.empty()) {
      Batch& last = batches.back();
      const Window& first = last.windows.front();
      if (first.end - first.begin == length && static_cast<int64_t>(last.windows.size()) < limit) {
        last.windows.push_back(w);
        continue;
      }
    }
    batches.push_back({{w}});
  }
  return batches;
}

// Log-probabilities [B, L, V] in fp32 of the logits the model gives for `input` [B, L].
at::Tensor log_probs(const model::CausalLM& model, const at::Tensor& input) {
  model::StepPositions prefill;
  return at::log_softmax(model.forward(input.to(model.device()), nullptr, prefill, false).to(at::kFloat), -1);
}

}  // namespace

std::vector<Window> sliding_windows(int64_t tokens, int64_t context, int64_t stride) {
  QB_CHECK(context > 1 && stride > 0 && stride <= context, kInvalidInput,
           "--ctx ({}) must exceed 1 and --stride ({}) must be in [1, ctx]", context, stride);
  std::vector<Window> windows;
  int64_t prev_end = 0;
  for (int64_t begin = 0; begin < tokens; begin += stride) {
    const int64_t end = std::min(begin + context, tokens);
    const int64_t target = end - prev_end;
    // transformers shifts labels inside the model: position 0 of a window is never predicted.
    const int64_t scored = std::min(target, end - begin - 1);
    windows.push_back({begin, end, scored});
    prev_end = end;
    if (end == tokens) break;
  }
  return windows;
}

PerplexityResult evaluate_perplexity(const model::CausalLM& model, const std::vector<int64_t>& ids,
                                     const PerplexityOptions& options, const model::CausalLM* baseline) {
  QB_CHECK(ids.size() >= 2, kInvalidInput, "perplexity needs at least 2 tokens, the text has {}", ids.size());
  QB_CHECK(options.context <= model.max_positions(), kInvalidInput, "--ctx {} exceeds the model's {} positions",
           options.context, model.max_positions());
  const auto start = std::chrono::steady_clock::now();
  const at::Tensor all_ids = at::tensor(ids, at::kLong);
  const auto windows = sliding_windows(static_cast<int64_t>(ids.size()), options.context, options.stride);
  PerplexityResult result;
  result.tokens = static_cast<int64_t>(ids.size());
  result.windows = static_cast<int64_t>(windows.size());
  double doc_nll_sum = 0;  // transformers' doc loop: window mean x (trg_len - 1)
  int64_t doc_tokens = 0;
  int64_t processed = 0;
  std::vector<double> kl_values;
  int64_t agree = 0;
  for (const Batch& batch : batch_windows(windows, model.config().vocab_size, options.max_batch_windows)) {
    std::vector<at::Tensor> rows;
    for (const Window& w : batch.windows) rows.push_back(all_ids.narrow(0, w.begin, w.end - w.begin));
    const at::Tensor input = at::stack(rows);  // [B, L]
    const int64_t length = input.size(1);
    const at::Tensor lp = log_probs(model, input);
    at::Tensor base_lp;
    if (baseline != nullptr) base_lp = log_probs(*baseline, input);
    for (size_t b = 0; b < batch.windows.size(); ++b) {
      const Window& w = batch.windows[b];
      // Labels at positions [length - scored, length) are predicted by logits one position earlier.
      const int64_t first = length - w.scored - 1;
      const at::Tensor predicting = lp[b].narrow(0, first, w.scored);                      // [S, V]
      const at::Tensor labels = input[b].narrow(0, first + 1, w.scored).to(lp.device());  // [S]
      const at::Tensor nll = -predicting.gather(1, labels.unsqueeze(1)).squeeze(1).to(at::kDouble);
      const double window_sum = nll.sum().item<double>();
      result.nll_sum += window_sum;
      result.scored_tokens += w.scored;
      const int64_t doc_weight = w.begin == 0 ? w.scored : w.scored - 1;  // trg_len - 1
      doc_nll_sum += window_sum / static_cast<double>(w.scored) * static_cast<double>(doc_weight);
      doc_tokens += doc_weight;
      if (baseline != nullptr) {
        const at::Tensor base = base_lp[b].narrow(0, first, w.scored);
        const at::Tensor kl = (base.exp() * (base - predicting)).sum(-1).to(at::kDouble).cpu();
        kl_values.insert(kl_values.end(), kl.data_ptr<double>(), kl.data_ptr<double>() + kl.numel());
        agree += base.argmax(-1).eq(predicting.argmax(-1)).sum().item<int64_t>();
      }
    }
    processed += input.numel();
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.nll_mean = result.nll_sum / static_cast<double>(result.scored_tokens);
  result.perplexity = std::exp(result.nll_mean);
  result.doc_loop_perplexity = std::exp(doc_nll_sum / static_cast<double>(doc_tokens));
  result.tokens_per_s = static_cast<double>(processed) / result.seconds;
  if (baseline != nullptr) {
    const bench::Summary kl = bench::summarize(kl_values);
    result.kl_mean = kl.mean;
    result.kl_p99 = kl.p99;
    result.kl_max = kl.max;
    result.top1_agreement = static_cast<double>(agree) / static_cast<double>(result.scored_tokens);
  }
  return result;
}

}  // namespace qb::quality
