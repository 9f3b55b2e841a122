// Greedy generation: one prefill of the whole prompt, then one token per step into a preallocated
// KV cache. On CUDA the decode step (embedding, every layer, lm head, argmax, advancing the
// position) is captured once as a CUDA graph and replayed: no host work between steps. The eager
// path runs the very same kernels one launch at a time.
//
// Timeline marks: before prefill, after prefill (first token chosen), after each decode step.
#pragma once

#include <ATen/Tensor.h>

#include <memory>
#include <vector>

#include "quantbench/bench/timeline.h"
#include "quantbench/model/causal_lm.h"
#include "quantbench/model/kv_cache.h"

namespace qb::engine {

struct GenerateOptions {
  int64_t gen_len = 32;             // tokens to generate, the prefill's token included
  bool use_cuda_graph = true;       // CUDA only; false = eager launches
  bool stop_at_eos = false;         // stop when every sequence has produced an EOS id
  std::vector<int64_t> eos_ids;
};

struct GenerateResult {
  at::Tensor tokens;                // [B, generated] int64 on the CPU
  int64_t decode_steps = 0;         // steps run after the prefill
};

class Generator {
 public:
  // Sizes the cache for prompt_len + gen_len positions and, on CUDA, allocates the step buffers.
  Generator(const model::CausalLM& model, int64_t batch, int64_t prompt_len, GenerateOptions options);
  ~Generator();
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  // prompt [B, prompt_len] int64 (any device).
  GenerateResult run(const at::Tensor& prompt, bench::Timeline* timeline = nullptr);

  const model::KvCache& cache() const { return cache_; }
  bool graph_captured() const;

 private:
  void decode_step_cuda();          // one step on the device buffers (eager or being captured)
  GenerateResult run_cpu(const at::Tensor& prompt, bench::Timeline* timeline);
  GenerateResult run_cuda(const at::Tensor& prompt, bench::Timeline* timeline);
  void capture_graph();
  void argmax_into_next(const at::Tensor& logits);

  const model::CausalLM& model_;
  int64_t batch_, prompt_len_;
  GenerateOptions options_;
  model::KvCache cache_;
  // CUDA step state: fixed addresses that the captured graph reads and writes.
  at::Tensor tokens_;      // [B, 1] int64: this step's input
  at::Tensor next_;        // [B] int64: argmax written by the step
  at::Tensor argmax_scratch_;  // bytes: argmax_rows' partial results
  at::Tensor position_;    // [1] int64: position of tokens_
  at::Tensor generated_;   // [B, gen_len] int64
  struct GraphState;
  std::unique_ptr<GraphState> graph_;
};

}  // namespace qb::engine
