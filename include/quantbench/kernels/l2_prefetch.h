// How many bytes of weights the first wave of a decode GEMV asks the L2 cache for before it waits for its
// input (kernels/l2_prefetch.cuh). Non-zero only on compute capability 9.0+ (the bulk prefetch is an sm_90
// instruction) and when QB_L2_PREFETCH=N (MiB) asks for it: off by default (measured slower, l2_prefetch.cu). Read once per process; results
// record it.
#pragma once

#include <cstdint>

namespace qb::kernels {

int64_t l2_prefetch_budget_bytes();

// Of `blocks` blocks that each stream `block_bytes` of weights, how many (the lowest-numbered: the first
// wave) prefetch theirs, so that the prefetched total stays within the budget.
int64_t l2_prefetch_blocks(int64_t blocks, int64_t block_bytes);

}  // namespace qb::kernels
