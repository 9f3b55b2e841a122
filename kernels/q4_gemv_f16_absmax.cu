// q4_gemv_kernel instantiations for f16 activations, fp32 absmax (nf4/fp4).
// One file per (activation, scale mode) so that the build compiles them in parallel.
#include "q4_gemv_launch.cuh"

namespace qb::kernels::q4 {
QB_Q4_GEMV_INSTANTIATE(__half, Q4ScaleMode::kAbsmaxF32)
}  // namespace qb::kernels::q4
