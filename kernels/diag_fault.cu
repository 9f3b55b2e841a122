// See include/quantbench/kernels/diag_fault.h.
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/diag_fault.h"

namespace qb::kernels {
namespace {

__global__ void trap_kernel() { __trap(); }

}  // namespace

void launch_trap_kernel(cudaStream_t stream) {
  trap_kernel<<<1, 1, 0, stream>>>();
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace qb::kernels
