// L2 eviction priority of the decode GEMVs' weight stream (dense, int8 and 4-bit).
//
// A decode step streams every weight once (14 GB for Qwen2-7B in bf16, 8 GB in int8, against 50 MB of L2) and
// re-reads or writes a few MB of other data every step: the KV cache rows, the activations, norm weights and
// rotary tables. Loaded at normal priority, the weights push all of that out of L2 between one step and the next;
// loaded evict-first, the weight lines replace each other and the rest stays. Measured end to end (BENCHMARKS.md,
// session 24, alternating A/B on one machine): +0.6% Qwen2-7B bf16, +1.1% int8, +1.3% TinyLlama fp16. Which of
// the kept lines pays is not measured; not the attention's K/V reads alone (session 22: warming them into L2 first
// changed nothing), so more likely the written lines no longer evicted and written back under the stream.
// QB_L2_EVICT_FIRST=0 (A/B): evict-normal, what a load without a hint gets.
#pragma once

#include <cstdint>

#include "quantbench/core/env_switch.h"

namespace qb::kernels {

// The policy operand of the weight loads' .L2::cache_hint (ld.global.nc in gemv_mma_tile.cuh): the 64-bit value
// createpolicy.fractional.L2::evict_first (evict_normal) with fraction 1.0 produces, read off its SASS.
// The 4-bit GEMV passes it to cp.async, which ptxas 13.0 can miscompile (q4_gemv.cuh, cp_async16, says how it is
// avoided; Marlin issue 44 and Triton PR 11660 report the same bug, fixed in ptxas 13.4).
__host__ __device__ constexpr uint64_t weight_stream_policy(bool evict_first) {
  return evict_first ? 0x12F0000000000000ull : 0x16F0000000000000ull;
}

// Host: whether the decode GEMVs load their weights evict-first (read once per process).
inline bool weight_stream_evict_first() {
  static const bool on = env_on_unless_zero("QB_L2_EVICT_FIRST");
  return on;
}

}  // namespace qb::kernels
