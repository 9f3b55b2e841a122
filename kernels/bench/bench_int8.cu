// INT8 benchmark: weight-only int8 decode GEMV, llm.int8 decode, and the large-M (prefill) paths,
// against cuBLAS bf16 and our dense GEMV, on the Qwen2-7B shapes. Fresh random inputs, correctness
// against a float64 CPU reference on sampled outputs first, then graph-replay timing rotating over
// enough weight copies that L2 cannot hold them.
// Bytes counted for decode: int8 weights (padded rows) + fp32 scales + x + y, each once.
//
// Build alone (no libtorch):  nvcc -O3 -arch=sm_90 -Iinclude -DFMT_HEADER_ONLY kernels/bench/bench_int8.cu
//   kernels/int8_gemv.cu kernels/int8_dequant.cu kernels/llm_int8_gemv.cu kernels/llm_int8_prep.cu
//   kernels/dense_gemv.cu -lcublas -o /tmp/bench_int8
#include <cmath>
#include <cstdio>
#include <iterator>
#include <string>
#include <utility>

#include "../gemv_mma_tile.cuh"
#include "gemv_bench_util.cuh"
#include "quantbench/kernels/dense_gemv.h"
#include "quantbench/kernels/int8_dequant.h"
#include "quantbench/kernels/int8_gemv.h"
#include "quantbench/kernels/llm_int8.h"

namespace {

using Bf16 = __nv_bfloat16;
using qb::kernels::HalfType;
using qb::kernels::Int8Weights;
using qb::kernels::gemv::GemvParams;
using qb::kernels::gemv::WeightKind;

struct Shape {
  int64_t K, N;
  const char* name;
};

double g_copy_gbps = 0;

void print_row(const Shape& s, int64_t M, const std::string& impl, double us, double bytes, double spread,
               double ref_us = 0) {
  const double gbps = bytes / (us * 1e-6) / 1e9;
  std::printf("%-8s K=%-6lld N=%-7lld M=%-4lld %-28s %9.2f us %7.0f GB/s %6.1f%%", s.name, (long long)s.K,
              (long long)s.N, (long long)M, impl.c_str(), us, gbps, 100.0 * gbps / g_copy_gbps);
  if (ref_us > 0) std::printf("  x%.3f of ref", us / ref_us);
  std::printf("  (spread %.3f)\n", spread);
}

// Host copies for the CPU reference.
struct HostWeights {
  std::vector<int8_t> q;
  std::vector<float> scales;
  int64_t ldq, groups, group_size;
  double w(int64_t n, int64_t k) const {
    const double s = group_size > 0 ? scales[n * groups + k / group_size] : scales[n];
    return double(q[n * ldq + k]) * s;
  }
};

HostWeights host_weights(const Int8Weights& w) {
  HostWeights h;
  h.q = bench::to_host(w.q, w.N * w.ldq);
  h.scales = bench::to_host(w.scales, w.group_size > 0 ? w.N * w.groups : w.N);
  h.ldq = w.ldq;
  h.groups = w.groups;
  h.group_size = w.group_size;
  return h;
}

// ||out - ref|| / ||ref|| over sampled (m, n): weight-only int8.
double check_int8(const Int8Weights& w, const Bf16* x, const Bf16* y, int64_t M, int64_t ldy, int samples_n,
                  int samples_m) {
  const HostWeights h = host_weights(w);
  const auto xh = bench::to_host(x, M * w.K);
  const auto yh = bench::to_host(y, M * ldy);
  double num = 0, den = 0;
  for (int s = 0; s < samples_n; ++s) {
    const int64_t n = (int64_t(s) * 7919 + 11) % w.N;
    for (int j = 0; j < std::min<int64_t>(samples_m, M); ++j) {
      const int64_t m = samples_m >= M ? j : (int64_t(j) * 131 + s) % M;
      double ref = 0;
      for (int64_t k = 0; k < w.K; ++k) ref += h.w(n, k) * double(__bfloat162float(xh[m * w.K + k]));
      const double out = __bfloat162float(yh[m * ldy + n]);
      if (!std::isfinite(out)) return INFINITY;
      num += (out - ref) * (out - ref);
      den += ref * ref;
    }
  }
  return std::sqrt(num / den);
}

// llm.int8 reference (bitsandbytes' algorithm) in float64 over sampled rows n, all m.
double check_llm_int8(const Int8Weights& w, const Bf16* x, const Bf16* y, int64_t M, float threshold) {
  const HostWeights h = host_weights(w);
  const auto xh = bench::to_host(x, M * w.K);
  const auto yh = bench::to_host(y, M * w.N);
  const int64_t K = w.K;
  std::vector<float> xv(M * K);
  for (int64_t i = 0; i < M * K; ++i) xv[i] = __half2float(__float2half_rn(__bfloat162float(xh[i])));
  std::vector<char> col(K, 0);
  std::vector<float> sca(M, 0.0f);
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t k = 0; k < K; ++k) {
      const float a = std::fabs(xv[m * K + k]);
      if (a >= threshold) {
        col[k] = 1;
      } else {
        sca[m] = std::max(sca[m], a);
      }
    }
  }
  double num = 0, den = 0;
  for (int s = 0; s < 61; ++s) {
    const int64_t n = (int64_t(s) * 7919 + 5) % w.N;
    for (int64_t m = 0; m < M; ++m) {
      const float inv = 127.0f * (1.0f / sca[m]);
      double dot = 0, outlier = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double q = double(h.q[n * h.ldq + k]);
        if (col[k]) {
          outlier += double(__bfloat162float(xh[m * K + k])) * q;
        } else {
          dot += std::nearbyint(xv[m * K + k] * inv) * q;
        }
      }
      const double ref = dot * double(sca[m] * h.scales[n]) * double(qb::kernels::kBnbInvScaleSquared) +
                         outlier * double(h.scales[n]) / 127.0;
      const double out = __bfloat162float(yh[m * w.N + n]);
      if (!std::isfinite(out)) return INFINITY;
      num += (out - ref) * (out - ref);
      den += ref * ref;
    }
  }
  return std::sqrt(num / den);
}

