// Kernels of known cost, used to check that the timers measure device time:
// - spin: one block that busy-waits on the %globaltimer nanosecond clock for `duration_ns`.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace qb::kernels {

void launch_spin(uint64_t duration_ns, cudaStream_t stream);

}  // namespace qb::kernels
