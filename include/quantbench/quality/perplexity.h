// Perplexity with the sliding-window method transformers documents: windows of `context` tokens
// every `stride` tokens; in each window only the tokens the previous window did not score are
// scored. The NLL is summed per token in float64, so perplexity = exp(sum / scored tokens) exactly
// (transformers' doc loop averages per-window means, a slightly different number; both are kept).
//
// With a baseline model (same tokenizer) the same windows also give, per scored position, the KL
// divergence KL(baseline || model) of the next-token distributions and whether the top-1 agrees.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "quantbench/model/causal_lm.h"

namespace qb::quality {

struct Window {
  int64_t begin = 0, end = 0;  // token range [begin, end)
  int64_t scored = 0;          // the last `scored` labels of the window count (first window: minus one)
};

// transformers' loop: prev_end = 0; for begin in range(0, n, stride): end = min(begin + context, n);
// trg_len = end - prev_end; ...; stop once end == n.
std::vector<Window> sliding_windows(int64_t tokens, int64_t context, int64_t stride);

struct PerplexityOptions {
  int64_t context = 1024;
  int64_t stride = 512;
  int64_t max_batch_windows = 0;  // 0: as many equal-length windows as fit a logits budget
};

struct PerplexityResult {
  int64_t tokens = 0;           // length of the encoded text
  int64_t windows = 0;
  int64_t scored_tokens = 0;
  double nll_sum = 0;           // float64 sum of per-token negative log-likelihoods (nats)
  double nll_mean = 0;
  double perplexity = 0;
  double doc_loop_perplexity = 0;  // the doc loop's figure: window means weighted by trg_len - 1
  double seconds = 0;
  double tokens_per_s = 0;      // window tokens processed per second
  // Against the baseline model, when given:
  std::optional<double> kl_mean, kl_p99, kl_max, top1_agreement;
};

PerplexityResult evaluate_perplexity(const model::CausalLM& model, const std::vector<int64_t>& ids,
                                     const PerplexityOptions& options, const model::CausalLM* baseline = nullptr);

}  // namespace qb::quality
