// Fused decode-step kernels (contract in include/quantbench/kernels/decode_ops.h). Each is small
// and latency-bound: the point is one launch where libtorch would issue several, and positions read
// from device memory so a captured graph can be replayed step after step. All are launched with
// programmatic dependent launch (pdl.cuh): each waits for its predecessor first thing.
#include <cfloat>

#include "dtype_utils.cuh"
#include "pdl.cuh"
#include "quantbench/core/error.h"
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/decode_ops.h"

namespace qb::kernels {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void embed_tokens_kernel(const int64_t* tokens, const int64_t* position, const T* token_table,
                                    const T* position_table, int64_t position_offset, T* out, int64_t hidden) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t b = blockIdx.x;
  const T* token_row = token_table + tokens[b] * hidden;
  const T* position_row = position_table != nullptr ? position_table + (*position + position_offset) * hidden : nullptr;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    float v = to_float(token_row[i]);
    if (position_row != nullptr) v += to_float(position_row[i]);
    out[b * hidden + i] = from_float<T>(v);
  }
}

// One block per row; the row is staged in shared memory (fp32) so both norms are exact two-pass.
template <typename T>
__global__ void add_norm_kernel(T* residual, const T* delta, const T* weight, const T* bias, T* out, int64_t hidden,
                                float eps, bool rms) {
  pdl_wait();
  pdl_launch_dependents();
  extern __shared__ float row[];
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  T* res = residual + r * hidden;
  float local = 0.f;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    float v = to_float(res[i]);
    if (delta != nullptr) {
      v = round_to<T>(v + to_float(delta[r * hidden + i]));
      res[i] = from_float<T>(v);
    }
    row[i] = v;
    local += rms ? v * v : v;
  }
  const float first = block_sum(local, scratch) / static_cast<float>(hidden);
  float mean = 0.f, rstd;
  if (rms) {
    rstd = rsqrtf(first + eps);
  } else {
    mean = first;
    float centered = 0.f;
    for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
      const float d = row[i] - mean;
      centered += d * d;
    }
    rstd = rsqrtf(block_sum(centered, scratch) / static_cast<float>(hidden) + eps);
  }
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    float normed = (row[i] - mean) * rstd;
    if (rms) normed = round_to<T>(normed);  // HF casts to the input dtype before the weight
    float y = normed * to_float(weight[i]);
    if (bias != nullptr) y += to_float(bias[i]);
    out[r * hidden + i] = from_float<T>(y);
  }
}

__device__ __forceinline__ float apply_act(float x, ActType act) {
  switch (act) {
    case ActType::kGeluTanh: return 0.5f * x * (1.f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    case ActType::kGeluErf: return 0.5f * x * (1.f + erff(x * 0.7071067811865476f));
    case ActType::kSilu: return x / (1.f + __expf(-x));
    case ActType::kRelu: return fmaxf(x, 0.f);
  }
  return x;
}

template <typename T>
__global__ void activation_kernel(const T* in, T* out, int64_t rows, int64_t inter, bool gated, ActType act) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t total = rows * inter;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total; idx += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = idx / inter, i = idx % inter;
    if (gated) {
      const float a = round_to<T>(apply_act(to_float(in[r * 2 * inter + i]), act));
      out[idx] = from_float<T>(a * to_float(in[r * 2 * inter + inter + i]));
    } else {
      out[idx] = from_float<T>(apply_act(to_float(in[idx]), act));
    }
  }
}

__global__ void advance_step_kernel(const int64_t* next, int64_t* tokens, int64_t* generated, int64_t* position,
                                    int64_t batch, int64_t first_generated_position, int64_t generated_cols) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t pos = *position;
  const int64_t column = pos + 1 - first_generated_position;
  for (int64_t b = threadIdx.x; b < batch; b += blockDim.x) {
    tokens[b] = next[b];
    if (generated != nullptr && column >= 0 && column < generated_cols) generated[b * generated_cols + column] = next[b];
  }
  __syncthreads();
  if (threadIdx.x == 0) *position = pos + 1;
}

// NaN counts as the maximum (torch.argmax semantics); ties keep the first index.
__device__ __forceinline__ bool better(float v, int64_t i, float best, int64_t best_i) {
  const bool v_nan = v != v, best_nan = best != best;
  if (v_nan || best_nan) return v_nan && (!best_nan || i < best_i);
  return v > best || (v == best && i < best_i);
}

