// Limits of the current CUDA device that launch decisions read on every call, queried once per device.
#pragma once

#include <cstddef>

namespace qb::kernels {

int sm_count();                    // streaming multiprocessors
int max_shared_per_block_optin();  // bytes of shared memory a block may opt in to
int compute_capability();          // 10 * major + minor (90 = Hopper)

// Blocks of `kernel` (a __global__ function) launched with `threads` threads and `dynamic_smem` bytes that one SM of
// the current device holds at once. Cached per (kernel, threads, dynamic_smem, device): an occupancy query is a host
// call of a few microseconds, and launch decisions ask on every launch.
int resident_blocks_per_sm(const void* kernel, int threads, size_t dynamic_smem = 0);

}  // namespace qb::kernels
