// A kernel that faults on purpose (`trap`): the diagnostic QB_DIAG_KERNEL_FAULT launches it, so that tests can check
// what a sweep does when a kernel fault leaves the process's CUDA context unusable.
#pragma once

#include <cuda_runtime.h>

namespace qb::kernels {

void launch_trap_kernel(cudaStream_t stream);

}  // namespace qb::kernels
