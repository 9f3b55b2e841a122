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

// One 128-byte line asked of L2 by an ordinary prefetch: fire and forget (the bulk form above is the copy engine's
// work, which a block apparently waits for before it retires: see l2_warm_issue).
__device__ __forceinline__ void l2_prefetch_line(const void* ptr) {
  asm volatile("prefetch.global.L2::evict_last [%0];" ::"l"(ptr));
}

// Issues this thread's share of a plan (l2_warm.h). Pieces are cut into sub-pieces of at most 4 KB, and sub-piece u
// of a region goes to block u % gridDim.x, thread u / gridDim.x (mod blockDim.x): every block, hence every SM, gets
// the same share of the bytes. (A plan of a few hundred 28 KB tiles given to threads in order landed on two SMs and
// made each layer ~25 us longer.) QB_L2_WARM_BULK: bulk prefetches (the copy engine) instead of one prefetch
// instruction per 128-byte line; with bulk prefetches every budget from 4 to 16 MiB cost the same ~3 us a layer,
// as if the attention's blocks waited for them before retiring.
template <bool kBulk>
__device__ __forceinline__ void l2_warm_issue(const L2WarmPlan& plan) {
  constexpr int64_t kSub = 4096;
  const int64_t slot = int64_t(blockIdx.x) + int64_t(gridDim.x) * threadIdx.x;
  const int64_t slots = int64_t(gridDim.x) * blockDim.x;
  for (int r = 0; r < plan.regions; ++r) {
    const L2WarmRegion& g = plan.region[r];
    const int64_t subs = (g.bytes + kSub - 1) / kSub;
    for (int64_t u = slot; u < g.count * subs; u += slots) {
      const int64_t piece = u / subs, offset = (u % subs) * kSub;
      const char* p = static_cast<const char*>(g.base) + piece * g.stride + offset;
      const int64_t bytes = g.bytes - offset < kSub ? g.bytes - offset : kSub;
      if constexpr (kBulk) {
        l2_prefetch(p, bytes);
      } else {
        for (int64_t b = 0; b < bytes; b += 128) l2_prefetch_line(p + b);
      }
    }
  }
}

}  // namespace qb::kernels
