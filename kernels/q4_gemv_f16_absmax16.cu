// q4_gemv_kernel instantiations for f16 activations, 16-bit absmax (nf4/fp4 whose absmax is exact in 16 bits).
// One file per (activation, scale mode) so that the build compiles them in parallel.
#include "q4_gemv_launch.cuh"

namespace qb::kernels::q4 {
QB_Q4_GEMV_INSTANTIATE(__half, Q4ScaleMode::kAbsmax16)
}  // namespace qb::kernels::q4
