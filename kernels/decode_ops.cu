// Fused decode-step kernels (contract in include/quantbench/kernels/decode_ops.h). Each is small
// and latency-bound: the point is one launch where libtorch would issue several, and positions read
// from device memory so a captured graph can be replayed step after step. All are launched with
// programmatic dependent launch (pdl.cuh): each waits for its predecessor first thing; the norms and the
// activation first let their successor, always a GEMV, launch (pdl.cuh, rule 3).
#include <cfloat>

#include "activation.cuh"
#include "dtype_utils.cuh"
#include "pdl.cuh"
#include "quantbench/core/error.h"
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/decode_ops.h"
#include "quantbench/kernels/device_limits.h"

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

// Mean (0 for RMSNorm) and 1 / std of a row, from each thread's partial sum of x (LayerNorm) or x^2
// (RMSNorm); LayerNorm takes a second pass, centered_sum(mean) = the thread's sum of (x - mean)^2.
template <typename CenteredSum>
__device__ __forceinline__ float2 row_stats(float local, int64_t hidden, float eps, bool rms, float* scratch,
                                            CenteredSum centered_sum) {
  const float first = block_sum(local, scratch) / static_cast<float>(hidden);
  if (rms) return make_float2(0.f, rsqrtf(first + eps));
  return make_float2(first, rsqrtf(block_sum(centered_sum(first), scratch) / static_cast<float>(hidden) + eps));
}

// One block per row; the row is staged in shared memory (fp32) so both norms are exact two-pass.
template <typename T>
__global__ void add_norm_kernel(T* residual, const T* delta, const T* weight, const T* bias, T* out, int64_t hidden,
                                float eps, bool rms) {
  pdl_launch_dependents();  // followed by a GEMV: see pdl.cuh, rule 3
  pdl_wait();
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
  const float2 stats = row_stats(local, hidden, eps, rms, scratch, [&](float mean) {
    float centered = 0.f;
    for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) centered += (row[i] - mean) * (row[i] - mean);
    return centered;
  });
  const float mean = stats.x, rstd = stats.y;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    float normed = (row[i] - mean) * rstd;
    if (rms) normed = round_to<T>(normed);  // HF casts to the input dtype before the weight
    float y = normed * to_float(weight[i]);
    if (bias != nullptr) y += to_float(bias[i]);
    out[r * hidden + i] = from_float<T>(y);
  }
}

// The same for 16-bit rows with hidden % 8 == 0 and 16-byte aligned rows (every real model): thread i
// holds 16-byte pieces i, i + blockDim, ... (CHUNKS of them) of the row in registers, and loads its
// pieces of the norm weight and bias before pdl_wait (they are constants), so only the row's own
// loads follow the kernel before.
template <typename T, int CHUNKS>
__global__ void add_norm_vec_kernel(T* residual, const T* delta, const T* weight, const T* bias, T* out,
                                    int64_t hidden, float eps, bool rms) {
  __shared__ float scratch[32];
  constexpr int kVec = 8;
  const int vecs = static_cast<int>(hidden / kVec);
  pdl_launch_dependents();  // followed by a GEMV: see pdl.cuh, rule 3
  uint4 w_raw[CHUNKS], b_raw[CHUNKS];
#pragma unroll
  for (int c = 0; c < CHUNKS; ++c) {
    const int i = threadIdx.x + c * blockDim.x;
    if (i < vecs) {
      w_raw[c] = __ldg(reinterpret_cast<const uint4*>(weight) + i);
      if (bias != nullptr) b_raw[c] = __ldg(reinterpret_cast<const uint4*>(bias) + i);
    }
  }
  pdl_wait();
  const int64_t r = blockIdx.x;
  uint4* res = reinterpret_cast<uint4*>(residual + r * hidden);
  const uint4* add = delta != nullptr ? reinterpret_cast<const uint4*>(delta + r * hidden) : nullptr;
  float v[CHUNKS][kVec];
  float local = 0.f;
#pragma unroll
  for (int c = 0; c < CHUNKS; ++c) {
    const int i = threadIdx.x + c * blockDim.x;
    if (i < vecs) {
      uint4 raw = res[i];
      T* e = reinterpret_cast<T*>(&raw);
      if (add != nullptr) {
        uint4 d_raw = add[i];
        const T* d = reinterpret_cast<const T*>(&d_raw);
#pragma unroll
        for (int j = 0; j < kVec; ++j) e[j] = from_float<T>(to_float(e[j]) + to_float(d[j]));
        res[i] = raw;
      }
#pragma unroll
      for (int j = 0; j < kVec; ++j) {
        v[c][j] = to_float(e[j]);
        local += rms ? v[c][j] * v[c][j] : v[c][j];
      }
    }
  }
  const float2 stats = row_stats(local, hidden, eps, rms, scratch, [&](float mean) {
    float centered = 0.f;
#pragma unroll
    for (int c = 0; c < CHUNKS; ++c) {
      if (threadIdx.x + c * blockDim.x < vecs) {
#pragma unroll
        for (int j = 0; j < kVec; ++j) centered += (v[c][j] - mean) * (v[c][j] - mean);
      }
    }
    return centered;
  });
  const float mean = stats.x, rstd = stats.y;
  uint4* y = reinterpret_cast<uint4*>(out + r * hidden);
#pragma unroll
  for (int c = 0; c < CHUNKS; ++c) {
    const int i = threadIdx.x + c * blockDim.x;
    if (i < vecs) {
      const T* w = reinterpret_cast<const T*>(&w_raw[c]);
      const T* b = reinterpret_cast<const T*>(&b_raw[c]);
      uint4 o_raw;
      T* o = reinterpret_cast<T*>(&o_raw);
#pragma unroll
      for (int j = 0; j < kVec; ++j) {
        float normed = (v[c][j] - mean) * rstd;
        if (rms) normed = round_to<T>(normed);  // HF casts to the input dtype before the weight
        float out_j = normed * to_float(w[j]);
        if (bias != nullptr) out_j += to_float(b[j]);
        o[j] = from_float<T>(out_j);
      }
      y[i] = o_raw;
    }
  }
}

