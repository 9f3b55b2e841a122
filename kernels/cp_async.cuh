// Per-thread asynchronous copies global -> shared (cp.async, sm_80+): 16 bytes a thread, through L2 only
// (.cg), waited for in commit groups. Used where a kernel fills shared memory before its PDL wait without
// holding the data in registers.
#pragma once

#include <cstdint>

namespace qb::kernels {

__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;" ::: "memory"); }

}  // namespace qb::kernels
