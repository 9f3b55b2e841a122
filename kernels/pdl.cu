#include "pdl.cuh"
#include "quantbench/core/env_switch.h"
#include "quantbench/kernels/pdl.h"

namespace qb::kernels {

bool pdl_enabled() {
  static const bool enabled = [] {
    if (!env_on_unless_zero("QB_PDL")) return false;
    int device = 0, major = 0;
    if (cudaGetDevice(&device) != cudaSuccess) return false;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) return false;
    return major >= 9;
  }();
  return enabled;
}

}  // namespace qb::kernels