template <int MT, int RT, int KSPLIT, int UNROLL>
void int8_variant(const GemvParams& p, cudaStream_t s) {
  qb::kernels::gemv::launch_gemv_mma<WeightKind::kInt8, Bf16, MT, RT, KSPLIT, UNROLL, false>(p, s);
}

struct Variant {
  const char* name;
  void (*launch)(const GemvParams&, cudaStream_t);
};

const Variant kM1Variants[] = {
    {"int8 k8 u2", int8_variant<1, 1, 8, 2>},     {"int8 k8 u4", int8_variant<1, 1, 8, 4>},
    {"int8 k16 u2", int8_variant<1, 1, 16, 2>},
};
const Variant kM16Variants[] = {
    {"int8 rt1 k8 u4", int8_variant<2, 1, 8, 4>}, {"int8 rt2 k8 u2", int8_variant<2, 2, 8, 2>},
    {"int8 rt2 k8 u4", int8_variant<2, 2, 8, 4>}, {"int8 rt4 k8 u2", int8_variant<2, 4, 8, 2>},
};
const Variant kM32Variants[] = {
    {"int8 rt1 k8 u4", int8_variant<4, 1, 8, 4>}, {"int8 rt2 k8 u2", int8_variant<4, 2, 8, 2>},
    {"int8 rt2 k8 u4", int8_variant<4, 2, 8, 4>}, {"int8 rt2 k4 u2", int8_variant<4, 2, 4, 2>},
};

bool require(double err, double bound, const char* what, const Shape& s, int64_t M) {
  if (err < bound) return true;
  std::printf("FAILED correctness %s %s M=%lld: rel err %.3g (bound %.1g)\n", what, s.name, (long long)M, err, bound);
  return false;
}

}  // namespace

