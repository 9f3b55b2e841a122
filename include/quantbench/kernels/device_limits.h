// Limits of the current CUDA device that launch decisions read on every call, queried once per device.
#pragma once

namespace qb::kernels {

int sm_count();                    // streaming multiprocessors
int max_shared_per_block_optin();  // bytes of shared memory a block may opt in to
int compute_capability();          // 10 * major + minor (90 = Hopper)

}  // namespace qb::kernels
