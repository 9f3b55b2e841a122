#include <cstdlib>
#include <cstring>

#include "pdl.cuh"
#include "quantbench/kernels/pdl.h"

namespace qb::kernels {

bool pdl_enabled() {
  static const bool enabled = [] {
    const char* flag = std::getenv("QB_PDL");
    if (flag != nullptr && std::strcmp(flag, "0") == 0) return false;
    int device = 0, major = 0;
    if (cudaGetDevice(&device) != cudaSuccess) return false;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) return false;
    return major >= 9;
  }();
  return enabled;
}

}  // namespace qb::kernels
