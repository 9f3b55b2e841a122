// The split form of decode attention (decode_attention_split.cu), for decode_attention's dispatch.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "quantbench/kernels/decode_ops.h"

namespace qb::kernels {

// Whether the split form runs this shape on the current GPU (Hopper clusters; a split's rows in shared memory).
bool decode_attention_split_fits(int64_t num_heads, int64_t num_kv_heads, int64_t head_dim, int64_t rotary_dim,
                                 int64_t capacity, int64_t elem_bytes);

// decode_attention's contract; the caller checked decode_attention_split_fits.
void decode_attention_split(const void* qkv, void* k_cache, void* v_cache, const int64_t* position,
                            const float* rope_cos, const float* rope_sin, void* out, int64_t batch, int64_t num_heads,
                            int64_t num_kv_heads, int64_t head_dim, int64_t rotary_dim, int64_t capacity, float scale,
                            DType dtype, cudaStream_t stream);

}  // namespace qb::kernels
