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

int max_shared_per_block_optin() {
  static int slots[64] = {};
  return cached_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin, slots);
}

}  // namespace qb::kernels
