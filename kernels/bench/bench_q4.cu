// Benchmark of the 4-bit kernels (nf4/fp4 absmax, nf4 double-quantized, awq) on Qwen2-7B shapes.
//
// Standalone (CUDA + cuBLAS, no libtorch). Order of work:
//   1. copy-bandwidth probe (1 GiB device-to-device, bytes read + written)
//   2. correctness: every kernel path vs a float64 CPU reference on fresh random weights and inputs, odd shapes
//      included, outputs poisoned with NaN first; relative error against a stated bound
//   3. timing: CUDA graphs of `kBatch` launches rotating over enough weight copies that L2 (50 MB) never holds
//      the weights; median over samples. Per shape / format / M: the automatic dispatch of q4_tile_gemm (and, at
//      M = 1 and 16, a sweep of its variants: tensor vs CUDA cores, warps per block, ring depth), its time, GB/s
//      of the bytes it must move (codes + scales + x + y), % of the copy probe, and cuBLAS bf16 time / ours.
//   --prefill: instead of the decode checks and timing, the prefill paths' checks, then M = 512 (and 128, 2048
//   without --quick) on the same shapes: cuBLAS bf16 on a dense weight, the dequantize + cuBLAS path and the
//   fused sm_90a kernel (q4_tile_gemm_wgmma), with TFLOP/s.
// Usage: qb_bench_q4 [--quick] [--only-check] [--probes] [--no-sweep] [--prefill] [--prefill-shape qkv|o|gate_up|down]
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "quantbench/kernels/fused_prefill_policy.h"
#include "quantbench/kernels/q4_gemm.h"
#include "quantbench/kernels/q4_layout.h"

using namespace qb::kernels;

namespace {

#define CK(call)                                                                                     \
  do {                                                                                               \
    cudaError_t e_ = (call);                                                                         \
    if (e_ != cudaSuccess) {                                                                         \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorString(e_), __FILE__, __LINE__, #call); \
      std::exit(1);                                                                                  \
    }                                                                                                \
  } while (0)
#define CB(call)                                                                                     \
  do {                                                                                               \
    cublasStatus_t s_ = (call);                                                                      \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                               \
      std::fprintf(stderr, "cuBLAS error %d at %s:%d: %s\n", int(s_), __FILE__, __LINE__, #call);   \
      std::exit(1);                                                                                  \
    }                                                                                                \
  } while (0)

constexpr float kNf4[16] = {-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
                            -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
                            0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f,
                            0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
                            0.7229568362236023f, 1.0f};

// kNf4A16: nf4 whose absmax values are bf16-exact (as from bf16 weights), stored as 16 bits (kAbsmax16).
enum class Fmt { kNf4, kNf4A16, kNf4Dq, kFp4B128, kAwq };
const char* fmt_name(Fmt f) {
  switch (f) {
    case Fmt::kNf4: return "nf4";
    case Fmt::kNf4A16: return "nf4-a16";
    case Fmt::kNf4Dq: return "nf4-dq";
    case Fmt::kFp4B128: return "fp4-b128";
    case Fmt::kAwq: return "awq-g128";
  }
  return "?";
}

float h2f(uint16_t bits, DType dt) {
  if (dt == DType::kF16) {
    __half_raw r;
    r.x = bits;
    return __half2float(__half(r));
  }
  uint32_t w = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &w, 4);
  return f;
}
uint16_t f2h(float v, DType dt) {
  if (dt == DType::kF16) {
    __half h = __float2half_rn(v);
    return __half_raw(h).x;
  }
  __nv_bfloat16 b = __float2bfloat16_rn(v);
  return __nv_bfloat16_raw(b).x;
}

// ---- a host-side weight in canonical form, plus its device tile form --------------------------------
struct HostWeight {
  Fmt fmt;
  int64_t N, K, bs;             // bs: absmax block (nf4/fp4) or group (awq)
  std::vector<uint8_t> codes;   // canonical
  std::vector<float> absmax;    // per flat block (nf4 plain / fp4); for nested: resolved values
  std::vector<uint8_t> qabs;    // nested codes per flat block
  std::vector<float2> nested;   // per 256 blocks
  std::vector<float> dyn;       // nested code map
  std::vector<uint16_t> gscale; // awq [N][K/g] fp16 bits
  std::vector<uint8_t> gzero;   // awq [N][K/g]
  float codebook[16];
  float w(int64_t n, int64_t k) const {
    const int64_t e = n * K + k;
    const uint8_t byte = codes[e / 2];
    const int c = (e % 2 == 0) ? byte >> 4 : byte & 15;
    if (fmt == Fmt::kAwq) {
      const int64_t gi = n * (K / bs) + k / bs;
      return (static_cast<float>(c) - gzero[gi]) * h2f(gscale[gi], DType::kF16);
    }
    return codebook[c] * absmax[e / bs];
  }
};

HostWeight make_host_weight(Fmt fmt, int64_t N, int64_t K, std::mt19937& rng) {
  HostWeight h;
  h.fmt = fmt;
  h.N = N;
  h.K = K;
  h.bs = fmt == Fmt::kAwq ? 128 : fmt == Fmt::kFp4B128 ? 128 : 64;
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> uni(0.f, 1.f);
  h.codes.resize(q4_flat_bytes(N, K));
  for (auto& c : h.codes) c = static_cast<uint8_t>(byte(rng));
  if (fmt == Fmt::kAwq) {
    for (int i = 0; i < 16; ++i) h.codebook[i] = static_cast<float>(i);
    h.gscale.resize(N * (K / h.bs));
    h.gzero.resize(N * (K / h.bs));
    for (auto& s : h.gscale) s = f2h(0.002f + 0.01f * uni(rng), DType::kF16);
    for (auto& z : h.gzero) z = static_cast<uint8_t>(byte(rng) & 15);
    return h;
  }
  if (fmt == Fmt::kFp4B128) {
    const float fp4[8] = {0.f, 0.0625f, 8.f, 12.f, 4.f, 6.f, 2.f, 3.f};
    for (int i = 0; i < 16; ++i) h.codebook[i] = (i < 8 ? 1.f : -1.f) * fp4[i & 7] / 12.f;
  } else {
    std::memcpy(h.codebook, kNf4, sizeof(kNf4));
  }
  const int64_t blocks = (N * K + h.bs - 1) / h.bs;
  h.absmax.resize(blocks);
  if (fmt == Fmt::kNf4Dq) {
    h.dyn.resize(256);
    for (int i = 0; i < 256; ++i) h.dyn[i] = -1.f + 2.f * i / 255.f;
    h.qabs.resize(blocks);
    h.nested.resize((blocks + 255) / 256);
    for (auto& q : h.qabs) q = static_cast<uint8_t>(byte(rng));
    for (auto& n : h.nested) n = make_float2(0.01f + 0.01f * uni(rng), 0.03f + 0.01f * uni(rng));
    for (int64_t b = 0; b < blocks; ++b) {  // as bitsandbytes: fp32 mul, then fp32 add
      volatile float prod = h.dyn[h.qabs[b]] * h.nested[b / 256].x;
      h.absmax[b] = prod + h.nested[b / 256].y;
    }
  } else {
    for (auto& a : h.absmax) a = 0.02f + 0.08f * uni(rng);
    if (fmt == Fmt::kNf4A16)
      for (auto& a : h.absmax) a = h2f(f2h(a, DType::kBF16), DType::kBF16);  // exact in bf16
  }
  return h;
}

