// Where a decode step's time goes: every linear layer of the model timed on its own (CUDA events around its
// forward on the current stream; the wall clock on the CPU), so a run can split its step time into "the
// linear layers" (per role: q/k/v, output projection, gate/up, down, LM head) and "everything else"
// (attention, norms, activation, embedding, launch gaps). Opt-in (`quantbench run --profile-linears`): the
// layers are wrapped through model::BuildOptions::wrap_linear and the run decodes eagerly, because events
// cannot be read back from inside a replayed CUDA graph; an eager step also pays the host's launch time
// wherever the GPU waits for it, so read the split against the same run's step time, not the graph run's.
#pragma once

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "quantbench/quant/linear.h"

namespace qb::bench {

class LinearProfile {
 public:
  explicit LinearProfile(c10::Device device);
  ~LinearProfile();

  // The wrap_linear hook: each linear comes back wrapped in a timer, named by the last component of its
  // checkpoint prefixes ("q_proj+k_proj+v_proj", "down_proj", "c_attn", "lm_head", ...). The profile must
  // outlive the model built with it.
  std::function<quant::LinearPtr(const std::vector<std::string>&, quant::LinearPtr)> wrapper();

  // Forgets what was timed so far (call it after the warm-up runs).
  void clear();
  // Before each generate run: a layer's first call in a run is its prefill, the others are decode steps.
  void begin_run();

  // Per role, summed over every layer of that role: prefill and decode calls, their time, the bytes a decode
  // step reads from those layers (bytes_read_per_token) and the bandwidth that makes; then the decode totals
  // per step, given how many decode steps were timed. Synchronises.
  nlohmann::json summary(int64_t decode_steps) const;

  struct Layer;  // public for the wrapper in the .cpp

 private:
  c10::Device device_;
  int64_t run_ = 0;
  std::vector<std::shared_ptr<Layer>> layers_;
};

}  // namespace qb::bench