template <typename T>
__global__ void activation_kernel(const T* in, T* out, int64_t rows, int64_t inter, bool gated, ActType act) {
  pdl_launch_dependents();  // followed by the down projection's GEMV: see pdl.cuh, rule 3
  pdl_wait();
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

// The same values, 16 bytes at a time, one row per blockIdx.y (grid-strided): no 64-bit division per element, which
// made the scalar kernel the slowest elementwise step of a prefill (Qwen2-7B, 512 tokens: 47 us a layer for 58 MB).
// Needs inter % (16 / sizeof(T)) == 0 (rows then start 16-byte aligned in `in` and `out`).
template <typename T>
__global__ void activation_vec_kernel(const T* in, T* out, int64_t rows, int64_t inter, bool gated, ActType act) {
  pdl_launch_dependents();  // as activation_kernel
  pdl_wait();
  constexpr int kVec = 16 / sizeof(T);
  const int64_t vecs = inter / kVec, in_row = gated ? 2 * inter : inter;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    for (int64_t v = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; v < vecs; v += int64_t(gridDim.x) * blockDim.x) {
      const uint4 a = *reinterpret_cast<const uint4*>(in + r * in_row + v * kVec);
      const uint4 b = gated ? *reinterpret_cast<const uint4*>(in + r * in_row + inter + v * kVec) : a;
      const T* av = reinterpret_cast<const T*>(&a);
      const T* bv = reinterpret_cast<const T*>(&b);
      uint4 o;
      T* ov = reinterpret_cast<T*>(&o);
#pragma unroll
      for (int j = 0; j < kVec; ++j) {
        ov[j] = gated ? from_float<T>(round_to<T>(apply_act(to_float(av[j]), act)) * to_float(bv[j]))
                      : from_float<T>(apply_act(to_float(av[j]), act));
      }
      *reinterpret_cast<uint4*>(out + r * inter + v * kVec) = o;
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

// Argmax in two launches: argmax_partial_kernel reduces slices of kArgmaxSlice logits, one block each
// (grid parts x rows; one block per row left a 152k vocabulary to a single SM, latency-bound), into
// scratch [rows][parts] (value, index); argmax_final_kernel reduces each row's parts. `better` is a
// total order (value, then lower index), so the split does not change the answer.
constexpr int kArgmaxThreads = 256;
constexpr int kArgmaxSlice = kArgmaxThreads * 8;

__device__ __forceinline__ void argmax_block(float& v, int64_t& idx, float* best_v, int64_t* best_i) {
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
  }
}

template <typename T>
__global__ void __launch_bounds__(kArgmaxThreads) argmax_partial_kernel(const T* logits, int64_t vocab,
                                                                         float* part_v, int64_t* part_i) {
  pdl_wait();
  pdl_launch_dependents();
  __shared__ float best_v[32];
  __shared__ int64_t best_i[32];
  const int64_t row = blockIdx.y, part = blockIdx.x, parts = gridDim.x;
  const T* logit_row = logits + row * vocab;
  const int64_t end = min(vocab, (part + 1) * kArgmaxSlice);
  float v = -INFINITY;
  int64_t idx = INT64_MAX;
#pragma unroll 8
  for (int64_t i = part * kArgmaxSlice + threadIdx.x; i < end; i += kArgmaxThreads) {
    const float x = to_float(logit_row[i]);
    if (better(x, i, v, idx)) { v = x; idx = i; }
  }
  argmax_block(v, idx, best_v, best_i);
  if (threadIdx.x == 0) {
    part_v[row * parts + part] = v;
    part_i[row * parts + part] = idx;
  }
}

__global__ void argmax_final_kernel(const float* part_v, const int64_t* part_i, int64_t parts, int64_t* out) {
  pdl_wait();
  pdl_launch_dependents();
  __shared__ float best_v[32];
  __shared__ int64_t best_i[32];
  const int64_t row = blockIdx.x;
  float v = -INFINITY;
  int64_t idx = INT64_MAX;
  for (int64_t p = threadIdx.x; p < parts; p += blockDim.x) {
    if (better(part_v[row * parts + p], part_i[row * parts + p], v, idx)) {
      v = part_v[row * parts + p];
      idx = part_i[row * parts + p];
    }
  }
  argmax_block(v, idx, best_v, best_i);
  if (threadIdx.x == 0) out[row] = idx;
}

template <typename T>
void launch_add_norm_vec(void* residual, const void* delta, const void* weight, const void* bias, void* out,
                         int64_t rows, int64_t hidden, float eps, bool rms, int chunks, int threads,
                         cudaStream_t stream) {
  T* res = static_cast<T*>(residual);
  const T* d = static_cast<const T*>(delta);
  const T* w = static_cast<const T*>(weight);
  const T* b = static_cast<const T*>(bias);
  T* o = static_cast<T*>(out);
  switch (chunks) {
    case 1: launch_pdl(add_norm_vec_kernel<T, 1>, rows, threads, 0, stream, res, d, w, b, o, hidden, eps, rms); break;
    case 2: launch_pdl(add_norm_vec_kernel<T, 2>, rows, threads, 0, stream, res, d, w, b, o, hidden, eps, rms); break;
    case 3: launch_pdl(add_norm_vec_kernel<T, 3>, rows, threads, 0, stream, res, d, w, b, o, hidden, eps, rms); break;
    default: launch_pdl(add_norm_vec_kernel<T, 4>, rows, threads, 0, stream, res, d, w, b, o, hidden, eps, rms); break;
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
  const auto aligned = [](const void* p) { return p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  const int64_t vecs = hidden / 8;
  const int chunks = static_cast<int>((vecs + 1023) / 1024);
  if (dtype != DType::kF32 && hidden % 8 == 0 && chunks <= 4 && aligned(residual) && aligned(delta) &&
      aligned(weight) && aligned(bias) && aligned(out)) {
    const int threads = static_cast<int>(((vecs + chunks - 1) / chunks + 31) / 32 * 32);
    const bool rms = norm == NormType::kRmsNorm;
    if (dtype == DType::kF16) {
      launch_add_norm_vec<__half>(residual, delta, weight, bias, out, rows, hidden, eps, rms, chunks, threads, stream);
    } else {
      launch_add_norm_vec<__nv_bfloat16>(residual, delta, weight, bias, out, rows, hidden, eps, rms, chunks, threads,
                                         stream);
    }
    QB_CUDA_CHECK_LAUNCH();
    return;
  }
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
  const int64_t vec = dtype == DType::kF32 ? 4 : 8;
  const bool aligned = reinterpret_cast<uintptr_t>(in) % 16 == 0 && reinterpret_cast<uintptr_t>(out) % 16 == 0;
  // The vector kernel where its 16-byte pieces alone fill the GPU (prefill, batched decode); small grids (batch-1
  // decode, latency-bound) keep one element per thread.
  const int64_t sms = sm_count();
  if (inter % vec == 0 && aligned && total / vec >= sms * kThreads) {
    const dim3 grid(static_cast<unsigned>(std::min<int64_t>((inter / vec + kThreads - 1) / kThreads, 1024)),
                    static_cast<unsigned>(std::min<int64_t>(rows, 65535)));
    QB_DISPATCH_DTYPE(dtype, T,
      launch_pdl(activation_vec_kernel<T>, grid, kThreads, 0, stream, static_cast<const T*>(in), static_cast<T*>(out),
          rows, inter, gated, act));
    QB_CUDA_CHECK_LAUNCH();
    return;
  }
  const int blocks = static_cast<int>(std::min<int64_t>((total + kThreads - 1) / kThreads, sms * 16));
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

size_t argmax_scratch_bytes(int64_t rows, int64_t vocab) {
  const int64_t parts = (vocab + kArgmaxSlice - 1) / kArgmaxSlice;
  return static_cast<size_t>(rows * parts) * (sizeof(float) + sizeof(int64_t));
}

void argmax_rows(const void* logits, int64_t* out, int64_t rows, int64_t vocab, void* scratch, DType dtype,
                 cudaStream_t stream) {
  QB_CHECK(rows >= 1 && rows < 65536 && vocab >= 1, kInvalidInput, "argmax_rows: {} rows x {} logits", rows, vocab);
  const int64_t parts = (vocab + kArgmaxSlice - 1) / kArgmaxSlice;
  int64_t* part_i = static_cast<int64_t*>(scratch);  // [rows][parts], then the values: 8-byte aligned first
  float* part_v = reinterpret_cast<float*>(part_i + rows * parts);
  const dim3 grid(static_cast<unsigned>(parts), static_cast<unsigned>(rows));
  QB_DISPATCH_DTYPE(dtype, T,
    launch_pdl(argmax_partial_kernel<T>, grid, kArgmaxThreads, 0, stream, static_cast<const T*>(logits), vocab,
               part_v, part_i));
  QB_CUDA_CHECK_LAUNCH();
  launch_pdl(argmax_final_kernel, static_cast<unsigned>(rows), 128, 0, stream, part_v, part_i, parts, out);
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace qb::kernels
