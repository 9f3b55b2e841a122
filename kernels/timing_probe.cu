#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/timing_probe.h"

namespace qb::kernels {
namespace {

__device__ __forceinline__ uint64_t global_timer_ns() {
  uint64_t now;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  return now;
}

// One thread spins until the global timer has advanced by duration_ns: the kernel's device
// duration is duration_ns plus launch latency, independent of clocks.
__global__ void spin_kernel(uint64_t duration_ns) {
  const uint64_t start = global_timer_ns();
  while (global_timer_ns() - start < duration_ns) {
  }
}

}  // namespace

void launch_spin(uint64_t duration_ns, cudaStream_t stream) {
  spin_kernel<<<1, 1, 0, stream>>>(duration_ns);
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace qb::kernels