struct DeviceWeight {
  Q4TileWeights tw;
  Q4FlatWeights fw;
  bool tiles = false;
  std::vector<void*> buffers;
  int64_t bytes = 0;  // codes + scales the kernel reads
  ~DeviceWeight() {
    for (void* p : buffers) cudaFree(p);
  }
};

template <typename T>
T* upload(DeviceWeight& d, const std::vector<T>& v) {
  void* p = nullptr;
  CK(cudaMalloc(&p, std::max<size_t>(16, v.size() * sizeof(T))));
  CK(cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  d.buffers.push_back(p);
  return static_cast<T*>(p);
}

// Tile form (K % 64 == 0, bs >= 64) or flat form (anything else), mirroring what src/quant does.
void to_device(const HostWeight& h, DeviceWeight& d, bool force_flat = false) {
  const int64_t N = h.N, K = h.K;
  d.tiles = !force_flat && K % 64 == 0 && h.bs >= 64;
  if (!d.tiles) {
    Q4FlatWeights& f = d.fw;
    f.N = N;
    f.K = K;
    f.blocksize = h.bs;
    std::memcpy(f.codebook, h.codebook, sizeof(f.codebook));
    f.codes = upload(d, h.codes);
    d.bytes = static_cast<int64_t>(h.codes.size());
    if (h.fmt == Fmt::kAwq) {
      std::vector<uint32_t> words(h.gscale.size());
      for (size_t i = 0; i < words.size(); ++i) words[i] = q4_affine_word(h.gscale[i], h.gzero[i]);
      f.mode = Q4ScaleMode::kAffine;
      f.affine = upload(d, words);
      d.bytes += static_cast<int64_t>(words.size() * 4);
    } else {
      f.mode = Q4ScaleMode::kAbsmaxF32;
      f.absmax = upload(d, h.absmax);
      d.bytes += static_cast<int64_t>(h.absmax.size() * 4);
    }
    return;
  }
  Q4TileWeights& t = d.tw;
  t.N = N;
  t.K = K;
  std::memcpy(t.codebook, h.codebook, sizeof(t.codebook));
  std::vector<uint8_t> tiles(q4_tile_bytes(N, K));
  q4_build_tiles(h.codes.data(), N, K, tiles.data());
  t.tiles = upload(d, tiles);
  d.bytes = static_cast<int64_t>(tiles.size());
  const bool aligned = K % h.bs == 0;
  const int64_t unit = aligned ? h.bs : 64;
  int shift = 0;
  while ((int64_t{64} << shift) < unit) ++shift;
  t.unit_shift = shift;
  const int64_t units = K / unit;
  if (h.fmt == Fmt::kAwq) {
    std::vector<uint32_t> words(N * units);
    for (int64_t i = 0; i < N * units; ++i) words[i] = q4_affine_word(h.gscale[i], h.gzero[i]);
    auto tiled = q4_tile_scales(words.data(), N, units, uint32_t{0});
    t.mode = Q4ScaleMode::kAffine;
    t.scales = upload(d, tiled);
    d.bytes += static_cast<int64_t>(tiled.size() * 4);
  } else if (h.fmt == Fmt::kNf4Dq && aligned) {
    auto tiled = q4_tile_scales(h.qabs.data(), N, units, uint8_t{0});
    t.mode = Q4ScaleMode::kAbsmaxNested;
    t.scales = upload(d, tiled);
    t.nested = upload(d, h.nested);
    t.nested_code = upload(d, h.dyn);
    d.bytes += static_cast<int64_t>(tiled.size() + h.nested.size() * 8 + 1024);
  } else {
    std::vector<float> per(N * units);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t u = 0; u < units; ++u) per[n * units + u] = h.absmax[(n * K + u * unit) / h.bs];
    if (h.fmt == Fmt::kNf4A16) {
      std::vector<uint16_t> bits(per.size());
      for (size_t i = 0; i < per.size(); ++i) bits[i] = f2h(per[i], DType::kBF16);
      auto tiled = q4_tile_scales(bits.data(), N, units, uint16_t{0});
      t.mode = Q4ScaleMode::kAbsmax16;
      t.scales = upload(d, tiled);
      d.bytes += static_cast<int64_t>(tiled.size() * 2);
      return;
    }
    auto tiled = q4_tile_scales(per.data(), N, units, 0.f);
    t.mode = Q4ScaleMode::kAbsmaxF32;
    t.scales = upload(d, tiled);
    d.bytes += static_cast<int64_t>(tiled.size() * 4);
  }
}

// ---- correctness -----------------------------------------------------------------------------------
struct CheckResult {
  double rel;
  bool unwritten;
};

CheckResult compare(const HostWeight& h, const std::vector<uint16_t>& x, const std::vector<uint16_t>& y,
                    const std::vector<uint16_t>& bias, int64_t M, DType dt, const std::vector<int64_t>& rows) {
  double num = 0, den = 0;
  bool unwritten = false;
  std::vector<float> wrow(h.K);
  for (int64_t n : rows) {
    for (int64_t k = 0; k < h.K; ++k) wrow[k] = h.w(n, k);
    for (int64_t m = 0; m < M; ++m) {
      double ref = bias.empty() ? 0.0 : h2f(bias[n], dt);
      for (int64_t k = 0; k < h.K; ++k) ref += static_cast<double>(h2f(x[m * h.K + k], dt)) * wrow[k];
      const float got = h2f(y[m * h.N + n], dt);
      if (!std::isfinite(got)) unwritten = true;
      num += (got - ref) * (got - ref);
      den += ref * ref;
    }
  }
  return {std::sqrt(num / std::max(den, 1e-300)), unwritten};
}

