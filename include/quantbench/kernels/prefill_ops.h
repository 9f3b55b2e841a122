// Kernels of a prefill (T new tokens per sequence at positions [0, T)) that replace chains of small torch ops.
// dtype as in decode_ops.h; tensors contiguous, row-major, unless a stride is given.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "quantbench/kernels/decode_ops.h"  // DType

namespace qb::kernels {

// Splits qkv [B, T, (H + 2 Hkv) D] (q heads, then k heads, then v heads) into attention's layout in one pass:
//   q_out [B, H, T, D], k_out / v_out [B, Hkv, T, D] with a row stride of kv_ld elements between positions' heads
//   (kv_ld = capacity * D to write straight into a KV cache [B, Hkv, capacity, D] at positions [0, T); T * D for
//   plain tensors), with the rotary embedding on q and k (rotate_half convention, first rotary_dim dims, position t
//   from cos/sin tables [max_positions, rotary_dim / 2] fp32; rotary_dim 0: none). The rotation rounds exactly as
//   transformers' eager code in dtype does (cos, sin rounded to dtype; x cos, rotate_half(x) sin and their sum each
//   rounded): bit-identical to the torch ops it replaces.
void prefill_split_rope(const void* qkv, const float* rope_cos, const float* rope_sin, void* q_out, void* k_out,
                        void* v_out, int64_t kv_ld, int64_t batch, int64_t tokens, int64_t num_heads,
                        int64_t num_kv_heads, int64_t head_dim, int64_t rotary_dim, DType dtype, cudaStream_t stream);

}  // namespace qb::kernels
