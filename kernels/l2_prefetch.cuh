// Bulk prefetch into L2 (sm_90: cp.async.bulk.prefetch.L2, issued by the copy engine): one instruction asks for
// a contiguous range, holds no register and no shared memory, and has no completion to wait for.
//
// Why: a decode GEMV is launched early (programmatic dependent launch, pdl.cuh) but may read only weights
// before its wait, and each warp can keep only a few loads in flight. Its blocks, once resident, ask L2 for
// their whole first slice of the weight at once, so DRAM streams it while the kernel before is still running
// (a norm, attention: latency-bound kernels that leave DRAM idle); the GEMV's own loads then hit L2. The
// budget (l2_prefetch.h) keeps the prefetched total well under the 50 MB L2 so that nothing is evicted before
// it is read.
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
