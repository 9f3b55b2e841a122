#include "quantbench/kernels/device_limits.h"

#include <cuda_runtime.h>

#include "quantbench/kernels/cuda_check.h"

namespace qb::kernels {
namespace {

// One slot per device index (a benign race: every writer stores the same value).
int cached_attribute(cudaDeviceAttr attribute, int (&slots)[64]) {
  int device = 0;
  QB_CUDA_CHECK(cudaGetDevice(&device));
  if (device >= 64) device = 63;
  if (slots[device] == 0) QB_CUDA_CHECK(cudaDeviceGetAttribute(&slots[device], attribute, device));
  return slots[device];
}

}  // namespace

int sm_count() {
  static int slots[64] = {};
  return cached_attribute(cudaDevAttrMultiProcessorCount, slots);
}

int compute_capability() {
  // Stored as 10 * major + minor + 1 so that 0 still means "not queried".
  static int slots[64] = {};
  int device = 0;
  QB_CUDA_CHECK(cudaGetDevice(&device));
  if (device >= 64) device = 63;
  if (slots[device] == 0) {
    int major = 0, minor = 0;
    QB_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    QB_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
    slots[device] = 10 * major + minor + 1;
  }
  return slots[device] - 1;
}

int max_shared_per_block_optin() {
  static int slots[64] = {};
  return cached_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin, slots);
}

}  // namespace qb::kernels
