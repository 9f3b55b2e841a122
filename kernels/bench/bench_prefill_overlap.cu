// Prefill (large M) of a quantized model: can dequantizing the NEXT linear's weight on a second stream,
// on a few SMs, hide under the current linear's cuBLAS GEMM (compute-bound at M = 512)?
//
// A run is L Qwen2-7B layers of [qkv, o, gate_up, down] at M tokens, bf16 activations, timed as one
// sequence (CUDA events, median of the repetitions):
//   dense  T    cuBLAS bf16 on 16-bit weights (what an fp16/bf16 prefill does), SM count target T (0: all)
//   seq         dequantize the whole W (full grid), then the GEMM, one stream (the path in the tree)
//   pipe T G    GEMM j on the main stream (SM target T) while the side stream dequantizes j+1 with a grid
//               of G blocks into the other of two scratch buffers (events order the reuse)
//   deq G       the dequantize passes alone with G blocks (their bandwidth with that many SMs)
// Weights are random (codes, scales): timing only; the kernels' correctness is bench_q4's and the tests'.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "gemv_bench_util.cuh"
#include "quantbench/kernels/int8_dequant.h"
#include "quantbench/kernels/q4_gemm.h"
#include "quantbench/kernels/q4_layout.h"

using namespace qb::kernels;

namespace {

__global__ void fill_bytes_kernel(uint8_t* out, int64_t n, uint64_t seed) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = static_cast<uint8_t>(bench::mix(seed ^ bench::mix(static_cast<uint64_t>(i))));
}

__global__ void fill_float_kernel(float* out, int64_t n, float value) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = value * (1.0f + 0.001f * static_cast<float>(i % 97));
}

__global__ void fill_bf16_kernel(__nv_bfloat16* out, int64_t n, uint64_t seed) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const uint64_t h = bench::mix(seed ^ bench::mix(static_cast<uint64_t>(i)));
    out[i] = __float2bfloat16(static_cast<float>(h & 0xffff) / 65535.0f - 0.5f);
  }
}

struct Shape {
  const char* name;
  int64_t N, K;
};

struct Layer {
  Shape s;
  Q4TileWeights q4;
  Int8Weights i8;
  void* dense = nullptr;
};

