// q4_gemv_kernel instantiations for bf16 activations, double-quantized absmax (nf4/fp4).
// One file per (activation, scale mode) so that the build compiles them in parallel.
#include "q4_gemv_launch.cuh"

namespace qb::kernels::q4 {
QB_Q4_GEMV_INSTANTIATE(__nv_bfloat16, Q4ScaleMode::kAbsmaxNested)
}  // namespace qb::kernels::q4