// path 0: q4_tile_gemm automatic (or flat + cuBLAS when the shape needs it), 1: prefill rows, 2: prefill cols,
// 3: flat forced, 4: tensor cores with 4 warps and a 2-deep ring, 5: CUDA cores (M = 1), 6: persistent grid of 1,
// 7 / 9 / 8: the fused sm_90a prefill kernel, register-A form with 128 / 256 tokens per block, shared-B form
bool run_check(Fmt fmt, int64_t N, int64_t K, int64_t M, DType dt, int path, cublasHandle_t handle, std::mt19937& rng) {
  HostWeight h = make_host_weight(fmt, N, K, rng);
  DeviceWeight d;
  to_device(h, d, path == 3);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<uint16_t> x(M * K), bias(N);
  for (auto& v : x) v = f2h(normal(rng), dt);
  for (auto& v : bias) v = f2h(0.1f * normal(rng), dt);
  void *dx, *dy, *db, *scratch = nullptr;
  float* accum = nullptr;
  CK(cudaMalloc(&dx, x.size() * 2));
  CK(cudaMalloc(&dy, M * N * 2));
  CK(cudaMalloc(&db, N * 2));
  CK(cudaMemcpy(dx, x.data(), x.size() * 2, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(db, bias.data(), N * 2, cudaMemcpyHostToDevice));
  CK(cudaMemset(dy, 0xFF, M * N * 2));  // NaN in fp16 and bf16
  const char* what = "?";
  if (!d.tiles) {
    what = "flat+cublas";
    CK(cudaMalloc(&scratch, N * K * 2));
    q4_flat_matmul_cublas(handle, dt, d.fw, dx, K, db, dy, N, M, scratch, 0);
  } else if (path == 7 || path == 8 || path == 9) {
    const Q4WgmmaForm form = path == 7   ? Q4WgmmaForm::kRegisterA128
                             : path == 9 ? Q4WgmmaForm::kRegisterA256
                                         : Q4WgmmaForm::kSharedB;
    what = path == 7 ? "wgmma-rs128" : path == 9 ? "wgmma-rs256" : "wgmma-ss";
    q4_tile_gemm_wgmma(dt, d.tw, dx, K, db, dy, N, M, 0, form);
  } else if (path == 0 || path >= 4) {
    Q4GemvConfig cfg;
    what = "gemv-auto";
    if (path == 4) {
      cfg.compute = Q4GemvCompute::kTensorCores;
      cfg.warps = 4;
      cfg.stages = 2;
      what = "gemv-tc-w4s2";
    } else if (path == 5) {
      cfg.compute = Q4GemvCompute::kCudaCores;
      what = "gemv-cuda-cores";
    } else if (path == 6) {
      cfg.grid = 1;
      what = "gemv-grid1";
    }
    q4_tile_gemm(dt, d.tw, dx, K, db, dy, N, M, 0, cfg);
  } else {
    Q4PrefillPlan plan;
    plan.split = path == 1 ? Q4PrefillSplit::kRows : Q4PrefillSplit::kCols;
    plan.chunk = path == 1 ? 48 : 128;  // small chunks so that several are exercised
    what = path == 1 ? "rows+cublas" : "cols+cublas";
    CK(cudaMalloc(&scratch, std::max<int64_t>(16, q4_prefill_scratch_bytes(plan, dt, N, K))));
    if (q4_prefill_accum_bytes(plan, M, N) > 0) CK(cudaMalloc(&accum, q4_prefill_accum_bytes(plan, M, N)));
    q4_tile_matmul_cublas(handle, dt, d.tw, plan, dx, K, db, dy, N, M, scratch, accum, 0);
  }
  CK(cudaDeviceSynchronize());
  std::vector<uint16_t> y(M * N);
  CK(cudaMemcpy(y.data(), dy, y.size() * 2, cudaMemcpyDeviceToHost));
  std::vector<int64_t> rows;
  if (N <= 512) {
    for (int64_t n = 0; n < N; ++n) rows.push_back(n);
  } else {
    std::uniform_int_distribution<int64_t> pick(0, N - 1);
    for (int i = 0; i < 96; ++i) rows.push_back(pick(rng));
    rows.push_back(N - 1);
  }
  CheckResult r = compare(h, x, y, bias, M, dt, rows);
  // Bound: the kernel rounds codebook values to the activation type (fp16 2^-11, bf16 2^-8 relative, random
  // signs over K terms average down) and rounds y once; fp32 accumulation (the CUDA-core path sums 8 products
  // per half in the activation type first: ~1.2 u more, kernels/q4_gemv.cuh).
  const double bound = dt == DType::kF16 ? 2e-3 : 1e-2;
  const bool ok = !r.unwritten && r.rel < bound;
  std::printf("check %-8s %-16s N=%-6lld K=%-6lld M=%-4lld %s  rel=%.2e (bound %.0e)%s %s\n", fmt_name(fmt), what,
              (long long)N, (long long)K, (long long)M, dt == DType::kF16 ? "f16 " : "bf16", r.rel, bound,
              r.unwritten ? " UNWRITTEN" : "", ok ? "ok" : "FAIL");
  cudaFree(dx);
  cudaFree(dy);
  cudaFree(db);
  if (scratch) cudaFree(scratch);
  if (accum) cudaFree(accum);
  return ok;
}

// ---- timing ------------------------------------------------------------------------------------------
__global__ void fill_random_kernel(uint32_t* p, int64_t words, uint32_t seed) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < words;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint32_t v = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    v ^= v >> 13;
    v *= 0x5bd1e995u;
    v ^= v >> 15;
    p[i] = v;
  }
}

// Random half/bf16 values in [-1, 1) (exponent forced), for activations and bf16 weights.
__global__ void fill_half_kernel(uint16_t* p, int64_t n, uint32_t seed, bool bf16) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint32_t v = static_cast<uint32_t>(i) * 2246822519u ^ seed;
    v ^= v >> 15;
    v *= 0x27d4eb2du;
    v ^= v >> 13;
    const float f = (static_cast<float>(v & 0xFFFFFF) / 16777216.f) * 2.f - 1.f;
    p[i] = bf16 ? __nv_bfloat16_raw(__float2bfloat16_rn(f)).x : __half_raw(__float2half_rn(f)).x;
  }
}

void fill_random(void* p, int64_t bytes, uint32_t seed) {
  fill_random_kernel<<<1024, 256>>>(static_cast<uint32_t*>(p), bytes / 4, seed);
  CK(cudaGetLastError());
}

// Device-random weights already in tile layout (timing only: values do not matter, but never zeros).
struct TimedWeight {
  std::vector<Q4TileWeights> copies;
  std::vector<void*> buffers;
  int64_t bytes = 0;
  ~TimedWeight() {
    for (void* p : buffers) cudaFree(p);
  }
};

void* dalloc(TimedWeight& t, int64_t bytes, uint32_t seed) {
  void* p = nullptr;
  CK(cudaMalloc(&p, std::max<int64_t>(bytes, 16)));
  fill_random(p, (bytes + 3) / 4 * 4 >= 4 ? bytes / 4 * 4 : 0, seed);
  t.buffers.push_back(p);
  return p;
}

