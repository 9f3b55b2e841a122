// L2 warming: the weight bytes a decode GEMV will stream from DRAM after its own first loads, described so that a
// latency-bound kernel running before it (decode attention: a few microseconds in which DRAM would otherwise idle)
// can ask L2 for them (cp.async.bulk.prefetch.L2). A hint only: no kernel's result depends on it.
//
// A plan lists regions in the order the GEMV reads them; region r is `count` pieces of `bytes` bytes, piece i at
// base + i * stride (base and stride multiples of 16, bytes a multiple of 16: the prefetch's granularity). A piece
// is the part of one row (dense, int8) or one 16-row tile (4-bit) that the GEMV reads after the loads it issues
// itself before its PDL wait, for the blocks of its first wave only (later waves would evict it again).
// Torch-free and host/device-neutral: the plan is passed by value to the kernel that issues it.
#pragma once

#include <cstdint>

namespace qb::kernels {

struct L2WarmRegion {
  const void* base = nullptr;
  int64_t count = 0;
  int64_t stride = 0;
  int64_t bytes = 0;
};

constexpr int kL2WarmMaxRegions = 8;

struct L2WarmPlan {
  L2WarmRegion region[kL2WarmMaxRegions];
  int regions = 0;
};

// Sum of count * bytes over the regions.
inline int64_t l2_warm_bytes(const L2WarmPlan& plan) {
  int64_t total = 0;
  for (int r = 0; r < plan.regions; ++r) total += plan.region[r].count * plan.region[r].bytes;
  return total;
}

// Adds a region; dropped when empty, misaligned or the plan is full (a hint may be incomplete, never wrong).
inline void l2_warm_add(L2WarmPlan& plan, const void* base, int64_t count, int64_t stride, int64_t bytes) {
  bytes &= ~int64_t{15};
  if (base == nullptr || count <= 0 || bytes <= 0 || plan.regions == kL2WarmMaxRegions) return;
  if (reinterpret_cast<uintptr_t>(base) % 16 != 0 || (count > 1 && stride % 16 != 0)) return;
  plan.region[plan.regions++] = L2WarmRegion{base, count, stride, bytes};
}

// The plan cut to at most `budget` bytes: every piece keeps the same leading fraction (rounded down to 16 bytes),
// so each block of the GEMV finds the same share of its bytes in L2.
inline L2WarmPlan l2_warm_fit(const L2WarmPlan& plan, int64_t budget) {
  const int64_t total = l2_warm_bytes(plan);
  if (total <= budget) return plan;
  L2WarmPlan out;
  if (budget <= 0) return out;
  const double share = static_cast<double>(budget) / static_cast<double>(total);
  for (int r = 0; r < plan.regions; ++r) {
    const L2WarmRegion& g = plan.region[r];
    l2_warm_add(out, g.base, g.count, g.stride, static_cast<int64_t>(static_cast<double>(g.bytes) * share));
  }
  return out;
}

// `first` cut to the budget, then `then` cut to what it leaves: the order the kernels after the warming one read
// them (the nearer GEMV first, whole where the budget allows).
inline L2WarmPlan l2_warm_chain(const L2WarmPlan& first, const L2WarmPlan& then, int64_t budget) {
  L2WarmPlan out = l2_warm_fit(first, budget);
  const L2WarmPlan rest = l2_warm_fit(then, budget - l2_warm_bytes(out));
  for (int r = 0; r < rest.regions; ++r) {
    const L2WarmRegion& g = rest.region[r];
    l2_warm_add(out, g.base, g.count, g.stride, g.bytes);
  }
  return out;
}

}  // namespace qb::kernels