template <typename T>
__global__ void argmax_kernel(const T* logits, int64_t* out, int64_t vocab) {
  pdl_wait();
  pdl_launch_dependents();
  __shared__ float best_v[32];
  __shared__ int64_t best_i[32];
  const T* row = logits + blockIdx.x * vocab;
  float v = -INFINITY;
  int64_t idx = INT64_MAX;
  for (int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float x = to_float(row[i]);
    if (better(x, i, v, idx)) { v = x; idx = i; }
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, offset);
    const int64_t oi = __shfl_xor_sync(0xffffffffu, idx, offset);
    if (better(ov, oi, v, idx)) { v = ov; idx = oi; }
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) { best_v[warp] = v; best_i[warp] = idx; }
  __syncthreads();
  if (warp == 0) {
    const int warps = blockDim.x >> 5;
    v = lane < warps ? best_v[lane] : -INFINITY;
    idx = lane < warps ? best_i[lane] : INT64_MAX;
    for (int offset = 16; offset > 0; offset >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, v, offset);
      const int64_t oi = __shfl_xor_sync(0xffffffffu, idx, offset);
      if (better(ov, oi, v, idx)) { v = ov; idx = oi; }
    }
    if (lane == 0) out[blockIdx.x] = idx;
  }
}

}  // namespace

void embed_tokens(const int64_t* tokens, const int64_t* position, const void* token_table, const void* position_table,
                  int64_t position_offset, void* out, int64_t batch, int64_t hidden, DType dtype, cudaStream_t stream) {
  QB_DISPATCH_DTYPE(dtype, T,
    launch_pdl(embed_tokens_kernel<T>, batch, kThreads, 0, stream, tokens, position,
        static_cast<const T*>(token_table), static_cast<const T*>(position_table), position_offset,
        static_cast<T*>(out), hidden));
  QB_CUDA_CHECK_LAUNCH();
}

void add_norm(void* residual, const void* delta, const void* weight, const void* bias, void* out, int64_t rows,
              int64_t hidden, float eps, NormType norm, DType dtype, cudaStream_t stream) {
  const size_t shared_bytes = static_cast<size_t>(hidden) * sizeof(float);
  QB_CHECK(shared_bytes <= 48 * 1024, kUnsupported, "add_norm: hidden size {} exceeds the 12288 the kernel stages", hidden);
  QB_DISPATCH_DTYPE(dtype, T,
    launch_pdl(add_norm_kernel<T>, rows, kThreads * 2, shared_bytes, stream, static_cast<T*>(residual),
        static_cast<const T*>(delta), static_cast<const T*>(weight), static_cast<const T*>(bias),
        static_cast<T*>(out), hidden, eps, norm == NormType::kRmsNorm));
  QB_CUDA_CHECK_LAUNCH();
}

void activation(const void* in, void* out, int64_t rows, int64_t inter, bool gated, ActType act, DType dtype,
                cudaStream_t stream) {
  const int64_t total = rows * inter;
  const int blocks = static_cast<int>(std::min<int64_t>((total + kThreads - 1) / kThreads, 132 * 16));
  QB_DISPATCH_DTYPE(dtype, T,
    launch_pdl(activation_kernel<T>, blocks, kThreads, 0, stream, static_cast<const T*>(in), static_cast<T*>(out),
        rows, inter, gated, act));
  QB_CUDA_CHECK_LAUNCH();
}

void advance_step(const int64_t* next, int64_t* tokens, int64_t* generated, int64_t* position, int64_t batch,
                  int64_t first_generated_position, int64_t generated_cols, cudaStream_t stream) {
  launch_pdl(advance_step_kernel, 1, 128, 0, stream, next, tokens, generated, position, batch,
             first_generated_position, generated_cols);
  QB_CUDA_CHECK_LAUNCH();
}

void argmax_rows(const void* logits, int64_t* out, int64_t rows, int64_t vocab, DType dtype, cudaStream_t stream) {
  QB_DISPATCH_DTYPE(dtype, T,
    launch_pdl(argmax_kernel<T>, rows, 1024, 0, stream, static_cast<const T*>(logits), out, vocab));
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace qb::kernels
