// L2 eviction priority of the decode GEMVs' weight stream.
//
// A decode step streams every weight once (3.8 GB for Qwen2-7B in nf4, 14 GB in bf16, against 50 MB of L2) and
// re-reads a few MB of other data every step: the KV cache rows, the activations, norm weights and rotary
// tables. Loaded at normal priority, the weights push all of that out of L2 between one step and the next, so
// the attention's K/V reads (on the step's critical path: the attention is one block per head) go to DRAM.
// Loaded evict-first, the weight lines replace each other and the rest stays.
// QB_L2_EVICT_FIRST=0 (A/B): evict-normal, what a load without a hint gets. (evict_unchanged as the primary
// priority assembles but is an illegal instruction on the H100, even predicated off.)
#pragma once

#include <cstdint>

#include "quantbench/core/env_switch.h"

namespace qb::kernels {

// The policy operand of the weight loads' .L2::cache_hint: created once per thread, kept in a register.
__device__ __forceinline__ uint64_t weight_stream_policy(bool evict_first) {
  uint64_t policy;
  if (evict_first) {
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
  } else {
    asm volatile("createpolicy.fractional.L2::evict_normal.b64 %0, 1.0;" : "=l"(policy));
  }
  return policy;
}

// Host: whether the decode GEMVs load their weights evict-first (read once per process).
inline bool weight_stream_evict_first() {
  static const bool on = env_on_unless_zero("QB_L2_EVICT_FIRST");
  return on;
}

}  // namespace qb::kernels