int main() {
  cudaDeviceProp prop;
  BENCH_CUDA(cudaGetDeviceProperties(&prop, 0));
  g_copy_gbps = bench::copy_bandwidth_gbps();
  std::printf("device %s, %d SMs, L2 %d MB; copy bandwidth %.0f GB/s (read+write)\n", prop.name,
              prop.multiProcessorCount, prop.l2CacheSize >> 20, g_copy_gbps);
  cudaStream_t stream;
  BENCH_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cublasHandle_t handle;
  BENCH_CUBLAS(cublasCreate(&handle));
  void* cublas_ws = nullptr;
  BENCH_CUDA(cudaMalloc(&cublas_ws, 64 << 20));
  BENCH_CUBLAS(cublasSetWorkspace(handle, cublas_ws, 64 << 20));
  BENCH_CUBLAS(cublasSetStream(handle, stream));
  bool ok = true;

  const Shape shapes[] = {{3584, 4608, "qkv"}, {3584, 3584, "o_proj"}, {3584, 37888, "gate_up"},
                          {18944, 3584, "down"}, {3584, 152064, "lm_head"}};
  const int64_t kMaxM = 512;
  for (const Shape& shape : shapes) {
    const int64_t K = shape.K, N = shape.N, Kp = qb::kernels::int8_padded_k(K);
    const bool prefill_shape = N < 100000;
    const size_t q_bytes = size_t(N) * Kp;
    const int nbuf = bench::buffers_for(q_bytes);
    std::vector<int8_t*> qs(nbuf);
    float *scales, *group_scales;
    for (auto& q : qs) {
      BENCH_CUDA(cudaMalloc(&q, q_bytes));
      bench::fill_int8(q, N, K, Kp);
    }
    BENCH_CUDA(cudaMalloc(&scales, N * 4));
    bench::fill_normal(scales, N, 1e-3f);
    const int64_t groups = (K + 127) / 128;
    BENCH_CUDA(cudaMalloc(&group_scales, N * groups * 4));
    bench::fill_normal(group_scales, N * groups, 1e-3f);
    const int64_t x_rows = prefill_shape ? kMaxM : 32;
    Bf16 *x, *x_outliers, *y;
    BENCH_CUDA(cudaMalloc(&x, x_rows * K * 2));
    BENCH_CUDA(cudaMalloc(&x_outliers, 32 * K * 2));
    BENCH_CUDA(cudaMalloc(&y, x_rows * N * 2));
    bench::fill_normal(x, x_rows * K, 1.0f);
    bench::fill_normal(x_outliers, 32 * K, 2.2f);  // |x| >= 6 in ~0.6% of elements: a few outlier columns
    auto weights = [&](int i, bool grouped = false) {
      Int8Weights w;
      w.q = qs[i % nbuf];
      w.ldq = Kp;
      w.scales = grouped ? group_scales : scales;
      w.group_size = grouped ? 128 : 0;
      w.groups = grouped ? groups : 0;
      w.N = N;
      w.K = K;
      return w;
    };
    const int launches = q_bytes > (200u << 20) ? 8 : 40;
    double spread = 0;

    // Dense bf16 references at M = 1 (cuBLAS and our GEMV), on their own rotating buffers.
    double dense_us = 0, cublas_us = 0, prefill_cublas_us = 1e30;
    {
      const size_t w_bytes = size_t(N) * K * 2;
      const int dbuf = bench::buffers_for(w_bytes);
      std::vector<Bf16*> ws(dbuf);
      for (auto& w : ws) {
        BENCH_CUDA(cudaMalloc(&w, w_bytes));
        bench::fill_normal(w, N * K, 0.05f);
      }
      const double bytes = double(w_bytes) + K * 2 + N * 2;
      dense_us = bench::time_graph_us(
          [&](int i, cudaStream_t s) {
            qb::kernels::dense_gemv(HalfType::kBF16, x, K, ws[i % dbuf], K, nullptr, y, N, 1, N, K, s);
          },
          launches, 15, stream, &spread);
      print_row(shape, 1, "dense bf16 GEMV (ours)", dense_us, bytes, spread);
      const float alpha = 1.0f, beta = 0.0f;
      cublas_us = bench::time_graph_us(
          [&](int i, cudaStream_t s) {
            BENCH_CUBLAS(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, int(N), 1, int(K), &alpha, ws[i % dbuf],
                                      CUDA_R_16BF, int(K), x, CUDA_R_16BF, int(K), &beta, y, CUDA_R_16BF, int(N),
                                      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
          },
          launches, 15, stream, &spread);
      print_row(shape, 1, "dense bf16 cuBLAS", cublas_us, bytes, spread);
      if (prefill_shape) {
        const double t = bench::time_graph_us(
            [&](int i, cudaStream_t s) {
              BENCH_CUBLAS(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, int(N), int(kMaxM), int(K), &alpha,
                                        ws[i % dbuf], CUDA_R_16BF, int(K), x, CUDA_R_16BF, int(K), &beta, y,
                                        CUDA_R_16BF, int(N), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
            },
            10, 10, stream, &spread);
        prefill_cublas_us = t;
        std::printf("%-8s K=%-6lld N=%-7lld M=%-4lld %-28s %9.2f us %7.0f TFLOP/s\n", shape.name, (long long)K,
                    (long long)N, (long long)kMaxM, "dense bf16 cuBLAS prefill", t, 2.0 * kMaxM * N * K / (t * 1e-6) / 1e12);
        // Crossover region for the dense dispatch.
        for (const int64_t M : {16, 32, 64}) {
          const double tm = bench::time_graph_us(
              [&](int i, cudaStream_t s) {
                BENCH_CUBLAS(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, int(N), int(M), int(K), &alpha,
                                          ws[i % dbuf], CUDA_R_16BF, int(K), x, CUDA_R_16BF, int(K), &beta, y,
                                          CUDA_R_16BF, int(N), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
              },
              20, 10, stream, &spread);
          print_row(shape, M, "dense bf16 cuBLAS", tm, double(w_bytes), spread);
        }
      }
      for (auto& w : ws) BENCH_CUDA(cudaFree(w));
    }

    // ---- weight-only int8 decode GEMV ----
    for (const int64_t M : {1, 2, 4, 8, 16, 32}) {
      const double bytes = double(q_bytes) + N * 4 + double(M) * K * 2 + double(M) * N * 2;
      BENCH_CUDA(cudaMemset(y, 0xff, M * N * 2));
      qb::kernels::int8_gemv(HalfType::kBF16, x, K, weights(0), nullptr, y, N, M, stream);
      BENCH_CUDA(cudaStreamSynchronize(stream));
      ok &= require(check_int8(weights(0), x, y, M, N, 61, 32), 8e-3, "int8 gemv", shape, M);
      const double t = bench::time_graph_us(
          [&](int i, cudaStream_t s) { qb::kernels::int8_gemv(HalfType::kBF16, x, K, weights(i), nullptr, y, N, M, s); },
          launches, 15, stream, &spread);
      print_row(shape, M, "int8 GEMV (dispatch)", t, bytes, spread, M == 1 ? dense_us : 0);
      if (M == 1) {
        std::printf("%-8s int8/bf16 GEMV time ratio at M=1: %.3f (vs cuBLAS bf16: %.3f)\n", shape.name, t / dense_us,
                    t / cublas_us);
      }
      if (M == 1 || M == 16 || M == 32) {
        GemvParams p;
        p.x = x;
        p.ldx = K;
        p.ldw = Kp;
        p.scales = scales;
        p.y = y;
        p.ldy = N;
        p.M = int(M);
        p.N = int(N);
        p.K = int(K);
        p.k_weights = int(Kp);
        const Variant* list = M == 1 ? kM1Variants : M == 16 ? kM16Variants : kM32Variants;
        const int count = M == 1 ? int(std::size(kM1Variants)) : M == 16 ? int(std::size(kM16Variants))
                                                                          : int(std::size(kM32Variants));
        for (int v = 0; v < count; ++v) {
          GemvParams q0 = p;
          q0.w = qs[0];
          BENCH_CUDA(cudaMemset(y, 0xff, M * N * 2));
          list[v].launch(q0, stream);
          BENCH_CUDA(cudaStreamSynchronize(stream));
          ok &= require(check_int8(weights(0), x, y, M, N, 31, 32), 8e-3, list[v].name, shape, M);
          double sp = 0;
          const double tv = bench::time_graph_us(
              [&](int i, cudaStream_t s) {
                GemvParams q = p;
                q.w = qs[i % nbuf];
                list[v].launch(q, s);
              },
              launches, 15, stream, &sp);
          print_row(shape, M, list[v].name, tv, bytes, sp);
        }
      }
      if (M == 1) {
        const double t16 = bench::time_graph_us(
            [&](int i, cudaStream_t s) { qb::kernels::int8_gemv(HalfType::kF16, x, K, weights(i), nullptr, y, N, 1, s); },
            launches, 15, stream, &spread);
        print_row(shape, 1, "int8 GEMV fp16 x", t16, bytes, spread);
        BENCH_CUDA(cudaMemset(y, 0xff, N * 2));
        qb::kernels::int8_gemv(HalfType::kBF16, x, K, weights(0, true), nullptr, y, N, 1, stream);
        BENCH_CUDA(cudaStreamSynchronize(stream));
        ok &= require(check_int8(weights(0, true), x, y, 1, N, 61, 1), 8e-3, "int8 gemv per-group", shape, 1);
        const double tg = bench::time_graph_us(
            [&](int i, cudaStream_t s) {
              qb::kernels::int8_gemv(HalfType::kBF16, x, K, weights(i, true), nullptr, y, N, 1, s);
            },
            launches, 15, stream, &spread);
        print_row(shape, 1, "int8 GEMV per-group 128", tg, bytes + N * groups * 4 - N * 4, spread);
      }
    }

    // ---- llm.int8 decode: activation quantization + fused GEMV ----
    {
      const size_t ws_bytes = qb::kernels::llm_int8_activation_bytes(32, K);
      void* ws = nullptr;
      BENCH_CUDA(cudaMalloc(&ws, ws_bytes));
      for (const int64_t M : {1, 8}) {
        const double bytes = double(q_bytes) + N * 4 + double(M) * K * 2 + double(M) * N * 2;
        BENCH_CUDA(cudaMemset(y, 0xff, M * N * 2));
        qb::kernels::llm_int8_gemv(HalfType::kBF16, x_outliers, K, weights(0), nullptr, y, N, M, 6.0f, ws, ws_bytes,
                                   stream);
        BENCH_CUDA(cudaStreamSynchronize(stream));
        ok &= require(check_llm_int8(weights(0), x_outliers, y, M, 6.0f), 8e-3, "llm.int8 gemv", shape, M);
        const double t = bench::time_graph_us(
            [&](int i, cudaStream_t s) {
              qb::kernels::llm_int8_gemv(HalfType::kBF16, x_outliers, K, weights(i), nullptr, y, N, M, 6.0f, ws,
                                         ws_bytes, s);
            },
            launches, 15, stream, &spread);
        print_row(shape, M, "llm.int8 decode (2 kernels)", t, bytes, spread, M == 1 ? dense_us : 0);
      }
      BENCH_CUDA(cudaFree(ws));
    }

    // ---- large M: chunked dequantize + cuBLAS, and the GEMV/prefill crossover ----
    if (prefill_shape) {
      const int64_t chunks[] = {0, 1 << 20, 2048};  // 0: whole W, scales folded, direct output
      size_t ws_bytes = 0;
      for (const int64_t c : chunks) ws_bytes = std::max(ws_bytes, qb::kernels::int8_prefill_workspace_bytes(kMaxM, N, K, c));
      ws_bytes = std::max(ws_bytes, qb::kernels::llm_int8_prefill_workspace_bytes(kMaxM, N, K, qb::kernels::kInt8PrefillChunkK));
      void* ws = nullptr;
      BENCH_CUDA(cudaMalloc(&ws, ws_bytes));
      for (const int64_t chunk : chunks) {
        BENCH_CUDA(cudaMemset(y, 0xff, kMaxM * N * 2));
        qb::kernels::int8_prefill_matmul(handle, HalfType::kBF16, x, K, weights(0), nullptr, y, N, kMaxM, ws,
                                         ws_bytes, chunk, stream);
        BENCH_CUDA(cudaStreamSynchronize(stream));
        ok &= require(check_int8(weights(0), x, y, kMaxM, N, 31, 8), 8e-3, "int8 prefill", shape, kMaxM);
        const double t = bench::time_graph_us(
            [&](int i, cudaStream_t s) {
              qb::kernels::int8_prefill_matmul(handle, HalfType::kBF16, x, K, weights(i), nullptr, y, N, kMaxM, ws,
                                               ws_bytes, chunk, s);
            },
            10, 10, stream, &spread);
        std::printf("%-8s K=%-6lld N=%-7lld M=%-4lld int8 prefill %-14s %9.2f us %7.0f TFLOP/s  x%.3f of cuBLAS bf16 "
                    "(spread %.3f)\n",
                    shape.name, (long long)K, (long long)N, (long long)kMaxM,
                    chunk == 0 ? "direct" : ("chunk " + std::to_string(std::min<int64_t>(chunk, Kp))).c_str(), t,
                    2.0 * kMaxM * N * K / (t * 1e-6) / 1e12, t / prefill_cublas_us, spread);
      }
      int device = 0, major = 0, minor = 0;
      BENCH_CUDA(cudaGetDevice(&device));
      BENCH_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
      BENCH_CUDA(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
      if (major == 9 && minor == 0) {  // the fused sm_90a kernel: shared-B, then register-A by split count
        using qb::kernels::Int8WgmmaForm;
        const std::pair<Int8WgmmaForm, int> cuts[] = {{Int8WgmmaForm::kSharedB, 1},  {Int8WgmmaForm::kRegisterA, 1},
                                                      {Int8WgmmaForm::kRegisterA, 2}, {Int8WgmmaForm::kRegisterA, 3},
                                                      {Int8WgmmaForm::kRegisterA, 4}, {Int8WgmmaForm::kRegisterA, 6},
                                                      {Int8WgmmaForm::kRegisterA, 8}};
        for (const int64_t M : {kMaxM, int64_t{128}}) {
          for (const auto& cut : cuts) {
            const Int8WgmmaForm form = cut.first;
            const int splits = cut.second;
            const size_t bytes = qb::kernels::int8_gemm_wgmma_workspace_bytes(M, N, form, splits);
            void* split_ws = nullptr;
            if (bytes > 0) BENCH_CUDA(cudaMalloc(&split_ws, bytes));
            BENCH_CUDA(cudaMemset(y, 0xff, kMaxM * N * 2));
            qb::kernels::int8_gemm_wgmma(HalfType::kBF16, x, K, weights(0), nullptr, y, N, M, stream, form, splits,
                                         split_ws, bytes);
            BENCH_CUDA(cudaStreamSynchronize(stream));
            const std::string name = std::string(form == Int8WgmmaForm::kSharedB ? "wgmma ss" : "wgmma rs") +
                                     " s" + std::to_string(splits);
            ok &= require(check_int8(weights(0), x, y, M, N, 31, 8), 8e-3, name.c_str(), shape, M);
            const double t = bench::time_graph_us(
                [&](int i, cudaStream_t s) {
                  qb::kernels::int8_gemm_wgmma(HalfType::kBF16, x, K, weights(i), nullptr, y, N, M, s, form, splits,
                                               split_ws, bytes);
                },
                10, 10, stream, &spread);
            std::printf("%-8s K=%-6lld N=%-7lld M=%-4lld int8 prefill %-14s %9.2f us %7.0f TFLOP/s  x%.3f of cuBLAS "
                        "bf16 at M=%lld (spread %.3f)\n",
                        shape.name, (long long)K, (long long)N, (long long)M, name.c_str(), t,
                        2.0 * M * N * K / (t * 1e-6) / 1e12, t / prefill_cublas_us, (long long)kMaxM, spread);
            if (split_ws != nullptr) BENCH_CUDA(cudaFree(split_ws));
          }
        }
      }
      {
        BENCH_CUDA(cudaMemset(y, 0xff, kMaxM * N * 2));
        qb::kernels::llm_int8_prefill(handle, HalfType::kBF16, x, K, weights(0), nullptr, y, N, kMaxM, 6.0f, ws,
                                      ws_bytes, qb::kernels::kInt8PrefillChunkK, stream);
        BENCH_CUDA(cudaStreamSynchronize(stream));
        const double t = bench::time_graph_us(
            [&](int i, cudaStream_t s) {
              qb::kernels::llm_int8_prefill(handle, HalfType::kBF16, x, K, weights(i), nullptr, y, N, kMaxM, 6.0f, ws,
                                            ws_bytes, qb::kernels::kInt8PrefillChunkK, s);
            },
            10, 10, stream, &spread);
        std::printf("%-8s K=%-6lld N=%-7lld M=%-4lld llm.int8 prefill              %9.2f us  x%.3f of cuBLAS bf16 "
                    "(spread %.3f)\n",
                    shape.name, (long long)K, (long long)N, (long long)kMaxM, t, t / prefill_cublas_us, spread);
      }
      for (const int64_t M : {16, 32, 48, 64, 128}) {
        const double bytes = double(q_bytes) + N * 4 + double(M) * K * 2 + double(M) * N * 2;
        if (M <= qb::kernels::kGemvMaxM) {
          const double t = bench::time_graph_us(
              [&](int i, cudaStream_t s) {
                qb::kernels::int8_gemv(HalfType::kBF16, x, K, weights(i), nullptr, y, N, M, s);
              },
              launches, 10, stream, &spread);
          print_row(shape, M, "int8 GEMV", t, bytes, spread);
        }
        const double t = bench::time_graph_us(
            [&](int i, cudaStream_t s) {
              qb::kernels::int8_prefill_matmul(handle, HalfType::kBF16, x, K, weights(i), nullptr, y, N, M, ws,
                                               ws_bytes, qb::kernels::kInt8PrefillChunkK, s);
            },
            launches, 10, stream, &spread);
        print_row(shape, M, "int8 prefill path", t, bytes, spread);
      }
      BENCH_CUDA(cudaFree(ws));
    }
    for (auto& q : qs) BENCH_CUDA(cudaFree(q));
    BENCH_CUDA(cudaFree(scales));
    BENCH_CUDA(cudaFree(group_scales));
    BENCH_CUDA(cudaFree(x));
    BENCH_CUDA(cudaFree(x_outliers));
    BENCH_CUDA(cudaFree(y));
  }
  std::printf(ok ? "done: all correctness checks passed\n" : "done: SOME CORRECTNESS CHECKS FAILED\n");
  return ok ? 0 : 1;
}