__global__ void fill_scales_kernel(float* p, int64_t n, float lo, float hi) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    p[i] = lo + (hi - lo) * static_cast<float>((i * 2654435761u) & 1023) / 1024.f;
}

__global__ void fill_absmax16_kernel(uint16_t* p, int64_t n) {  // bf16 bits of 0.02 .. 0.1
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    p[i] = __bfloat16_as_ushort(__float2bfloat16_rn(0.02f + 0.08f * static_cast<float>((i * 2654435761u) & 1023) / 1024.f));
}

__global__ void fill_affine_kernel(uint32_t* p, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    p[i] = static_cast<uint32_t>(__half_raw(__float2half_rn(0.002f + 0.00001f * (i & 511))).x) | (((i * 7) & 15) << 16);
}

void make_timed(Fmt fmt, int64_t N, int64_t K, int copies, TimedWeight& t) {
  const int64_t tile_bytes = q4_tile_bytes(N, K);
  const int64_t unit = fmt == Fmt::kAwq || fmt == Fmt::kFp4B128 ? 128 : 64;
  const int64_t units = K / unit, scale_count = q4_n_tiles(N) * 16 * units;
  std::vector<float> dyn(256);
  for (int i = 0; i < 256; ++i) dyn[i] = -1.f + 2.f * i / 255.f;
  for (int c = 0; c < copies; ++c) {
    Q4TileWeights w;
    w.N = N;
    w.K = K;
    w.unit_shift = unit == 128 ? 1 : 0;
    if (fmt == Fmt::kAwq) {
      for (int i = 0; i < 16; ++i) w.codebook[i] = static_cast<float>(i);
    } else {
      std::memcpy(w.codebook, kNf4, sizeof(kNf4));
    }
    w.tiles = static_cast<uint8_t*>(dalloc(t, tile_bytes, 1000 + c));
    t.bytes = tile_bytes;
    if (fmt == Fmt::kAwq) {
      w.mode = Q4ScaleMode::kAffine;
      void* s = dalloc(t, scale_count * 4, 0);
      fill_affine_kernel<<<1024, 256>>>(static_cast<uint32_t*>(s), scale_count);
      w.scales = s;
      t.bytes += scale_count * 4;
    } else if (fmt == Fmt::kNf4Dq) {
      w.mode = Q4ScaleMode::kAbsmaxNested;
      w.scales = dalloc(t, scale_count, 2000 + c);
      const int64_t nested = (N * units + 255) / 256;
      void* ns = dalloc(t, nested * 8, 0);
      fill_scales_kernel<<<256, 256>>>(static_cast<float*>(ns), nested * 2, 0.01f, 0.04f);
      w.nested = static_cast<float2*>(ns);
      void* dc = dalloc(t, 1024, 0);
      CK(cudaMemcpy(dc, dyn.data(), 1024, cudaMemcpyHostToDevice));
      w.nested_code = static_cast<float*>(dc);
      t.bytes += scale_count + nested * 8 + 1024;
    } else if (fmt == Fmt::kNf4A16) {
      w.mode = Q4ScaleMode::kAbsmax16;
      void* s = dalloc(t, scale_count * 2, 0);
      fill_absmax16_kernel<<<1024, 256>>>(static_cast<uint16_t*>(s), scale_count);
      w.scales = s;
      t.bytes += scale_count * 2;
    } else {
      w.mode = Q4ScaleMode::kAbsmaxF32;
      void* s = dalloc(t, scale_count * 4, 0);
      fill_scales_kernel<<<1024, 256>>>(static_cast<float*>(s), scale_count, 0.02f, 0.1f);
      w.scales = s;
      t.bytes += scale_count * 4;
    }
    t.copies.push_back(w);
  }
  CK(cudaDeviceSynchronize());
}

constexpr int kBatch = 20;
constexpr int kSamples = 15;

