#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "quantbench/kernels/l2_prefetch.h"

namespace qb::kernels {

int64_t l2_prefetch_budget_bytes() {
  // Off unless QB_L2_PREFETCH=N (MiB) asks for it: measured on H100 (BENCHMARKS.md), prefetching the first wave's
  // weights made decode slower (qwen2-7b nf4 503 vs 531 tok/s with 24 MiB issued by each block's first thread).
  static const int64_t budget = [] {
    int device = 0, major = 0;
    if (cudaGetDevice(&device) != cudaSuccess) return int64_t{0};
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) return int64_t{0};
    if (major < 9) return int64_t{0};
    const char* flag = std::getenv("QB_L2_PREFETCH");
    const int64_t mib = flag != nullptr ? std::max<int64_t>(0, std::atoll(flag)) : 0;
    return mib << 20;
  }();
  return budget;
}

int64_t l2_prefetch_blocks(int64_t blocks, int64_t block_bytes) {
  if (block_bytes <= 0) return 0;
  return std::min(blocks, l2_prefetch_budget_bytes() / block_bytes);
}

}  // namespace qb::kernels
