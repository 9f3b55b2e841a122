// The grouped-by-K/V-head decode attention (decode_attention_grouped.cu), called by decode_attention() where the
// per-query-head kernel would run its light variant. Same contract as decode_attention (decode_ops.h).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "quantbench/kernels/decode_ops.h"

namespace qb::kernels {

inline constexpr int kMaxGroupedHeads = 8;  // query heads a block takes (registers: 8 x 8 fp32 output accumulators)

// Query heads per block for this shape: 0 where the grouping does not apply (one query head a K/V head).
int grouped_heads_per_block(int64_t batch, int64_t num_heads, int64_t num_kv_heads);

// Launches with `heads_per_block` (1 .. min(group, kMaxGroupedHeads)) query heads a block; false (nothing launched)
// where that is out of range or the scores do not fit in shared memory.
bool decode_attention_grouped(const void* qkv, void* k_cache, void* v_cache, const int64_t* position,
                              const float* rope_cos, const float* rope_sin, void* out, int64_t batch,
                              int64_t num_heads, int64_t num_kv_heads, int64_t head_dim, int64_t rotary_dim,
                              int64_t capacity, float scale, DType dtype, int heads_per_block, cudaStream_t stream);

}  // namespace qb::kernels
