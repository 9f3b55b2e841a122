// The split form of one decode step of attention (contract in include/quantbench/kernels/decode_ops.h;
// the whole form and the choice between them in decode_attention.cu).
//
// Why: the whole form (one 256-thread block per query head, every cached row in that block) needs a whole
// SM's registers, so its blocks wait for SMs the qkv GEMV has fully left, and its pre-wait loads and the
// output projection's blocks on those SMs come after that. Here the work of one (sequence, K/V head) is
// spread over a cluster of kSplits small blocks (128 threads, <= 64 registers, a few tens of KB of shared
// memory: what a 4-bit GEMV's two resident blocks leave free on an SM), so they start while the qkv GEMV
// still runs and fill shared memory with their cached rows by cp.async (no registers held) before the PDL
// wait. After the wait a block only stages q and the new k, v, and computes over rows already on chip.
//
// Grid: x = kSplits (one cluster), y = sequence x K/V head x head chunk. A block serves the query heads
// [head0, head0 + gc) of one K/V head (gc <= kMaxHeads; groups larger than that take several chunks, each
// reading the same K/V rows). Positions 0..pos (pos = *position, the new token's) are cut into kSplits runs
// of per = ceil((pos + 1) / kSplits) rows; split s takes [s * per, min(pos + 1, (s + 1) * per)) (possibly
// none). The split holding pos takes the new k, v from qkv (rotated, rounded to T: the values the cache
// gets) into its shared rows; its chunk-0 block writes them into the caches.
//
// Per block, after the wait:
//  1. q rotated and rounded to T (as transformers' rotated q is), held as fp32 [gc][D + 4];
//  2. scores s[g][r] = q_g . K_r * scale (one thread per (g, r), g fastest), fp32, four FMA chains;
//  3. per query head (a warp each): m = max_r s, p = exp(s - m) in place, l = sum p;
//  4. o[g][d] = sum_r p[g][r] V_r[d] (thread (g, 16-byte piece), rows shared by `sub` lanes, shuffle-added);
//  5. cluster barrier; then each block combines a kSplits-th of the (g, piece) items over the cluster's
//     partials through distributed shared memory: M = max m_s, out = sum_s e^(m_s - M) o_s / sum_s e^(m_s - M) l_s;
//     a last cluster barrier keeps every block's shared memory alive until all reads are done.
// Shared memory (16-byte aligned pieces): K [rows_cap][D + kVec] (T; one 16-byte pad a row so that threads
// reading the same column of different rows hit different banks) | V [rows_cap][D] (T) | q [gc][D + 4] |
// p [gc][rows_cap4] | o [gc][D] | m [gc] | l [gc] | cos, sin [kMaxRotaryHalf] (fp32).
#include <cooperative_groups.h>

#include <cfloat>

#include "cp_async.cuh"
#include "decode_attention_split.cuh"
#include "dtype_utils.cuh"
#include "pdl.cuh"
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/device_limits.h"

