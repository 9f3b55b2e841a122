// Bulk prefetch into L2 (sm_90: cp.async.bulk.prefetch.L2, issued by the copy engine): one instruction asks for
// a contiguous range, holds no register and no shared memory, and has no completion to wait for.
//
// Used by decode attention: the first block of each K/V head asks for that head's cached rows before its PDL
// wait, while the qkv GEMV is still running, so its reads past the register prefetch hit L2 (BENCHMARKS.md,
// section 1). Tried and dropped for the GEMVs' weights (each block prefetching its first slice before the wait,
// 6-24 MiB in all): no gain or slower in the same calls (qwen2-7b nf4 501-527 tok/s against 524-531 without).
#pragma once

#include <cstdint>

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

}  // namespace qb::kernels