// Median time of one call of `body(i)` (i = call index, for buffer rotation), via graphs of kBatch calls.
template <typename Body>
double time_us(Body body) {
  cudaStream_t stream;
  CK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  for (int i = 0; i < 3; ++i) body(i, stream);  // warm-up (and first-call attribute setup)
  CK(cudaStreamSynchronize(stream));
  cudaGraph_t graph;
  CK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  for (int i = 0; i < kBatch; ++i) body(i, stream);
  CK(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec;
  CK(cudaGraphInstantiate(&exec, graph, 0));
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  for (int i = 0; i < 3; ++i) CK(cudaGraphLaunch(exec, stream));  // clocks up, caches in steady state
  std::vector<double> samples;
  for (int s = 0; s < kSamples; ++s) {
    CK(cudaEventRecord(a, stream));
    CK(cudaGraphLaunch(exec, stream));
    CK(cudaEventRecord(b, stream));
    CK(cudaEventSynchronize(b));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    samples.push_back(1000.0 * ms / kBatch);
  }
  CK(cudaGetLastError());
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  cudaStreamDestroy(stream);
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

// Enough copies of a random bf16 weight [N, K] that rotating over them keeps L2 (50 MB) from holding the one in
// use, and cuBLAS bf16 y[M, N] = x W^T on copy i: the dense reference every 4-bit timing is compared with.
struct DenseCopies {
  std::vector<void*> w;
  DenseCopies(int64_t N, int64_t K, int64_t l2_guard) {
    const int64_t bytes = N * K * 2;
    w.resize(static_cast<size_t>(std::max<int64_t>(2, (l2_guard + bytes - 1) / bytes)));
    for (size_t c = 0; c < w.size(); ++c) {
      CK(cudaMalloc(&w[c], bytes));
      fill_half_kernel<<<1024, 256>>>(static_cast<uint16_t*>(w[c]), N * K, 77 + static_cast<uint32_t>(c), true);
    }
  }
  ~DenseCopies() {
    for (void* p : w) cudaFree(p);
  }
  void gemm(cublasHandle_t handle, int i, const void* x, void* y, int64_t N, int64_t K, int64_t M) const {
    const float alpha = 1.f, beta = 0.f;
    CB(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, w[i % w.size()], CUDA_R_16BF, K, x,
                    CUDA_R_16BF, K, &beta, y, CUDA_R_16BF, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
};

double copy_bandwidth_gbps() {
  const size_t bytes = size_t{1} << 30;
  void *a, *b;
  CK(cudaMalloc(&a, bytes));
  CK(cudaMalloc(&b, bytes));
  CK(cudaMemset(a, 1, bytes));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  std::vector<double> t;
  for (int i = 0; i < 12; ++i) {
    CK(cudaEventRecord(e0));
    CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
    CK(cudaEventRecord(e1));
    CK(cudaEventSynchronize(e1));
    float ms;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    if (i >= 2) t.push_back(ms);
  }
  std::sort(t.begin(), t.end());
  cudaFree(a);
  cudaFree(b);
  return 2.0 * bytes / (t[t.size() / 2] * 1e-3) / 1e9;
}

// ---- memory probes: the decode kernel's access pattern without its arithmetic -------------------------------
// A block of `warps` warps per 16-row tile, each warp streaming its contiguous share of the tile's chunks:
// (a) register ring of D outstanding 16-byte loads per lane (like q4_tile_gemm v2);
// (b) the bulk copy engine into a shared-memory ring of 4 stages x CPS chunks (like v3).
template <int D>
__global__ void probe_ldg_kernel(const uint8_t* __restrict__ tiles, int k_chunks, uint32_t* sink) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const int per = (k_chunks + warps - 1) / warps;
  const int c0 = min(k_chunks, warp * per), c1 = min(k_chunks, c0 + per);
  const uint8_t* base = tiles + (static_cast<int64_t>(blockIdx.x) * k_chunks + c0) * 512 + lane * 16;
  uint4 ring[D];
  uint32_t acc = 0;
#pragma unroll
  for (int s = 0; s < D; ++s)
    if (c0 + s < c1) asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(ring[s].x), "=r"(ring[s].y), "=r"(ring[s].z), "=r"(ring[s].w) : "l"(base + s * 512));
  for (int b = 0; b < c1 - c0; b += D) {
#pragma unroll
    for (int s = 0; s < D; ++s) {
      const int rel = b + s;
      if (rel >= c1 - c0) break;
      const uint4 v = ring[s];
      if (rel + D < c1 - c0)
        asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(ring[s].x), "=r"(ring[s].y), "=r"(ring[s].z), "=r"(ring[s].w) : "l"(base + static_cast<int64_t>(rel + D) * 512));
      acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
  }
  if (acc == 0x9e3779b9u) sink[0] = acc;
}

template <int CPS>
__global__ void probe_bulk_kernel(const uint8_t* __restrict__ tiles, int k_chunks, uint32_t* sink) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
  __trap();  // the bulk copy engine is Hopper's
#else
  constexpr int STAGES = 4;
  extern __shared__ __align__(128) uint8_t ring_all[];
  __shared__ uint64_t bars[8][STAGES];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const int per = (k_chunks + warps - 1) / warps;
  const int c0 = min(k_chunks, warp * per), c1 = min(k_chunks, c0 + per), count = c1 - c0;
  const int n_stages = (count + CPS - 1) / CPS;
  uint8_t* ring = ring_all + warp * STAGES * CPS * 512;
  const uint8_t* src = tiles + (static_cast<int64_t>(blockIdx.x) * k_chunks + c0) * 512;
  auto bar_addr = [&](int st) { return static_cast<uint32_t>(__cvta_generic_to_shared(&bars[warp][st])); };
  if (lane == 0) {
    for (int st = 0; st < STAGES; ++st) asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(bar_addr(st)));
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncwarp();
  auto issue = [&](int st) {
    const uint32_t bytes = static_cast<uint32_t>(min(CPS, count - st * CPS) * 512);
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar_addr(st % STAGES)), "r"(bytes) : "memory");
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                     static_cast<uint32_t>(__cvta_generic_to_shared(ring + (st % STAGES) * CPS * 512))),
                 "l"(src + static_cast<int64_t>(st) * CPS * 512), "r"(bytes), "r"(bar_addr(st % STAGES))
                 : "memory");
  };
  if (lane == 0)
    for (int st = 0; st < STAGES && st < n_stages; ++st) issue(st);
  uint32_t acc = 0;
  for (int st = 0; st < n_stages; ++st) {
    asm volatile("{\n.reg .pred p;\nW_%=:\nmbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n@!p bra W_%=;\n}\n" ::"r"(
                     bar_addr(st % STAGES)),
                 "r"((st / STAGES) & 1)
                 : "memory");
    const int nch = min(CPS, count - st * CPS);
    for (int c = 0; c < nch; ++c) {
      const uint4 v = *reinterpret_cast<const uint4*>(ring + ((st % STAGES) * CPS + c) * 512 + lane * 16);
      acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    __syncwarp();
    if (lane == 0 && st + STAGES < n_stages) {
      asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
      issue(st + STAGES);
    }
  }
  if (acc == 0x9e3779b9u) sink[0] = acc;
#endif
}

void run_probes(double copy_gbps) {
  uint32_t* sink;
  CK(cudaMalloc(&sink, 16));
  struct P {
    const char* name;
    int64_t K, N;
  };
  for (P p : {P{"down", 18944, 3584}, P{"gate_up", 3584, 37888}, P{"lm_head", 3584, 152064}}) {
    const int64_t bytes = q4_tile_bytes(p.N, p.K);
    const int copies = static_cast<int>(std::max<int64_t>(2, ((int64_t{200} << 20) + bytes - 1) / bytes));
    std::vector<uint8_t*> bufs(copies);
    for (auto& b : bufs) {
      CK(cudaMalloc(&b, bytes));
      fill_random(b, bytes, 9);
    }
    const unsigned tiles = static_cast<unsigned>(q4_n_tiles(p.N));
    const int kc = static_cast<int>(p.K / 64);
    for (int warps : {4, 8}) {
      auto report = [&](const char* what, double us) {
        const double gbps = bytes / (us * 1e-6) / 1e9;
        std::printf("probe | %-8s | %-12s | w%d | %8.1f us | %6.0f GB/s | %5.1f%% copy |\n", p.name, what, warps, us, gbps,
                    100 * gbps / copy_gbps);
      };
      report("ldg ring 4", time_us([&](int i, cudaStream_t st) { probe_ldg_kernel<4><<<tiles, warps * 32, 0, st>>>(bufs[i % copies], kc, sink); }));
      report("ldg ring 8", time_us([&](int i, cudaStream_t st) { probe_ldg_kernel<8><<<tiles, warps * 32, 0, st>>>(bufs[i % copies], kc, sink); }));
      for (int cps : {2, 4}) {
        const int smem = warps * 4 * cps * 512;
        if (cps == 2) {
          CK(cudaFuncSetAttribute(probe_bulk_kernel<2>, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 << 10));
          report("bulk 4x2", time_us([&](int i, cudaStream_t st) { probe_bulk_kernel<2><<<tiles, warps * 32, smem, st>>>(bufs[i % copies], kc, sink); }));
        } else {
          CK(cudaFuncSetAttribute(probe_bulk_kernel<4>, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 << 10));
          report("bulk 4x4", time_us([&](int i, cudaStream_t st) { probe_bulk_kernel<4><<<tiles, warps * 32, smem, st>>>(bufs[i % copies], kc, sink); }));
        }
      }
    }
    for (auto b : bufs) cudaFree(b);
  }
  cudaFree(sink);
}