namespace qb::kernels {
namespace {

namespace cg = cooperative_groups;

constexpr int kSplits = 8;  // blocks of a cluster (the portable maximum)
constexpr int kThreads = 128;
constexpr int kMaxHeads = 8;         // query heads a block serves
constexpr int kMaxRotaryHalf = 128;  // rotary_dim <= head_dim <= 256
// Beyond this a block's rows crowd out the GEMV blocks it is meant to share an SM with; the whole form
// streams long caches instead (the split form was measured at 256- and 514-row caches).
constexpr int64_t kMaxSharedBytes = 100 * 1024;

struct Carve {  // byte offsets into the block's dynamic shared memory
  int64_t k, v, q, p, o, m, l, cos, sin, total;
};

__host__ __device__ inline int64_t round16(int64_t bytes) { return (bytes + 15) / 16 * 16; }

__host__ __device__ inline Carve carve(int64_t head_dim, int64_t rows_cap, int64_t heads, int64_t elem_bytes) {
  const int64_t vec = 16 / elem_bytes;
  Carve c{};
  c.k = 0;
  c.v = c.k + rows_cap * (head_dim + vec) * elem_bytes;
  c.q = c.v + rows_cap * head_dim * elem_bytes;
  c.p = c.q + heads * (head_dim + 4) * 4;
  c.o = c.p + round16(heads * rows_cap * 4);
  c.m = c.o + heads * head_dim * 4;
  c.l = c.m + round16(heads * 4);
  c.cos = c.l + round16(heads * 4);
  c.sin = c.cos + kMaxRotaryHalf * 4;
  c.total = c.sin + kMaxRotaryHalf * 4;
  return c;
}

// Element d of a head row x (global) after rotate_half over its first rotary_dim dims (cos, sin in shared).
template <typename T>
__device__ __forceinline__ float rotated(const T* x, int d, int rotary_dim, const float* cos_s, const float* sin_s) {
  if (d >= rotary_dim) return to_float(x[d]);
  const int half = rotary_dim / 2, i = d % half;
  return d < half ? to_float(x[d]) * cos_s[i] - to_float(x[d + half]) * sin_s[i]
                  : to_float(x[d]) * cos_s[i] + to_float(x[d - half]) * sin_s[i];
}

template <typename T>
__global__ void __launch_bounds__(kThreads, 8) decode_attention_split_kernel(
    const T* qkv, T* k_cache, T* v_cache, const int64_t* position, const float* rope_cos, const float* rope_sin,
    T* out, int num_heads, int num_kv_heads, int head_dim, int rotary_dim, int64_t capacity, int rows_cap,
    int heads_per_block, int chunks, float scale) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ __align__(16) unsigned char shared_raw[];
  constexpr int kVec = 16 / sizeof(T);
  cg::cluster_group cluster = cg::this_cluster();
  const int split = static_cast<int>(cluster.block_rank());
  const int group = num_heads / num_kv_heads;
  int y = blockIdx.y;
  const int chunk = y % chunks;
  y /= chunks;
  const int kv_head = y % num_kv_heads, b = y / num_kv_heads;
  const int head0 = kv_head * group + chunk * heads_per_block;
  const int gc = min(heads_per_block, group - chunk * heads_per_block);
  const int pieces = head_dim / kVec, k_stride = head_dim + kVec, q_stride = head_dim + 4;
  const Carve at = carve(head_dim, rows_cap, heads_per_block, sizeof(T));
  T* k_s = reinterpret_cast<T*>(shared_raw + at.k);
  T* v_s = reinterpret_cast<T*>(shared_raw + at.v);
  float* q_s = reinterpret_cast<float*>(shared_raw + at.q);
  float* p_s = reinterpret_cast<float*>(shared_raw + at.p);
  float* o_s = reinterpret_cast<float*>(shared_raw + at.o);
  float* m_s = reinterpret_cast<float*>(shared_raw + at.m);
  float* l_s = reinterpret_cast<float*>(shared_raw + at.l);
  float* cos_s = reinterpret_cast<float*>(shared_raw + at.cos);
  float* sin_s = reinterpret_cast<float*>(shared_raw + at.sin);

  // ---- before the PDL wait: this split's cached rows into shared memory, the step's rotary row ----
  // Rows below pos were written by kernels at least two launches back (pdl.cuh); only qkv is the
  // predecessor's. The output projection's GEMV follows: let it start loading its weights now (rule 3).
  pdl_launch_dependents();
  const int64_t pos = *position, len = pos + 1;
  const int64_t per = (len + kSplits - 1) / kSplits;
  const int64_t t0 = min(len, split * per), t1 = min(len, t0 + per);
  const int n = static_cast<int>(t1 - t0);
  const int64_t cached_end = min(t1, pos);
  const int cached = cached_end > t0 ? static_cast<int>(cached_end - t0) : 0;
  const int64_t cache_base = (int64_t(b) * num_kv_heads + kv_head) * capacity * head_dim;
  const T* keys = k_cache + cache_base + t0 * head_dim;
  const T* values = v_cache + cache_base + t0 * head_dim;
  for (int i = threadIdx.x; i < cached * pieces; i += kThreads) {
    const int r = i / pieces, c = i % pieces;
    cp_async16(smem_address(k_s + r * k_stride + c * kVec), keys + int64_t(r) * head_dim + c * kVec);
    cp_async16(smem_address(v_s + r * head_dim + c * kVec), values + int64_t(r) * head_dim + c * kVec);
  }
  cp_async_commit();
  const bool rotary = rope_cos != nullptr && rotary_dim > 0;
  const int half = rotary ? rotary_dim / 2 : 0;
  for (int i = threadIdx.x; i < half; i += kThreads) {
    cos_s[i] = rope_cos[pos * half + i];
    sin_s[i] = rope_sin[pos * half + i];
  }
  const int rot_dims = rotary ? rotary_dim : 0;
  pdl_wait();

