// Prefill kernels (contract in include/quantbench/kernels/prefill_ops.h).
//
// prefill_split_rope replaces, per layer, the ~14 torch launches of the eager path (cos / sin concatenated and
// cast, narrow, neg, cat, two multiplies, add, per q and k; the transposes' copies into the cache): ~70 us a layer
// on Qwen2-7B at 512 tokens (ncu, BENCHMARKS.md) for ~10 MB of traffic. One thread per output element; grid.y
// walks the B * T token rows, grid.x the (H + 2 Hkv) * D columns of a row.
#include <algorithm>

#include "dtype_utils.cuh"
#include "quantbench/core/error.h"
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/prefill_ops.h"

namespace qb::kernels {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kThreads) prefill_split_rope_kernel(
    const T* qkv, const float* rope_cos, const float* rope_sin, T* q_out, T* k_out, T* v_out, int64_t kv_ld,
    int64_t rows, int tokens, int num_heads, int num_kv_heads, int head_dim, int rotary_dim) {
  const int cols = (num_heads + 2 * num_kv_heads) * head_dim, half = rotary_dim / 2;
  for (int64_t row = blockIdx.y; row < rows; row += gridDim.y) {
    const int64_t b = row / tokens;
    const int t = static_cast<int>(row - b * tokens);
    const T* in = qkv + row * cols;
    for (int col = blockIdx.x * kThreads + threadIdx.x; col < cols; col += gridDim.x * kThreads) {
      const int slot = col / head_dim, d = col - slot * head_dim;
      T value = in[col];
      if (slot < num_heads + num_kv_heads && d < rotary_dim) {  // q or k: rotate (v never)
        const int i = d < half ? d : d - half;
        const float c = to_float(from_float<T>(rope_cos[int64_t(t) * half + i]));
        const float s = to_float(from_float<T>(rope_sin[int64_t(t) * half + i]));
        const float x = to_float(value);
        const float partner = to_float(in[col + (d < half ? half : -half)]);
        const float rotated_half = d < half ? -partner : partner;
        // __fmul_rn / __fadd_rn: never contracted into an FMA (the torch ops round each product; for fp32 too).
        value = from_float<T>(__fadd_rn(round_to<T>(__fmul_rn(x, c)), round_to<T>(__fmul_rn(rotated_half, s))));
      }
      if (slot < num_heads) {
        q_out[((b * num_heads + slot) * tokens + t) * int64_t(head_dim) + d] = value;
      } else if (slot < num_heads + num_kv_heads) {
        k_out[(b * num_kv_heads + (slot - num_heads)) * kv_ld + int64_t(t) * head_dim + d] = value;
      } else {
        v_out[(b * num_kv_heads + (slot - num_heads - num_kv_heads)) * kv_ld + int64_t(t) * head_dim + d] = value;
      }
    }
  }
}

}  // namespace

void prefill_split_rope(const void* qkv, const float* rope_cos, const float* rope_sin, void* q_out, void* k_out,
                        void* v_out, int64_t kv_ld, int64_t batch, int64_t tokens, int64_t num_heads,
                        int64_t num_kv_heads, int64_t head_dim, int64_t rotary_dim, DType dtype, cudaStream_t stream) {
  QB_CHECK(batch > 0 && tokens > 0 && num_heads > 0 && num_kv_heads > 0 && head_dim > 0 && rotary_dim % 2 == 0 &&
               rotary_dim <= head_dim && (rotary_dim == 0 || (rope_cos != nullptr && rope_sin != nullptr)) &&
               kv_ld >= tokens * head_dim && (num_heads + 2 * num_kv_heads) * head_dim < (int64_t{1} << 31) &&
               tokens < (int64_t{1} << 31),
           kInvalidInput, "prefill_split_rope: bad sizes (B={} T={} H={} Hkv={} D={} rotary={} kv_ld={})", batch,
           tokens, num_heads, num_kv_heads, head_dim, rotary_dim, kv_ld);
  const int64_t cols = (num_heads + 2 * num_kv_heads) * head_dim, rows = batch * tokens;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>((cols + kThreads - 1) / kThreads, 1024)),
                  static_cast<unsigned>(std::min<int64_t>(rows, 65535)));
  QB_DISPATCH_DTYPE(dtype, T,
    prefill_split_rope_kernel<T><<<grid, kThreads, 0, stream>>>(
        static_cast<const T*>(qkv), rope_cos, rope_sin, static_cast<T*>(q_out), static_cast<T*>(k_out),
        static_cast<T*>(v_out), kv_ld, rows, static_cast<int>(tokens), static_cast<int>(num_heads),
        static_cast<int>(num_kv_heads), static_cast<int>(head_dim), static_cast<int>(rotary_dim)));
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace qb::kernels
