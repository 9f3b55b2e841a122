// Dense decode GEMV benchmark: our tensor-core GEMV (kernels/dense_gemv.cu) against cuBLAS on the
// Qwen2-7B decode shapes, M = tokens x batch from 1 to 32. Fresh random inputs, a correctness check
// against a float64 CPU reference on sampled outputs first, then graph-replay timing rotating over
// enough weight copies that L2 cannot hold them. Bytes counted: W + x + y (each once).
//
// Build alone (no libtorch):  nvcc -O3 -arch=sm_90 -Iinclude -DFMT_HEADER_ONLY
//   kernels/bench/bench_dense_gemv.cu kernels/dense_gemv.cu -lcublas -o /tmp/bench_dense_gemv
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <string>
#include <vector>

#include "../gemv_mma_tile.cuh"
#include "gemv_bench_util.cuh"
#include "quantbench/kernels/dense_gemv.h"

namespace {

using Bf16 = __nv_bfloat16;
using qb::kernels::gemv::GemvParams;
using qb::kernels::gemv::WeightKind;

struct Shape {
  int64_t K, N;
  const char* name;
};

// Relative error ||out - ref|| / ||ref|| over `rows` sampled output rows (all M tokens).
template <typename T>
double check(const T* w, const T* x, const T* y, int64_t M, int64_t N, int64_t K) {
  const auto wh = bench::to_host(w, N * K);
  const auto xh = bench::to_host(x, M * K);
  const auto yh = bench::to_host(y, M * N);
  double num = 0, den = 0;
  for (int64_t s = 0; s < 97; ++s) {
    const int64_t n = (s * 7919 + 13) % N;
    for (int64_t m = 0; m < M; ++m) {
      double ref = 0;
      for (int64_t k = 0; k < K; ++k) {
        ref += double(bench::to_float_host(wh[n * K + k])) * double(bench::to_float_host(xh[m * K + k]));
      }
      const double out = bench::to_float_host(yh[m * N + n]);
      num += (out - ref) * (out - ref);
      den += ref * ref;
      if (!std::isfinite(out)) return INFINITY;
    }
  }
  return std::sqrt(num / den);
}

template <int MT, int RT, int KSPLIT, int UNROLL>
void launch_variant(const GemvParams& p, cudaStream_t s) {
  qb::kernels::gemv::launch_gemv_mma<WeightKind::kHalf16, Bf16, MT, RT, KSPLIT, UNROLL, false>(p, s);
}

struct Variant {
  const char* name;
  void (*launch)(const GemvParams&, cudaStream_t);
};

// Decode (one 8-token tile): warps per block x steps per batch x software pipeline.
const Variant kM1Variants[] = {
    {"k8 u2", launch_variant<1, 1, 8, 2>},    {"k8 u4", launch_variant<1, 1, 8, 4>},
    {"k16 u2", launch_variant<1, 1, 16, 2>},  {"k16 u4", launch_variant<1, 1, 16, 4>},
    {"k4 u4", launch_variant<1, 1, 4, 4>},    {"k8 u8", launch_variant<1, 1, 8, 8>},
    {"k16 u8", launch_variant<1, 1, 16, 8>},
};
// 9..16 tokens (two tiles) and 17..32 (four): row tiles per warp.
const Variant kM16Variants[] = {
    {"rt1 k8 u4", launch_variant<2, 1, 8, 4>}, {"rt2 k8 u2", launch_variant<2, 2, 8, 2>},
    {"rt2 k8 u4", launch_variant<2, 2, 8, 4>}, {"rt4 k8 u2", launch_variant<2, 4, 8, 2>},
};
const Variant kM32Variants[] = {
    {"rt1 k8 u4", launch_variant<4, 1, 8, 4>}, {"rt2 k8 u2", launch_variant<4, 2, 8, 2>},
    {"rt2 k8 u4", launch_variant<4, 2, 8, 4>}, {"rt2 k4 u2", launch_variant<4, 2, 4, 2>},
};

struct Row {
  std::string what;
  double us, gbps, pct;
};

void print_row(const Shape& shape, int64_t M, const char* impl, double us, double bytes, double copy_gbps,
               double spread) {
  const double gbps = bytes / (us * 1e-6) / 1e9;
  std::printf("%-10s K=%-6lld N=%-7lld M=%-3lld %-22s %9.2f us %8.0f GB/s %6.1f%%  (spread %.3f)\n", shape.name,
              (long long)shape.K, (long long)shape.N, (long long)M, impl, us, gbps, 100.0 * gbps / copy_gbps, spread);
}

}  // namespace

