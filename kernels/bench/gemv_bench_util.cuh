// Shared by bench_dense_gemv.cu and bench_int8.cu: error checks, random fills, the copy-bandwidth
// probe, and graph-based timing (a captured graph of `launches` calls rotating over weight buffers
// too large for L2 together, replayed; median over replays, per call).
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#define BENCH_CUDA(call)                                                                          \
  do {                                                                                            \
    cudaError_t bench_status_ = (call);                                                           \
    if (bench_status_ != cudaSuccess) {                                                           \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(bench_status_)); \
      std::exit(2);                                                                               \
    }                                                                                             \
  } while (0)

#define BENCH_CUBLAS(call)                                                                        \
  do {                                                                                            \
    cublasStatus_t bench_status_ = (call);                                                        \
    if (bench_status_ != CUBLAS_STATUS_SUCCESS) {                                                 \
      std::fprintf(stderr, "%s:%d: %s: cuBLAS status %d\n", __FILE__, __LINE__, #call, int(bench_status_)); \
      std::exit(2);                                                                               \
    }                                                                                             \
  } while (0)

namespace bench {

inline uint64_t fresh_seed() {
  return static_cast<uint64_t>(std::chrono::high_resolution_clock::now().time_since_epoch().count());
}

__device__ __forceinline__ uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

// Approximately normal values (sum of 4 uniforms, centred) times `scale`.
template <typename T>
__global__ void fill_normal_kernel(T* out, int64_t n, uint64_t seed, float scale) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const uint64_t h = mix(seed ^ mix(static_cast<uint64_t>(i)));
    float s = 0.0f;
    for (int j = 0; j < 4; ++j) s += static_cast<float>((h >> (16 * j)) & 0xffff) / 65535.0f;
    const float v = (s - 2.0f) * 1.7320508f * scale;
    if constexpr (std::is_same_v<T, float>) {
      out[i] = v;
    } else if constexpr (std::is_same_v<T, __half>) {
      out[i] = __float2half_rn(v);
    } else {
      out[i] = __float2bfloat16_rn(v);
    }
  }
}

__global__ void fill_int8_kernel(int8_t* out, int64_t rows, int64_t cols, int64_t ld, uint64_t seed) {
  const int64_t n = rows * ld;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c = i % ld;
    out[i] = c < cols ? static_cast<int8_t>(static_cast<int>(mix(seed ^ mix(static_cast<uint64_t>(i))) % 255) - 127)
                      : int8_t{0};
  }
}

// Fills run on the legacy default stream; the benchmarks use a non-blocking stream, so every fill
// synchronizes the device before returning.
template <typename T>
void fill_normal(T* out, int64_t n, float scale) {
  fill_normal_kernel<T><<<1024, 256>>>(out, n, fresh_seed(), scale);
  BENCH_CUDA(cudaGetLastError());
  BENCH_CUDA(cudaDeviceSynchronize());
}

inline void fill_int8(int8_t* out, int64_t rows, int64_t cols, int64_t ld) {
  fill_int8_kernel<<<1024, 256>>>(out, rows, cols, ld, fresh_seed());
  BENCH_CUDA(cudaGetLastError());
  BENCH_CUDA(cudaDeviceSynchronize());
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// 1 GiB device-to-device copy; bytes read + bytes written over the median time.
inline double copy_bandwidth_gbps() {
  const size_t bytes = size_t{1} << 30;
  void *a = nullptr, *b = nullptr;
  BENCH_CUDA(cudaMalloc(&a, bytes));
  BENCH_CUDA(cudaMalloc(&b, bytes));
  BENCH_CUDA(cudaMemset(a, 1, bytes));
  cudaEvent_t start, stop;
  BENCH_CUDA(cudaEventCreate(&start));
  BENCH_CUDA(cudaEventCreate(&stop));
  std::vector<double> ms;
  for (int i = 0; i < 12; ++i) {
    BENCH_CUDA(cudaEventRecord(start));
    BENCH_CUDA(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
    BENCH_CUDA(cudaEventRecord(stop));
    BENCH_CUDA(cudaEventSynchronize(stop));
    float t = 0;
    BENCH_CUDA(cudaEventElapsedTime(&t, start, stop));
    if (i >= 2) ms.push_back(t);
  }
  BENCH_CUDA(cudaFree(a));
  BENCH_CUDA(cudaFree(b));
  return 2.0 * bytes / (median(ms) * 1e-3) / 1e9;
}

// Per-call device time in microseconds: `launch(i)` for i = 0..launches-1 captured into one graph
// (the caller rotates buffers by i), replayed `replays` times after warm-up; median replay / launches.
// Also returns the spread (max/min of the replays) through `spread` when given.
inline double time_graph_us(const std::function<void(int, cudaStream_t)>& launch, int launches, int replays,
                            cudaStream_t stream, double* spread = nullptr) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  BENCH_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < launches; ++i) launch(i, stream);
  BENCH_CUDA(cudaStreamEndCapture(stream, &graph));
  BENCH_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  for (int w = 0; w < 3; ++w) BENCH_CUDA(cudaGraphLaunch(exec, stream));
  BENCH_CUDA(cudaStreamSynchronize(stream));
  cudaEvent_t start, stop;
  BENCH_CUDA(cudaEventCreate(&start));
  BENCH_CUDA(cudaEventCreate(&stop));
  std::vector<double> us;
  for (int r = 0; r < replays; ++r) {
    BENCH_CUDA(cudaEventRecord(start, stream));
    BENCH_CUDA(cudaGraphLaunch(exec, stream));
    BENCH_CUDA(cudaEventRecord(stop, stream));
    BENCH_CUDA(cudaEventSynchronize(stop));
    float t = 0;
    BENCH_CUDA(cudaEventElapsedTime(&t, start, stop));
    us.push_back(1e3 * t / launches);
  }
  BENCH_CUDA(cudaGetLastError());
  BENCH_CUDA(cudaGraphExecDestroy(exec));
  BENCH_CUDA(cudaGraphDestroy(graph));
  BENCH_CUDA(cudaEventDestroy(start));
  BENCH_CUDA(cudaEventDestroy(stop));
  if (spread != nullptr) {
    const auto [lo, hi] = std::minmax_element(us.begin(), us.end());
    *spread = *hi / *lo;
  }
  return median(us);
}

// Enough copies of a weight set that together they overflow the 50 MB L2 several times.
inline int buffers_for(size_t bytes_each) {
  const size_t target = size_t{400} << 20;
  return static_cast<int>(std::clamp<size_t>((target + bytes_each - 1) / bytes_each, 2, 16));
}

template <typename T>
inline float to_float_host(T v);
template <>
inline float to_float_host<__half>(__half v) {
  return __half2float(v);
}
template <>
inline float to_float_host<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T>
std::vector<T> to_host(const T* device, int64_t n) {
  std::vector<T> host(static_cast<size_t>(n));
  BENCH_CUDA(cudaMemcpy(host.data(), device, n * sizeof(T), cudaMemcpyDeviceToHost));
  return host;
}

}  // namespace bench
