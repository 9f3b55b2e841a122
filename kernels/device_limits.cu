#include "quantbench/kernels/device_limits.h"

#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <tuple>

#include "quantbench/kernels/cuda_check.h"

namespace qb::kernels {
namespace {

// One slot per device index (a benign race: every writer stores the same value). A slot holds value + 1, so that
// 0 means "not queried" even for attributes that can be 0 (a compute capability's minor number).
int cached_attribute(cudaDeviceAttr attribute, int (&slots)[64]) {
  int device = 0;
  QB_CUDA_CHECK(cudaGetDevice(&device));
  if (device >= 64) device = 63;
  if (slots[device] == 0) {
    int value = 0;
    QB_CUDA_CHECK(cudaDeviceGetAttribute(&value, attribute, device));
    slots[device] = value + 1;
  }
  return slots[device] - 1;
}

}  // namespace

int sm_count() {
  static int slots[64] = {};
  return cached_attribute(cudaDevAttrMultiProcessorCount, slots);
}

int compute_capability() {
  static int major[64] = {}, minor[64] = {};
  return 10 * cached_attribute(cudaDevAttrComputeCapabilityMajor, major) +
         cached_attribute(cudaDevAttrComputeCapabilityMinor, minor);
}

int max_shared_per_block_optin() {
  static int slots[64] = {};
  return cached_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin, slots);
}

int resident_blocks_per_sm(const void* kernel, int threads, size_t dynamic_smem) {
  static std::mutex mutex;
  static std::map<std::tuple<const void*, int, size_t, int>, int> cache;
  int device = 0;
  QB_CUDA_CHECK(cudaGetDevice(&device));
  const auto key = std::make_tuple(kernel, threads, dynamic_smem, device);
  {
    std::lock_guard<std::mutex> lock(mutex);
    const auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  int blocks = 0;
  QB_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, threads, dynamic_smem));
  std::lock_guard<std::mutex> lock(mutex);
  cache[key] = blocks;
  return blocks;
}

}  // namespace qb::kernels
