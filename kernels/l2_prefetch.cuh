// Bulk prefetch into L2 (sm_90: cp.async.bulk.prefetch.L2, issued by the copy engine): one instruction asks for
// a contiguous range, holds no register and no shared memory, and has no completion to wait for.
//
// Used by decode attention: the first block of each K/V head asks for that head's cached rows before its PDL
// wait, while the qkv GEMV is still running, so its reads past the register prefetch hit L2 (BENCHMARKS.md,
// section 1). Tried and dropped for the GEMVs' weights (each block prefetching its first slice before the wait,
// 6-24 MiB in all): no gain or slower in the same calls (qwen2-7b nf4 501-527 tok/s against 524-531 without).
#pragma once

#include <cstdint>

#include "quantbench/kernels/l2_warm.h"

namespace qb::kernels {

// ptr 16-byte aligned; bytes rounded down to a multiple of 16. A hint: correctness never depends on it.
__device__ __forceinline__ void l2_prefetch(const void* ptr, int64_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  constexpr int64_t kPiece = int64_t{1} << 16;  // one instruction per 64 KB
  const char* p = static_cast<const char*>(ptr);
  for (int64_t done = 0; done + 16 <= bytes; done += kPiece) {
    const uint32_t size = static_cast<uint32_t>(bytes - done < kPiece ? (bytes - done) & ~int64_t{15} : kPiece);
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p + done), "r"(size) : "memory");
  }
#else
  (void)ptr;
  (void)bytes;
#endif
}

// Issues this thread's share of a plan (l2_warm.h). Pieces are cut into sub-pieces of at most 4 KB, and sub-piece u
// of a region goes to block u % gridDim.x, thread u / gridDim.x (mod blockDim.x): every block, hence every SM's copy
// engine, gets the same share of the bytes. (A plan of a few hundred 28 KB tiles given to threads in order landed on
// two SMs and made each layer ~25 us longer: one SM's engine drains prefetches at a fraction of DRAM's rate.)
__device__ __forceinline__ void l2_warm_issue(const L2WarmPlan& plan) {
  constexpr int64_t kSub = 4096;
  const int64_t slot = int64_t(blockIdx.x) + int64_t(gridDim.x) * threadIdx.x;
  const int64_t slots = int64_t(gridDim.x) * blockDim.x;
  for (int r = 0; r < plan.regions; ++r) {
    const L2WarmRegion& g = plan.region[r];
    const int64_t subs = (g.bytes + kSub - 1) / kSub;
    for (int64_t u = slot; u < g.count * subs; u += slots) {
      const int64_t piece = u / subs, offset = (u % subs) * kSub;
      l2_prefetch(static_cast<const char*>(g.base) + piece * g.stride + offset,
                  g.bytes - offset < kSub ? g.bytes - offset : kSub);
    }
  }
}

}  // namespace qb::kernels