int main() {
  cudaDeviceProp prop;
  BENCH_CUDA(cudaGetDeviceProperties(&prop, 0));
  const double copy_gbps = bench::copy_bandwidth_gbps();
  std::printf("device %s, %d SMs, L2 %d MB; copy bandwidth %.0f GB/s (read+write)\n", prop.name,
              prop.multiProcessorCount, prop.l2CacheSize >> 20, copy_gbps);

  cudaStream_t stream;
  BENCH_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cublasHandle_t handle;
  BENCH_CUBLAS(cublasCreate(&handle));
  void* cublas_ws = nullptr;
  BENCH_CUDA(cudaMalloc(&cublas_ws, 64 << 20));
  BENCH_CUBLAS(cublasSetWorkspace(handle, cublas_ws, 64 << 20));
  BENCH_CUBLAS(cublasSetStream(handle, stream));

  // QB_BENCH_SHAPES=small: the decode shapes of TinyLlama-1.1B and GPT-2 at M = 1 only (where a layer
  // is a few MB and launch latency and load depth, not bandwidth, decide).
  const bool small = std::getenv("QB_BENCH_SHAPES") != nullptr && std::string(std::getenv("QB_BENCH_SHAPES")) == "small";
  const std::vector<Shape> shapes =
      small ? std::vector<Shape>{{2048, 2560, "tl_qkv"}, {2048, 2048, "tl_o"},   {2048, 11264, "tl_gate_up"},
                                 {5632, 2048, "tl_down"}, {768, 2304, "g2_qkv"}, {768, 768, "g2_o"},
                                 {768, 3072, "g2_fc"},    {3072, 768, "g2_proj"}}
            : std::vector<Shape>{{3584, 4608, "qkv"}, {3584, 3584, "o_proj"}, {3584, 37888, "gate_up"},
                                 {18944, 3584, "down"}, {3584, 152064, "lm_head"}};
  const std::vector<int64_t> ms = small ? std::vector<int64_t>{1} : std::vector<int64_t>{1, 2, 4, 8, 16, 32};
  const int64_t kMaxM = 32;
  for (const Shape& shape : shapes) {
    const int64_t K = shape.K, N = shape.N;
    const size_t w_bytes = size_t(N) * K * 2;
    const int nbuf = bench::buffers_for(w_bytes);
    std::vector<Bf16*> ws(nbuf);
    for (auto& w : ws) {
      BENCH_CUDA(cudaMalloc(&w, w_bytes));
      bench::fill_normal(w, N * K, 0.05f);
    }
    Bf16 *x, *y;
    BENCH_CUDA(cudaMalloc(&x, kMaxM * K * 2));
    BENCH_CUDA(cudaMalloc(&y, kMaxM * N * 2));
    bench::fill_normal(x, kMaxM * K, 1.0f);

    for (const int64_t M : ms) {
      const double bytes = double(w_bytes) + double(M) * K * 2 + double(M) * N * 2;
      // Correctness first: poison y, run the public entry point, compare sampled rows.
      BENCH_CUDA(cudaMemset(y, 0xff, M * N * 2));  // 0xffff is a bf16 NaN
      qb::kernels::dense_gemv(qb::kernels::HalfType::kBF16, x, K, ws[0], K, nullptr, y, N, M, N, K, stream);
      BENCH_CUDA(cudaStreamSynchronize(stream));
      const double err = check(ws[0], x, y, M, N, K);
      if (!(err < 8e-3)) {
        std::printf("FAILED correctness %s M=%lld: rel err %.3g\n", shape.name, (long long)M, err);
        return 1;
      }
      const int launches = w_bytes > (200u << 20) ? 8 : 40;
      double spread = 0;
      const double us = bench::time_graph_us(
          [&](int i, cudaStream_t s) {
            qb::kernels::dense_gemv(qb::kernels::HalfType::kBF16, x, K, ws[i % nbuf], K, nullptr, y, N, M, N, K, s);
          },
          launches, 15, stream, &spread);
      print_row(shape, M, "ours (dispatch)", us, bytes, copy_gbps, spread);
      // Tuning variants (each checked for correctness before it is timed).
      if (M == 1 || M == 16 || M == 32) {
        GemvParams p;
        p.x = x;
        p.ldx = K;
        p.ldw = K;
        p.y = y;
        p.ldy = N;
        p.M = int(M);
        p.N = int(N);
        p.K = int(K);
        p.k_weights = int(K);
        const Variant* list = M == 1 ? kM1Variants : M == 16 ? kM16Variants : kM32Variants;
        const int count = M == 1 ? int(std::size(kM1Variants)) : M == 16 ? int(std::size(kM16Variants))
                                                                          : int(std::size(kM32Variants));
        for (int v = 0; v < count; ++v) {
          GemvParams q0 = p;
          q0.w = ws[0];
          BENCH_CUDA(cudaMemset(y, 0xff, M * N * 2));
          list[v].launch(q0, stream);
          BENCH_CUDA(cudaStreamSynchronize(stream));
          const double verr = check(ws[0], x, y, M, N, K);
          if (!(verr < 8e-3)) {
            std::printf("FAILED correctness %s M=%lld variant %s: rel err %.3g\n", shape.name, (long long)M,
                        list[v].name, verr);
            return 1;
          }
          double sp = 0;
          const double t = bench::time_graph_us(
              [&](int i, cudaStream_t s) {
                GemvParams q = p;
                q.w = ws[i % nbuf];
                list[v].launch(q, s);
              },
              launches, 15, stream, &sp);
          print_row(shape, M, list[v].name, t, bytes, copy_gbps, sp);
        }
      }
      if (M == 1) {
        // fp16 through the same entry point.
        const double t16 = bench::time_graph_us(
            [&](int i, cudaStream_t s) {
              qb::kernels::dense_gemv(qb::kernels::HalfType::kF16, x, K, ws[i % nbuf], K, nullptr, y, N, M, N, K, s);
            },
            launches, 15, stream, &spread);
        print_row(shape, M, "ours fp16 (dispatch)", t16, bytes, copy_gbps, spread);
      }
      if (M == 1 || M == 8 || M == 16 || M == 32) {
        const float alpha = 1.0f, beta = 0.0f;
        const double tc = bench::time_graph_us(
            [&](int i, cudaStream_t s) {
              BENCH_CUBLAS(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, int(N), int(M), int(K), &alpha,
                                        ws[i % nbuf], CUDA_R_16BF, int(K), x, CUDA_R_16BF, int(K), &beta, y,
                                        CUDA_R_16BF, int(N), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
            },
            launches, 15, stream, &spread);
        print_row(shape, M, "cuBLAS bf16", tc, bytes, copy_gbps, spread);
      }
    }
    for (auto& w : ws) BENCH_CUDA(cudaFree(w));
    BENCH_CUDA(cudaFree(x));
    BENCH_CUDA(cudaFree(y));
  }
  std::printf("done\n");
  return 0;
}