struct Shape {
  const char* name;
  int64_t K, N;
};

}  // namespace

// ---- prefill timing: M rows at once, the dequantize + cuBLAS path against the fused kernel ------------------------
template <typename Bind>
void run_prefill_timing(cublasHandle_t handle, Bind bind, bool quick, const char* only_shape) {
  struct PShape {
    const char* name;
    int64_t K, N;
  };
  std::vector<PShape> shapes = {{"qkv", 3584, 4608}, {"o", 3584, 3584}, {"gate_up", 3584, 37888}, {"down", 18944, 3584}};
  std::vector<int64_t> Ms = {512, 128, 2048};
  if (quick) Ms = {512};
  const int64_t l2_guard = int64_t{200} << 20;
  std::vector<std::string> rows;
  for (const PShape& s : shapes) {
    if (only_shape != nullptr && std::strcmp(only_shape, s.name) != 0) continue;
    const int64_t max_m = Ms.back() > 512 ? Ms.back() : 512;
    const DenseCopies dense(s.N, s.K, l2_guard);
    void *dx, *dy, *scratch;
    CK(cudaMalloc(&dx, max_m * s.K * 2));
    CK(cudaMalloc(&dy, max_m * s.N * 2));
    CK(cudaMalloc(&scratch, s.N * s.K * 2));
    fill_half_kernel<<<1024, 256>>>(static_cast<uint16_t*>(dx), max_m * s.K, 5, true);
    for (int64_t M : Ms) {
      const double flop = 2.0 * M * s.N * s.K;
      const double cub = time_us([&](int i, cudaStream_t st) {
        bind(st);
        dense.gemm(handle, i, dx, dy, s.N, s.K, M);
      });
      char line[256];
      std::snprintf(line, sizeof(line), "| %-8s | %-8s | %4lld | %-16s | %8.1f | %6.0f | 1.00x |", s.name, "bf16",
                    (long long)M, "cublas", cub, flop / cub * 1e-6);
      rows.push_back(line);
      std::printf("prefill %s\n", line);
      for (Fmt f : {Fmt::kNf4, Fmt::kNf4A16, Fmt::kNf4Dq, Fmt::kAwq}) {
        TimedWeight tw;
        const int64_t one = q4_tile_bytes(s.N, s.K);
        const int copies = static_cast<int>(std::max<int64_t>(2, (l2_guard + one - 1) / one));
        make_timed(f, s.N, s.K, copies, tw);
        const Q4PrefillPlan plan = q4_default_prefill_plan(M, s.N, s.K);
        const double two_pass = time_us([&](int i, cudaStream_t st) {
          bind(st);
          q4_tile_matmul_cublas(handle, DType::kBF16, tw.copies[i % copies], plan, dx, s.K, nullptr, dy, s.N, M,
                                scratch, nullptr, st);
        });
        const char* names[4] = {"dequant+cublas", "wgmma rs 128", "wgmma rs 256", "wgmma ss (smem)"};
        const Q4WgmmaForm forms[3] = {Q4WgmmaForm::kRegisterA128, Q4WgmmaForm::kRegisterA256, Q4WgmmaForm::kSharedB};
        double times[4] = {two_pass};
        for (int v = 1; v < 4; ++v) {
          times[v] = time_us([&](int i, cudaStream_t st) {
            q4_tile_gemm_wgmma(DType::kBF16, tw.copies[i % copies], dx, s.K, nullptr, dy, s.N, M, st, forms[v - 1]);
          });
        }
        for (int v = 0; v < 4; ++v) {
          const double us = times[v];
          std::snprintf(line, sizeof(line), "| %-8s | %-8s | %4lld | %-16s | %8.1f | %6.0f | %4.2fx |", s.name,
                        fmt_name(f), (long long)M, names[v], us, flop / us * 1e-6, us / cub);
          rows.push_back(line);
          std::printf("prefill %s\n", line);
        }
        if (f != Fmt::kNf4Dq) {  // split-K: the register-A forms by split count (the policy's model is fitted to these)
          for (const Q4WgmmaForm form : {Q4WgmmaForm::kRegisterA128, Q4WgmmaForm::kRegisterA256}) {
            for (const int splits : {2, 3, 4, 6, 8}) {
              const size_t bytes = q4_tile_gemm_wgmma_workspace_bytes(M, s.N, form, splits);
              void* ws = nullptr;
              CK(cudaMalloc(&ws, bytes));
              const double us = time_us([&](int i, cudaStream_t st) {
                q4_tile_gemm_wgmma(DType::kBF16, tw.copies[i % copies], dx, s.K, nullptr, dy, s.N, M, st, form,
                                   splits, ws, bytes);
              });
              CK(cudaFree(ws));
              std::snprintf(line, sizeof(line), "| %-8s | %-8s | %4lld | wgmma rs %d s%-4d | %8.1f | %6.0f | %4.2fx |",
                            s.name, fmt_name(f), (long long)M, form == Q4WgmmaForm::kRegisterA128 ? 128 : 256, splits,
                            us, flop / us * 1e-6, us / cub);
              rows.push_back(line);
              std::printf("prefill %s\n", line);
            }
          }
          FusedPrefillCut cut;
          const bool fused = fused_prefill_cut(M, s.N, s.K, 132, fused_prefill_max_splits(), kQ4FusedCost, &cut);
          std::printf("prefill policy %s %s M=%lld: %s\n", s.name, fmt_name(f), (long long)M,
                      fused ? ("register-A " + std::to_string(cut.tokens) + " s" + std::to_string(cut.splits)).c_str()
                            : "dequantize + cuBLAS");
        }
      }
    }
    cudaFree(dx);
    cudaFree(dy);
    cudaFree(scratch);
  }
  std::printf("\nprefill (bf16 activations; time / cuBLAS bf16 time on a dense weight):\n"
              "| shape | format | M | path | us | TFLOP/s | vs cuBLAS |\n");
  for (const auto& r : rows) std::printf("%s\n", r.c_str());
}