  // ---- 1. q (rotated, rounded to T); the new k, v into the split that holds pos ----
  __syncthreads();  // cos_s / sin_s
  const int64_t qkv_row = int64_t(num_heads + 2 * num_kv_heads) * head_dim;
  const T* q_in = qkv + b * qkv_row + int64_t(head0) * head_dim;
  for (int i = threadIdx.x; i < gc * head_dim; i += kThreads) {
    const int g = i / head_dim, d = i % head_dim;
    q_s[g * q_stride + d] = round_to<T>(rotated(q_in + g * head_dim, d, rot_dims, cos_s, sin_s));
  }
  if (pos >= t0 && pos < t1) {
    const int r = static_cast<int>(pos - t0);
    const T* k_in = qkv + b * qkv_row + int64_t(num_heads + kv_head) * head_dim;
    const T* v_in = k_in + int64_t(num_kv_heads) * head_dim;
    for (int d = threadIdx.x; d < head_dim; d += kThreads) {
      const T k_new = from_float<T>(rotated(k_in, d, rot_dims, cos_s, sin_s)), v_new = v_in[d];
      k_s[r * k_stride + d] = k_new;
      v_s[r * head_dim + d] = v_new;
      if (chunk == 0) {
        k_cache[cache_base + pos * head_dim + d] = k_new;
        v_cache[cache_base + pos * head_dim + d] = v_new;
      }
    }
  }
  cp_async_wait_all();
  __syncthreads();

  // ---- 2. scores ----
  for (int i = threadIdx.x; i < gc * n; i += kThreads) {
    const int g = i % gc, r = i / gc;
    const float* q = q_s + g * q_stride;
    const T* k = k_s + r * k_stride;
    float acc4[4] = {0.f, 0.f, 0.f, 0.f};
    for (int d0 = 0; d0 < head_dim; d0 += kVec) {
      const uint4 raw = *reinterpret_cast<const uint4*>(k + d0);
      const T* kv = reinterpret_cast<const T*>(&raw);
#pragma unroll
      for (int j = 0; j < kVec; j += 4) {
        const float4 qv = *reinterpret_cast<const float4*>(q + d0 + j);
        acc4[0] += qv.x * to_float(kv[j]);
        acc4[1] += qv.y * to_float(kv[j + 1]);
        acc4[2] += qv.z * to_float(kv[j + 2]);
        acc4[3] += qv.w * to_float(kv[j + 3]);
      }
    }
    p_s[g * rows_cap + r] = ((acc4[0] + acc4[1]) + (acc4[2] + acc4[3])) * scale;
  }
  __syncthreads();

  // ---- 3. softmax statistics of this split, a warp per query head ----
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int g = warp; g < gc; g += kThreads / 32) {
    float* s = p_s + g * rows_cap;
    float m = -FLT_MAX;
    for (int r = lane; r < n; r += 32) m = fmaxf(m, s[r]);
    m = warp_max(m);
    float l = 0.f;
    for (int r = lane; r < n; r += 32) {
      const float p = __expf(s[r] - m);
      s[r] = p;
      l += p;
    }
    l = warp_sum(l);
    if (lane == 0) {
      m_s[g] = m;
      l_s[g] = l;
    }
  }
  __syncthreads();

  // ---- 4. this split's unnormalised output: `sub` lanes share an item's rows ----
  const int items = gc * pieces;
  int sub = 1;
  while (sub < 16 && 2 * sub * items <= kThreads) sub *= 2;
  for (int base = 0; base < items * sub; base += kThreads) {  // the same trip count in every thread
    const int i = base + threadIdx.x, item = i / sub, part = i % sub;
    float acc[kVec];
#pragma unroll
    for (int j = 0; j < kVec; ++j) acc[j] = 0.f;
    const int g = item / pieces, c = item % pieces;
    if (item < items) {
      for (int r = part; r < n; r += sub) {
        const float p = p_s[g * rows_cap + r];
        const uint4 raw = *reinterpret_cast<const uint4*>(v_s + r * head_dim + c * kVec);
        const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
        for (int j = 0; j < kVec; ++j) acc[j] += p * to_float(v[j]);
      }
    }
    for (int offset = sub / 2; offset > 0; offset >>= 1) {
#pragma unroll
      for (int j = 0; j < kVec; ++j) acc[j] += __shfl_xor_sync(0xFFFFFFFFu, acc[j], offset);
    }
    if (item < items && part == 0) {
#pragma unroll
      for (int j = 0; j < kVec; ++j) o_s[g * head_dim + c * kVec + j] = acc[j];
    }
  }