void* dmalloc(size_t bytes) {
  void* p = nullptr;
  BENCH_CUDA(cudaMalloc(&p, bytes));
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  int layers = 4, reps = 7;
  int64_t M = 512;
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--layers")) layers = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--M")) M = std::atoll(argv[i + 1]);
  }
  cudaDeviceProp prop;
  BENCH_CUDA(cudaGetDeviceProperties(&prop, 0));
  const int sms = prop.multiProcessorCount;
  std::printf("device %s, %d SMs; %d Qwen2-7B layers at M = %lld, bf16\n", prop.name, sms, layers, (long long)M);
  const Shape shapes[4] = {{"qkv", 4608, 3584}, {"o", 3584, 3584}, {"gate_up", 37888, 3584}, {"down", 3584, 18944}};
  std::vector<Layer> seq;
  int64_t max_elems = 0, max_k = 0, max_n = 0;
  for (int l = 0; l < layers; ++l) {
    for (const Shape& s : shapes) {
      Layer L;
      L.s = s;
      const int64_t units = s.K / 64, tile_bytes = q4_tile_bytes(s.N, s.K);
      uint8_t* tiles = static_cast<uint8_t*>(dmalloc(tile_bytes));
      fill_bytes_kernel<<<1024, 256>>>(tiles, tile_bytes, 11 + seq.size());
      float* scales = static_cast<float*>(dmalloc(q4_n_tiles(s.N) * 16 * units * 4));
      fill_float_kernel<<<1024, 256>>>(scales, q4_n_tiles(s.N) * 16 * units, 0.02f);
      L.q4.N = s.N;
      L.q4.K = s.K;
      L.q4.tiles = tiles;
      L.q4.scales = scales;
      L.q4.mode = Q4ScaleMode::kAbsmaxF32;
      L.q4.unit_shift = 0;
      for (int c = 0; c < 16; ++c) L.q4.codebook[c] = (c - 7.5f) / 8.0f;
      int8_t* q = static_cast<int8_t*>(dmalloc(s.N * s.K));
      fill_bytes_kernel<<<1024, 256>>>(reinterpret_cast<uint8_t*>(q), s.N * s.K, 99 + seq.size());
      float* ch = static_cast<float*>(dmalloc(s.N * 4));
      fill_float_kernel<<<64, 256>>>(ch, s.N, 0.01f);
      L.i8.q = q;
      L.i8.ldq = s.K;
      L.i8.scales = ch;
      L.i8.N = s.N;
      L.i8.K = s.K;
      L.dense = dmalloc(s.N * s.K * 2);
      fill_bf16_kernel<<<1024, 256>>>(static_cast<__nv_bfloat16*>(L.dense), s.N * s.K, 7 + seq.size());
      max_elems = std::max(max_elems, s.N * s.K);
      max_k = std::max(max_k, s.K);
      max_n = std::max(max_n, s.N);
      seq.push_back(L);
    }
  }
  void* x = dmalloc(M * max_k * 2);
  void* y = dmalloc(M * max_n * 2);
  fill_bf16_kernel<<<1024, 256>>>(static_cast<__nv_bfloat16*>(x), M * max_k, 3);
  void* buf[2] = {dmalloc(max_elems * 2), dmalloc(max_elems * 2)};
  BENCH_CUDA(cudaDeviceSynchronize());

  cudaStream_t main_s, side_s;
  BENCH_CUDA(cudaStreamCreateWithFlags(&main_s, cudaStreamNonBlocking));
  BENCH_CUDA(cudaStreamCreateWithFlags(&side_s, cudaStreamNonBlocking));
  cublasHandle_t handle;
  BENCH_CUBLAS(cublasCreate(&handle));
  BENCH_CUBLAS(cublasSetStream(handle, main_s));
  const int n = static_cast<int>(seq.size());
  std::vector<cudaEvent_t> staged(n), used(n);
  for (int j = 0; j < n; ++j) {
    BENCH_CUDA(cudaEventCreateWithFlags(&staged[j], cudaEventDisableTiming));
    BENCH_CUDA(cudaEventCreateWithFlags(&used[j], cudaEventDisableTiming));
  }
  cudaEvent_t t0, t1, side_done;
  BENCH_CUDA(cudaEventCreate(&t0));
  BENCH_CUDA(cudaEventCreate(&t1));
  BENCH_CUDA(cudaEventCreateWithFlags(&side_done, cudaEventDisableTiming));

  auto gemm = [&](int j, const void* w) {
    const float alpha = 1.f, beta = 0.f;
    const Shape& s = seq[j].s;
    BENCH_CUBLAS(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, (int)s.N, (int)M, (int)s.K, &alpha, w, CUDA_R_16BF,
                              (int)s.K, x, CUDA_R_16BF, (int)s.K, &beta, y, CUDA_R_16BF, (int)s.N, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
  };
  auto dequant = [&](bool int8, int j, void* dst, cudaStream_t st, int grid) {
    if (int8) {
      int8_dequantize(HalfType::kBF16, seq[j].i8, dst, seq[j].s.K, st, grid);
    } else {
      q4_tile_dequant(DType::kBF16, seq[j].q4, 0, seq[j].s.N, 0, seq[j].s.K, dst, seq[j].s.K, st, false, grid);
    }
  };
  auto timed = [&](const std::function<void()>& body) {
    std::vector<double> ms;
    for (int r = 0; r < reps + 1; ++r) {
      BENCH_CUDA(cudaEventRecord(t0, main_s));
      BENCH_CUDA(cudaStreamWaitEvent(side_s, t0));
      body();
      BENCH_CUDA(cudaEventRecord(side_done, side_s));
      BENCH_CUDA(cudaStreamWaitEvent(main_s, side_done));
      BENCH_CUDA(cudaEventRecord(t1, main_s));
      BENCH_CUDA(cudaEventSynchronize(t1));
      float v = 0.f;
      BENCH_CUDA(cudaEventElapsedTime(&v, t0, t1));
      if (r > 0) ms.push_back(v);  // the first is a warm-up
    }
    return bench::median(ms) * 1000.0;  // us
  };
  auto dense = [&](int target) {
    BENCH_CUBLAS(cublasSetSmCountTarget(handle, target));
    const double us = timed([&] {
      for (int j = 0; j < n; ++j) gemm(j, seq[j].dense);
    });
    BENCH_CUBLAS(cublasSetSmCountTarget(handle, 0));
    return us;
  };
  auto sequential = [&](bool int8) {
    return timed([&] {
      for (int j = 0; j < n; ++j) {
        dequant(int8, j, buf[0], main_s, 0);
        gemm(j, buf[0]);
      }
    });
  };
  auto deq_only = [&](bool int8, int grid) {
    return timed([&] {
      for (int j = 0; j < n; ++j) dequant(int8, j, buf[j % 2], side_s, grid);
    });
  };
  auto pipelined = [&](bool int8, int target, int grid) {
    BENCH_CUBLAS(cublasSetSmCountTarget(handle, target));
    const double us = timed([&] {
      dequant(int8, 0, buf[0], side_s, 0);  // nothing to hide the first one under: full grid
      BENCH_CUDA(cudaEventRecord(staged[0], side_s));
      for (int j = 0; j < n; ++j) {
        BENCH_CUDA(cudaStreamWaitEvent(main_s, staged[j]));
        gemm(j, buf[j % 2]);
        BENCH_CUDA(cudaEventRecord(used[j], main_s));
        if (j + 1 < n) {
          if (j >= 1) BENCH_CUDA(cudaStreamWaitEvent(side_s, used[j - 1]));
          dequant(int8, j + 1, buf[(j + 1) % 2], side_s, grid);
          BENCH_CUDA(cudaEventRecord(staged[j + 1], side_s));
        }
      }
    });
    BENCH_CUBLAS(cublasSetSmCountTarget(handle, 0));
    return us;
  };

  const double base = dense(0);
  std::printf("| run | us | x dense bf16 |\n|---|---:|---:|\n");
  std::printf("| dense T=all | %.0f | 1.00 |\n", base);
  for (int t : {sms - 8, sms - 16, sms - 24, sms - 32}) {
    const double us = dense(t);
    std::printf("| dense T=%d | %.0f | %.3f |\n", t, us, us / base);
  }
  for (bool int8 : {false, true}) {
    const char* f = int8 ? "int8" : "nf4";
    const double s = sequential(int8);
    std::printf("| %s seq | %.0f | %.3f |\n", f, s, s / base);
    for (int g : {16, 32, 64, 128, 0}) {
      const double us = deq_only(int8, g);
      std::printf("| %s deq G=%d | %.0f | %.3f |\n", f, g, us, us / base);
    }
    for (int t : {0, sms - 8, sms - 16, sms - 24, sms - 32}) {
      for (int g : {8, 16, 32, 64}) {
        const double us = pipelined(int8, t, g);
        std::printf("| %s pipe T=%d G=%d | %.0f | %.3f |\n", f, t, g, us, us / base);
      }
    }
  }
  cublasDestroy(handle);
  return 0;
}