int main(int argc, char** argv) {
  bool quick = false, only_check = false, probes = false, sweep = true, prefill = false, xfrag = false;
  const char* prefill_shape = nullptr;  // --prefill-shape NAME: no checks, that shape's prefill timing alone (ncu)
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--no-sweep")) sweep = false;
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    if (!std::strcmp(argv[i], "--only-check")) only_check = true;
    if (!std::strcmp(argv[i], "--probes")) probes = true;
    if (!std::strcmp(argv[i], "--prefill")) prefill = true;
    if (!std::strcmp(argv[i], "--xfrag")) xfrag = true;  // M = 16 and 8: x in fragment order against rows
    if (!std::strcmp(argv[i], "--prefill-shape") && i + 1 < argc) prefill_shape = argv[++i];
  }
  prefill = prefill || prefill_shape != nullptr;
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device %s, %d SMs, L2 %d MB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);
  const double copy_gbps = copy_bandwidth_gbps();
  std::printf("copy probe: %.0f GB/s (read + write)\n", copy_gbps);
  cublasHandle_t handle;
  CB(cublasCreate(&handle));
  void* cublas_workspace = nullptr;
  const size_t cublas_workspace_bytes = size_t{32} << 20;
  CK(cudaMalloc(&cublas_workspace, cublas_workspace_bytes));
  // cublasSetStream resets the workspace; graphs must not allocate one during capture.
  auto bind = [&](cudaStream_t st) {
    CB(cublasSetStream(handle, st));
    CB(cublasSetWorkspace(handle, cublas_workspace, cublas_workspace_bytes));
  };

  // ---- correctness ----
  std::mt19937 rng(20261122);
  int failures = 0;
  const DType dts[2] = {DType::kF16, DType::kBF16};
  for (DType dt : dts) {
    if (prefill || xfrag) break;  // --prefill checks only the kernels it times
    for (Fmt f : {Fmt::kNf4, Fmt::kNf4A16, Fmt::kNf4Dq, Fmt::kFp4B128, Fmt::kAwq}) {
      for (int64_t M : {1, 2, 3, 5, 8, 9, 16, 17, 33, 64}) failures += !run_check(f, 200, 384, M, dt, 0, handle, rng);
      for (int64_t M : {1, 7, 16, 40}) failures += !run_check(f, 200, 384, M, dt, 4, handle, rng);
      // CUDA cores, odd chunk count (awq needs K % group == 0: 320 is not a multiple of 128)
      if (f != Fmt::kAwq) failures += !run_check(f, 77, 320, 1, dt, 5, handle, rng);
      failures += !run_check(f, 200, 384, 1, dt, 5, handle, rng);
      failures += !run_check(f, 77, 384, 12, dt, 6, handle, rng);    // one block looping over the tiles
      failures += !run_check(f, 96, 18944, 9, dt, 0, handle, rng);   // long K
      failures += !run_check(f, 96, 18944, 1, dt, 5, handle, rng);
      failures += !run_check(f, 77, 256, 5, dt, 0, handle, rng);     // N not a multiple of 16
      failures += !run_check(f, 4608, 3584, 16, dt, 0, handle, rng); // a real shape, sampled rows
      failures += !run_check(f, 4608, 3584, 1, dt, 0, handle, rng);
      failures += !run_check(f, 77, 256, 100, dt, 1, handle, rng);   // prefill, row chunks
      failures += !run_check(f, 77, 256, 100, dt, 2, handle, rng);   // prefill, column chunks
      failures += !run_check(f, 77, 256, 7, dt, 3, handle, rng);     // flat layout
    }
  }
  if (prop.major == 9 && prop.minor == 0 && !prefill_shape) {  // the fused prefill kernel (sm_90a only)
    for (DType dt : dts) {
      for (Fmt f : {Fmt::kNf4, Fmt::kNf4A16, Fmt::kNf4Dq, Fmt::kFp4B128, Fmt::kAwq}) {
        for (int path : {7, 9, 8}) {
          if (f != Fmt::kAwq) failures += !run_check(f, 77, 320, 130, dt, path, handle, rng);  // 5 steps, partial tiles
          failures += !run_check(f, 300, 1024, 257, dt, path, handle, rng);  // rings wrap, 3 N blocks
          failures += !run_check(f, 4608, 3584, 512, dt, path, handle, rng);  // a real shape, sampled rows
          failures += !run_check(f, 96, 18944, 200, dt, path, handle, rng);   // long K
        }
      }
    }
  }
  if (prefill && !prefill_shape) {  // the two-pass path it compares against
    for (DType dt : dts) failures += !run_check(Fmt::kNf4, 300, 1024, 257, dt, 1, handle, rng);
  } else {  // blocks straddling rows: nf4 bs64 with K = 96 (flat), fp4 bs128 with K = 192 (tiles, per-64 absmax)
    failures += !run_check(Fmt::kNf4, 50, 96, 4, DType::kBF16, 0, handle, rng);
    failures += !run_check(Fmt::kFp4B128, 50, 192, 12, DType::kF16, 0, handle, rng);
  }
  std::printf("correctness: %d failure(s)\n", failures);
  if (only_check) return failures == 0 ? 0 : 1;
  if (probes) run_probes(copy_gbps);

  if (prefill) {
    run_prefill_timing(handle, bind, quick, prefill_shape);
    cublasDestroy(handle);
    return failures == 0 ? 0 : 1;
  }

  // ---- timing ----
  std::vector<Shape> shapes = {{"qkv", 3584, 4608}, {"o", 3584, 3584}, {"gate_up", 3584, 37888},
                               {"down", 18944, 3584}, {"lm_head", 3584, 152064}};
  if (quick) shapes = {{"gate_up", 3584, 37888}, {"down", 18944, 3584}};
  std::vector<Fmt> fmts = {Fmt::kNf4, Fmt::kNf4A16, Fmt::kNf4Dq, Fmt::kAwq};
  std::vector<int64_t> Ms = {1, 4, 8, 16, 64};
  // QB_BENCH_SHAPES=small: TinyLlama-1.1B and GPT-2 decode shapes, nf4 and awq, M = 1 (latency-bound layers).
  const char* shape_set = std::getenv("QB_BENCH_SHAPES");
  if (shape_set != nullptr && std::string(shape_set) == "small") {
    shapes = {{"tl_qkv", 2048, 2560}, {"tl_o", 2048, 2048}, {"tl_gu", 2048, 11264}, {"tl_down", 5632, 2048},
              {"g2_qkv", 768, 2304},  {"g2_o", 768, 768},   {"g2_fc", 768, 3072},   {"g2_proj", 3072, 768}};
    fmts = {Fmt::kNf4, Fmt::kNf4A16, Fmt::kAwq};
    Ms = {1};
  }
  if (xfrag) {
    fmts = {Fmt::kNf4A16, Fmt::kAwq};
    Ms = {16, 8};
    sweep = false;
  }
  std::vector<std::string> table, sweep_table;
  const int64_t l2_guard = int64_t{200} << 20;
  for (const Shape& s : shapes) {
    // bf16 reference: cuBLAS with rotation
    const int64_t wbytes16 = s.N * s.K * 2;
    auto dense = std::make_unique<DenseCopies>(s.N, s.K, l2_guard);
    void *dx, *dy, *scratch;
    CK(cudaMalloc(&dx, 512 * s.K * 2));
    CK(cudaMalloc(&dy, 512 * s.N * 2));
    fill_half_kernel<<<1024, 256>>>(static_cast<uint16_t*>(dx), 512 * s.K, 5, true);
    CK(cudaMalloc(&scratch, s.N * s.K * 2));
    auto cublas_us = [&](int64_t M) {
      return time_us([&](int i, cudaStream_t st) {
        bind(st);
        dense->gemm(handle, i, dx, dy, s.N, s.K, M);
      });
    };
    std::vector<double> cub(Ms.size());
    for (size_t i = 0; i < Ms.size(); ++i) {
      cub[i] = cublas_us(Ms[i]);
      const double gbps = (wbytes16 + Ms[i] * (s.K + s.N) * 2.0) / (cub[i] * 1e-6) / 1e9;
      std::printf("time %-8s %-9s M=%-4lld %8.1f us %6.0f GB/s %5.1f%% copy\n", s.name, "cublas16", (long long)Ms[i],
                  cub[i], gbps, 100 * gbps / copy_gbps);
    }
    dense.reset();  // the 4-bit copies below need the memory

    for (Fmt f : fmts) {
      TimedWeight tw;
      const int64_t one = q4_tile_bytes(s.N, s.K);
      const int copies = static_cast<int>(std::max<int64_t>(2, (l2_guard + one - 1) / one));
      make_timed(f, s.N, s.K, copies, tw);
      for (size_t mi = 0; mi < Ms.size(); ++mi) {
        const int64_t M = Ms[mi];
        const double bytes = tw.bytes + M * s.K * 2.0 + M * s.N * 2.0;
        auto run = [&](DType dt, const Q4GemvConfig& req, bool is_auto) {
          const Q4GemvConfig c = q4_tile_gemm_config(dt, tw.copies[0], M, req);
          const double us = time_us([&](int i, cudaStream_t st) {
            q4_tile_gemm(dt, tw.copies[i % copies], dx, s.K, nullptr, dy, s.N, M, st, req);
          });
          const double gbps = bytes / (us * 1e-6) / 1e9;
          char line[320];
          std::snprintf(line, sizeof(line),
                        "| %-8s | %-8s | %-4s | %2s w%-2d s%d g%-4d | %3lld | %8.2f | %6.0f | %5.1f%% | %5.2fx |", s.name,
                        fmt_name(f), dt == DType::kF16 ? "f16" : "bf16",
                        c.compute == Q4GemvCompute::kCudaCores ? "cc" : "tc", c.warps, c.stages, c.grid, (long long)M,
                        us, gbps, 100 * gbps / copy_gbps, cub[mi] / us);
          std::printf("time %s%s\n", line, is_auto ? " auto" : "");
          (is_auto ? table : sweep_table).push_back(line);
          return us;
        };
        run(DType::kBF16, {}, true);
        if (xfrag) {  // x in fragment order (q4_tile_gemm's x_scratch) against the row layout, same process
          void* scratch = nullptr;
          CK(cudaMalloc(&scratch, std::max<size_t>(q4_x_fragments_bytes(M, s.K), 16)));
          std::vector<uint16_t> ref(M * s.N), got(M * s.N);
          q4_tile_gemm(DType::kBF16, tw.copies[0], dx, s.K, nullptr, dy, s.N, M, 0);
          CK(cudaMemcpy(ref.data(), dy, ref.size() * 2, cudaMemcpyDeviceToHost));
          q4_tile_gemm(DType::kBF16, tw.copies[0], dx, s.K, nullptr, dy, s.N, M, 0, {}, {}, scratch);
          CK(cudaMemcpy(got.data(), dy, got.size() * 2, cudaMemcpyDeviceToHost));
          std::printf("x fragments %s %s M=%lld: outputs %s\n", s.name, fmt_name(f), (long long)M,
                      ref == got ? "bit-identical" : "DIFFER");
          failures += ref != got;
          const double us = time_us([&](int i, cudaStream_t st) {
            q4_tile_gemm(DType::kBF16, tw.copies[i % copies], dx, s.K, nullptr, dy, s.N, M, st, {}, {}, scratch);
          });
          run(DType::kBF16, {}, true);  // the row layout again, after: the pair brackets the fragment-order run
          std::printf("time | %-8s | %-8s | bf16 | x fragments (copy included) | %3lld | %8.2f |\n", s.name,
                      fmt_name(f), (long long)M, us);
          CK(cudaFree(scratch));
          continue;
        }
        if (!sweep || (M != 1 && M != 16)) continue;
        std::vector<Q4GemvConfig> variants;
        for (Q4GemvCompute comp : {Q4GemvCompute::kTensorCores, Q4GemvCompute::kCudaCores}) {
          if (comp == Q4GemvCompute::kCudaCores && M != 1) continue;
          for (int stages : {2, 3, 4, 6}) {
            Q4GemvConfig v;
            v.compute = comp;
            v.stages = stages;
            variants.push_back(v);
          }
          for (int warps : {2, 4, 8, 16}) {
            Q4GemvConfig v;
            v.compute = comp;
            v.warps = warps;
            variants.push_back(v);
          }
        }
        for (const Q4GemvConfig& v : variants) {
          try {
            run(DType::kBF16, v, false);
          } catch (const std::exception& e) {
            std::printf("skip variant: %s\n", e.what());
          }
        }
        if (M == 1) {
          Q4GemvConfig cc;
          cc.compute = Q4GemvCompute::kCudaCores;
          run(DType::kF16, cc, false);
          Q4GemvConfig tc;
          tc.compute = Q4GemvCompute::kTensorCores;
          run(DType::kF16, tc, false);
        }
      }
      if (f == Fmt::kNf4) {  // the prefill path at M = 64, to place the GEMV / prefill crossover
        const Q4PrefillPlan plan = q4_default_prefill_plan(64, s.N, s.K);
        const double us = time_us([&](int i, cudaStream_t st) {
          bind(st);
          q4_tile_matmul_cublas(handle, DType::kBF16, tw.copies[i % copies], plan, dx, s.K, nullptr, dy, s.N, 64,
                                scratch, nullptr, st);
        });
        std::printf("prefill | %-8s | nf4 | M=64 dequant+cublas %8.1f us = %.2fx cuBLAS bf16 time\n", s.name, us,
                    us / cub[Ms.size() - 1]);
      }
    }
    cudaFree(dx);
    cudaFree(dy);
    cudaFree(scratch);
  }
  std::printf("\nsweep (M = 1 and 16):\n| shape | format | act | variant | M | us | GB/s | %%copy | cublas16/ours |\n");
  for (const auto& r : sweep_table) std::printf("%s\n", r.c_str());
  std::printf("\nautomatic dispatch:\n| shape | format | act | variant | M | us | GB/s | %%copy | cublas16/ours |\n");
  for (const auto& r : table) std::printf("%s\n", r.c_str());
  cublasDestroy(handle);
  return failures == 0 ? 0 : 1;
}
