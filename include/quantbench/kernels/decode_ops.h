// Fused kernels for one decode step (one new token per sequence), so that a small model's step is
// a few dozen launches, all capturable in one CUDA graph. Positions live on the device: a graph
// replayed step after step reads and advances them itself, with no host work between steps.
//
// dtype: activations and parameters share one dtype (fp32, fp16 or bf16); accumulation is fp32.
// All tensors are contiguous, row-major.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace qb::kernels {

enum class DType { kF32, kF16, kBF16 };

// out[b, :] = token_table[tokens[b], :] (+ position_table[*position + position_offset, :])
// tokens [B] int64, position [1] int64 (the position of this step's token), tables [rows, H].
void embed_tokens(const int64_t* tokens, const int64_t* position, const void* token_table,
                  const void* position_table, int64_t position_offset, void* out, int64_t batch, int64_t hidden,
                  DType dtype, cudaStream_t stream);

enum class NormType { kLayerNorm, kRmsNorm };

// residual[b, :] += delta[b, :] (when delta != nullptr; rounded to dtype as a separate add would be),
// then out[b, :] = norm(residual[b, :]) * weight (+ bias). RMSNorm follows HF: the normalised value
// is rounded to dtype before the weight multiply. [rows, hidden].
void add_norm(void* residual, const void* delta, const void* weight, const void* bias, void* out, int64_t rows,
              int64_t hidden, float eps, NormType norm, DType dtype, cudaStream_t stream);

enum class ActType { kGeluTanh, kGeluErf, kSilu, kRelu };

// gated: out[r, i] = act(in[r, i]) * in[r, inter + i] for in [rows, 2*inter] -> out [rows, inter]
// plain: out[r, i] = act(in[r, i]) for in/out [rows, inter]
void activation(const void* in, void* out, int64_t rows, int64_t inter, bool gated, ActType act, DType dtype,
                cudaStream_t stream);

// One decode step of attention for every sequence and head, fused:
//  - rotary embedding (rotate_half convention, first rotary_dim dims of each head) on q and k at
//    *position, from cos/sin tables [max_positions, rotary_dim / 2] (fp32);
//  - k and v written into the caches at *position;
//  - softmax(q k^T * scale) v over cache positions [0, *position].
// qkv [B, (H + 2*Hkv) * D] (q heads, then k heads, then v heads); caches [B, Hkv, capacity, D];
// out [B, H * D]. Preconditions: H % Hkv == 0, D <= 256, D % 2 == 0, *position < capacity.
// heads_per_block: -1 chooses; 0 runs the one-block-per-query-head kernel; n >= 1 the kernel grouped by K/V head with
// n query heads a block (where it fits; tests and benchmarks compare the two).
// successor_loads_early: the kernel launched next issues its whole weight's loads before its PDL wait
// (Linear::decode_loads_weight_before_input); the one-block-per-query-head kernel then lets it start before its own wait
// instead of after it (kernels/pdl.cuh, rule 3).
void decode_attention(const void* qkv, void* k_cache, void* v_cache, const int64_t* position, const float* rope_cos,
                      const float* rope_sin, void* out, int64_t batch, int64_t num_heads, int64_t num_kv_heads,
                      int64_t head_dim, int64_t rotary_dim, int64_t capacity, float scale, DType dtype,
                      cudaStream_t stream, int heads_per_block = -1, bool successor_loads_early = false);

// End of a decode step inside the graph: tokens[b] = next[b]; generated[b, *position + 1 - first] =
// next[b] when that index is in [0, generated_cols); *position += 1.
void advance_step(const int64_t* next, int64_t* tokens, int64_t* generated, int64_t* position, int64_t batch,
                  int64_t first_generated_position, int64_t generated_cols, cudaStream_t stream);

// Index of the maximum per row of logits [rows, vocab] (first index on ties, NaN as the maximum, as
// torch.argmax). `scratch`: device memory of argmax_scratch_bytes(rows, vocab), 8-byte aligned, owned by
// the caller (one per stream: the two launches pass partial results through it).
size_t argmax_scratch_bytes(int64_t rows, int64_t vocab);
void argmax_rows(const void* logits, int64_t* out, int64_t rows, int64_t vocab, void* scratch, DType dtype,
                 cudaStream_t stream);

}  // namespace qb::kernels
