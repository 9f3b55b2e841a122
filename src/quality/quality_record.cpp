#include "quantbench/quality/quality_record.h"

#include "quantbench/core/dtype_label.h"

namespace qb::quality {

nlohmann::json quality_section(const PerplexityResult& r, const PerplexityOptions& options, const model::CausalLM& lm,
                               const std::string& weights, const std::string& baseline) {
  nlohmann::json q = {{"perplexity", r.perplexity},
                      {"nll_mean", r.nll_mean},
                      {"nll_sum", r.nll_sum},
                      {"scored_tokens", r.scored_tokens},
                      {"tokens", r.tokens},
                      {"windows", r.windows},
                      {"ctx", options.context},
                      {"stride", options.stride},
                      {"doc_loop_perplexity", r.doc_loop_perplexity},
                      {"seconds", r.seconds},
                      {"tokens_per_s", r.tokens_per_s},
                      {"weights", weights},
                      {"compute_dtype", dtype_label(lm.dtype())},
                      {"lm_head_format", lm.lm_head_format()}};
  if (r.kl_mean.has_value()) {
    q.update({{"baseline", baseline}, {"kl_mean", *r.kl_mean}, {"kl_p99", *r.kl_p99}, {"kl_max", *r.kl_max},
              {"top1_agreement", *r.top1_agreement}});
  }
  return q;
}

}  // namespace qb::quality