  // ---- 5. combine the cluster's partials; block `split` takes items split, split + kSplits, ... ----
  cluster.sync();
  T* out_row = out + int64_t(b) * num_heads * head_dim + int64_t(head0) * head_dim;
  for (int item = split + kSplits * static_cast<int>(threadIdx.x); item < items; item += kSplits * kThreads) {
    const int g = item / pieces, c = item % pieces;
    float top = -FLT_MAX;
#pragma unroll
    for (int s = 0; s < kSplits; ++s) top = fmaxf(top, cluster.map_shared_rank(m_s, s)[g]);
    float total = 0.f, acc[kVec];
#pragma unroll
    for (int j = 0; j < kVec; ++j) acc[j] = 0.f;
#pragma unroll 2
    for (int s = 0; s < kSplits; ++s) {
      const float w = __expf(cluster.map_shared_rank(m_s, s)[g] - top);
      total += w * cluster.map_shared_rank(l_s, s)[g];
      const float* o = cluster.map_shared_rank(o_s, s) + g * head_dim + c * kVec;
#pragma unroll
      for (int j = 0; j < kVec; j += 4) {
        const float4 ov = *reinterpret_cast<const float4*>(o + j);
        acc[j] += w * ov.x;
        acc[j + 1] += w * ov.y;
        acc[j + 2] += w * ov.z;
        acc[j + 3] += w * ov.w;
      }
    }
    const float inv = 1.f / total;
#pragma unroll
    for (int j = 0; j < kVec; ++j) out_row[g * head_dim + c * kVec + j] = from_float<T>(acc[j] * inv);
  }
  cluster.sync();  // no block leaves while another still reads its shared memory
#endif
}

struct SplitShape {
  int64_t rows_cap, heads_per_block, chunks;
  Carve carve;
};

SplitShape split_shape(int64_t num_heads, int64_t num_kv_heads, int64_t head_dim, int64_t capacity,
                       int64_t elem_bytes) {
  SplitShape s{};
  const int64_t group = num_heads / num_kv_heads;
  s.rows_cap = (capacity + kSplits - 1) / kSplits;
  s.heads_per_block = group < kMaxHeads ? group : kMaxHeads;
  s.chunks = (group + s.heads_per_block - 1) / s.heads_per_block;
  s.carve = carve(head_dim, s.rows_cap, s.heads_per_block, elem_bytes);
  return s;
}

}  // namespace

bool decode_attention_split_fits(int64_t num_heads, int64_t num_kv_heads, int64_t head_dim, int64_t rotary_dim,
                                 int64_t capacity, int64_t elem_bytes) {
  if (compute_capability() < 90 || num_kv_heads <= 0 || num_heads % num_kv_heads != 0) return false;
  if (head_dim % (16 / elem_bytes) != 0 || head_dim > 2 * kMaxRotaryHalf || rotary_dim > head_dim) return false;
  return split_shape(num_heads, num_kv_heads, head_dim, capacity, elem_bytes).carve.total <= kMaxSharedBytes;
}

void decode_attention_split(const void* qkv, void* k_cache, void* v_cache, const int64_t* position,
                            const float* rope_cos, const float* rope_sin, void* out, int64_t batch, int64_t num_heads,
                            int64_t num_kv_heads, int64_t head_dim, int64_t rotary_dim, int64_t capacity, float scale,
                            DType dtype, cudaStream_t stream) {
  const int64_t elem_bytes = dtype == DType::kF32 ? 4 : 2;
  const SplitShape shape = split_shape(num_heads, num_kv_heads, head_dim, capacity, elem_bytes);
  static const bool configured = [] {
    QB_CUDA_CHECK(cudaFuncSetAttribute(decode_attention_split_kernel<float>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxSharedBytes));
    QB_CUDA_CHECK(cudaFuncSetAttribute(decode_attention_split_kernel<__half>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxSharedBytes));
    QB_CUDA_CHECK(cudaFuncSetAttribute(decode_attention_split_kernel<__nv_bfloat16>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxSharedBytes));
    return true;
  }();
  (void)configured;
  cudaLaunchAttribute attributes[2]{};
  attributes[0].id = cudaLaunchAttributeClusterDimension;
  attributes[0].val.clusterDim.x = kSplits;
  attributes[0].val.clusterDim.y = 1;
  attributes[0].val.clusterDim.z = 1;
  attributes[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attributes[1].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(kSplits, static_cast<unsigned>(batch * num_kv_heads * shape.chunks));
  config.blockDim = dim3(kThreads);
  config.dynamicSmemBytes = static_cast<size_t>(shape.carve.total);
  config.stream = stream;
  config.attrs = attributes;
  config.numAttrs = pdl_enabled() ? 2 : 1;
  QB_DISPATCH_DTYPE(dtype, T, {
    QB_CUDA_CHECK(cudaLaunchKernelEx(&config, decode_attention_split_kernel<T>, static_cast<const T*>(qkv),
                                     static_cast<T*>(k_cache), static_cast<T*>(v_cache), position, rope_cos, rope_sin,
                                     static_cast<T*>(out), static_cast<int>(num_heads),
                                     static_cast<int>(num_kv_heads), static_cast<int>(head_dim),
                                     static_cast<int>(rotary_dim), capacity, static_cast<int>(shape.rows_cap),
                                     static_cast<int>(shape.heads_per_block), static_cast<int>(shape.chunks), scale));
  });
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace qb::kernels
