// Host dispatch of the 4-bit decode / small-batch kernel (kernels/q4_gemv.cuh): which variant (tensor cores or
// CUDA cores, tokens per mma slice), how many warps share a tile, how deep each warp's ring is, how many blocks.
//
// The rule (measured on H100, kernels/NOTES-q4.md): the block size S (warps per tile) is picked per shape so that
//  - every warp gets the same number of chunk pairs per tile (ceil(P / S) * S close to P, P = K / 128 pairs),
//  - the grid is either one block per tile with every block resident at once (small N: nothing waits for a
//    second wave), or a persistent grid of exactly the resident blocks, each looping over tiles,
//  - enough warps per SM stay resident to keep the loads in flight (about 24 saturate the copy bandwidth).
#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "q4_gemv.cuh"
#include "quantbench/core/env_switch.h"
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/device_limits.h"
#include "quantbench/kernels/q4_gemm.h"
#include "quantbench/kernels/q4_layout.h"

namespace qb::kernels {
namespace {

using ResidentFn = int (*)(int warps, int stages);
using LaunchFn = void (*)(const Q4TileWeights&, const void*, int64_t, const void*, void*, int64_t, int, int, int, int,
                          ActType, cudaStream_t, bool);
struct KernelFns {
  ResidentFn resident = nullptr;
  LaunchFn launch = nullptr;
};

template <typename Act, Q4ScaleMode MODE, int NT, bool kCudaCores, bool kGated = false>
KernelFns fns() {
  using K = q4::GemvKernel<Act, MODE, NT, kCudaCores, kGated>;
  return {&K::resident_blocks, &K::launch};
}

// Gated: instantiated for one 8-token slice only (nt == 1; q4_tile_gemm_config checks M <= kQ4GemvGatedMaxM).
template <typename Act, Q4ScaleMode MODE>
KernelFns fns_for(int nt, bool cuda_cores, bool gated) {
  if (gated) return cuda_cores ? fns<Act, MODE, 1, true, true>() : fns<Act, MODE, 1, false, true>();
  if (cuda_cores) return fns<Act, MODE, 1, true>();
  switch (nt) {
    case 1: return fns<Act, MODE, 1, false>();
    case 2: return fns<Act, MODE, 2, false>();
    case 4: return fns<Act, MODE, 4, false>();
    default: return fns<Act, MODE, 8, false>();
  }
}

template <typename Act>
KernelFns fns_for(Q4ScaleMode mode, int nt, bool cuda_cores, bool gated) {
  switch (mode) {
    case Q4ScaleMode::kAbsmaxF32: return fns_for<Act, Q4ScaleMode::kAbsmaxF32>(nt, cuda_cores, gated);
    case Q4ScaleMode::kAbsmaxNested: return fns_for<Act, Q4ScaleMode::kAbsmaxNested>(nt, cuda_cores, gated);
    case Q4ScaleMode::kAffine: return fns_for<Act, Q4ScaleMode::kAffine>(nt, cuda_cores, gated);
    case Q4ScaleMode::kAbsmax16: return fns_for<Act, Q4ScaleMode::kAbsmax16>(nt, cuda_cores, gated);
  }
  return {};
}

KernelFns kernel_fns(DType dtype, Q4ScaleMode mode, int nt, bool cuda_cores, bool gated) {
  return dtype == DType::kF16 ? fns_for<__half>(mode, nt, cuda_cores, gated)
                              : fns_for<__nv_bfloat16>(mode, nt, cuda_cores, gated);
}

int tokens_per_slice_count(int64_t M) { return M <= 8 ? 1 : M <= 16 ? 2 : M <= 32 ? 4 : 8; }

int max_warps(int nt) { return nt >= 8 ? 4 : nt >= 4 ? 8 : 16; }

}  // namespace

bool q4_tile_gemm_supported(DType dtype, const void* x, int64_t ldx, int64_t M) {
  return (dtype == DType::kF16 || dtype == DType::kBF16) && M >= 1 && M <= kQ4GemvMaxM && ldx % 8 == 0 &&
         reinterpret_cast<uintptr_t>(x) % 16 == 0;
}

// QB_Q4_GEMV_WARPS="N:K:warps[:stages],..." sets the block size (and ring depth) of the shapes named (A/B runs of the
// dispatch in the decode graph, where isolated figures have misled before); a shape not named, or a choice that does
// not fit, keeps the rule's. {0, 0}: none.
struct ForcedShape {
  int warps = 0, stages = 0;
};
static ForcedShape forced_shape(int64_t n, int64_t k) {
  static const std::vector<std::array<int64_t, 4>> forced = [] {
    std::vector<std::array<int64_t, 4>> out;
    const char* v = std::getenv("QB_Q4_GEMV_WARPS");
    for (const char* at = v; at != nullptr && *at != '\0';) {
      long long fn = 0, fk = 0, fw = 0, fs = 0;
      const int got = std::sscanf(at, "%lld:%lld:%lld:%lld", &fn, &fk, &fw, &fs);
      if (got >= 3) out.push_back({fn, fk, fw, got == 4 ? fs : 0});
      at = std::strchr(at, ',');
      if (at != nullptr) ++at;
    }
    return out;
  }();
  for (const auto& f : forced)
    if (f[0] == n && f[1] == k) return {static_cast<int>(f[2]), static_cast<int>(f[3])};
  return {};
}

// QB_Q4_GEMV_STAGES=N overrides the default ring depth (for A/B runs of whole models; read once).
static int default_stages() {
  static const int stages = env_int("QB_Q4_GEMV_STAGES", 2, 1);
  return stages;
}

Q4GemvConfig q4_tile_gemm_config(DType dtype, const Q4TileWeights& w, int64_t M, const Q4GemvConfig& request,
                                  bool gated) {
  QB_CHECK(dtype == DType::kF16 || dtype == DType::kBF16, kInvalidInput, "q4_tile_gemm: activations must be fp16/bf16");
  QB_CHECK(M >= 1 && M <= kQ4GemvMaxM, kInvalidInput, "q4_tile_gemm: M = {} outside 1..{}", M, kQ4GemvMaxM);
  QB_CHECK(w.K > 0 && w.K % 64 == 0 && w.N > 0, kInvalidInput, "q4_tile_gemm: tile layout needs K % 64 == 0 (K={}, N={})",
           w.K, w.N);
  const int nt = tokens_per_slice_count(M);
  Q4GemvConfig c = request;
  if (c.compute == Q4GemvCompute::kAuto) {
    // Measured on H100 (NOTES-q4.md, 2026-11-23): at M = 1 the CUDA-core path beats the tensor-core one on every
    // Qwen2-7B shape and format (5-15%: it skips the fragment shuffles a single token wastes).
    c.compute = M == 1 ? Q4GemvCompute::kCudaCores : Q4GemvCompute::kTensorCores;
  }
  QB_CHECK(c.compute != Q4GemvCompute::kCudaCores || M == 1, kInvalidInput,
           "q4_tile_gemm: the CUDA-core path computes one token, M = {}", M);
  const bool cuda_cores = c.compute == Q4GemvCompute::kCudaCores;
  // Two stages (one chunk in flight per warp, many warps) were as fast as or faster than deeper rings at M = 1 and 16
  // on every shape measured (NOTES-q4.md): the parallelism comes from warps, not from ring depth.
  auto ring_depth_allowed = [](int stages) { return stages == 2 || stages == 3 || stages == 4 || stages == 6; };
  const ForcedShape forced = request.warps == 0 && request.stages == 0 ? forced_shape(w.N, w.K) : ForcedShape{};
  if (c.stages == 0) c.stages = ring_depth_allowed(forced.stages) ? forced.stages : default_stages();
  QB_CHECK(ring_depth_allowed(c.stages), kInvalidInput,
           "q4_tile_gemm: stages must be 2, 3, 4 or 6, got {}", c.stages);
  QB_CHECK(c.warps == 0 || (c.warps >= 1 && c.warps <= max_warps(nt)), kInvalidInput,
           "q4_tile_gemm: {} warps per block outside 1..{} for M = {}", c.warps, max_warps(nt), M);
  QB_CHECK(!gated || M <= kQ4GemvGatedMaxM, kInvalidInput, "q4_tile_gemm: the gated epilogue takes M <= {}, got {}",
           kQ4GemvGatedMaxM, M);
  const KernelFns k = kernel_fns(dtype, w.mode, nt, cuda_cores, gated);
  // Gated, a block's unit of work is a (gate, up) pair of tiles: the grid is at most the pair count.
  const int64_t tiles = gated ? q4_n_tiles(w.N) / 2 : q4_n_tiles(w.N), pairs = (w.K / 64 + 1) / 2, sms = sm_count();
  auto grid_for = [&](int warps) -> int64_t {
    const int64_t resident = static_cast<int64_t>(k.resident(warps, c.stages)) * sms;
    return std::min(tiles, resident);
  };
  if (c.warps == 0) {
    if (forced.warps >= 1 && forced.warps <= max_warps(nt) && k.resident(forced.warps, c.stages) > 0)
      c.warps = forced.warps;
  }
  if (c.warps == 0) {
    // The gated M = 1 kernel in blocks of at most 8 warps: measured in the decode graph (BENCHMARKS.md, session 28),
    // 8 against the 10 this score picks: Qwen2-7B (3 blocks an SM either way) nf4 +0.7%, awq +2.2%; TinyLlama awq +3.4%,
    // nf4 -0.4%; 7 warps (4 blocks an SM) -10%, 12-16 warps -4..-10%. Not explained by the score's terms (the same
    // grid, fewer warps an SM); so a measured bound, not a model.
    const int most = gated && cuda_cores ? std::min(8, max_warps(nt)) : max_warps(nt);
    double best = -1;
    for (int s = most; s >= std::min(4, most); --s) {
      const int64_t resident = static_cast<int64_t>(k.resident(s, c.stages));
      if (resident == 0) continue;
      const int64_t grid = std::min(tiles, resident * sms);
      const double k_balance = static_cast<double>(pairs) / static_cast<double>((pairs + s - 1) / s * s);
      const double t_balance = static_cast<double>(tiles) / static_cast<double>((tiles + grid - 1) / grid * grid);
      const double warps_per_sm = static_cast<double>(std::min<int64_t>(resident, (grid + sms - 1) / sms) * s);
      const double score = k_balance * t_balance * std::min(1.0, warps_per_sm / 24.0);
      if (score > best + 1e-9) {
        best = score;
        c.warps = s;
      }
    }
    QB_CHECK(c.warps > 0, kDevice, "q4_tile_gemm: no block shape fits on this device (M = {})", M);
  }
  const int64_t fit = grid_for(c.warps);
  QB_CHECK(fit > 0, kInvalidInput, "q4_tile_gemm: a block of {} warps with {} stages does not fit on this device",
           c.warps, c.stages);
  c.grid = c.grid > 0 ? static_cast<int>(std::min<int64_t>(c.grid, tiles)) : static_cast<int>(fit);
  // QB_Q4_GEMV_TRACE=1: each shape's chosen block, ring and grid on stderr, once (a diagnostic for dispatch work).
  static const bool trace = env_equals("QB_Q4_GEMV_TRACE", "1");
  if (trace) {
    static std::mutex mutex;
    static std::map<std::tuple<int64_t, int64_t, int64_t, bool>, int> seen;
    std::lock_guard<std::mutex> lock(mutex);
    if (seen[std::make_tuple(w.N, w.K, M, gated)]++ == 0) {
      std::fprintf(stderr,
                   "q4 gemv N=%lld K=%lld M=%lld gated=%d: warps=%d stages=%d grid=%d tiles=%lld resident/SM=%d\n",
                   static_cast<long long>(w.N), static_cast<long long>(w.K), static_cast<long long>(M), gated ? 1 : 0,
                   c.warps, c.stages, c.grid, static_cast<long long>(tiles),
                   k.resident(c.warps, c.stages));
    }
  }
  return c;
}

size_t q4_x_fragments_bytes(int64_t M, int64_t K) {
  if (M < 2 || M > kQ4GemvMaxM || K % 64 != 0) return 0;
  return static_cast<size_t>(K / 64) * tokens_per_slice_count(M) * 512 * 2;
}

bool q4_x_fragments_pay(int64_t M, int64_t N, int64_t K) {
  // With the copy on every 4-bit layer (BENCHMARKS.md, session 24): Qwen2-7B batch 16 nf4 4716 -> 4870 tok/s, awq
  // 4654 -> 4782, batch 8 nf4 2978 -> 3000; TinyLlama batch 16 nf4 16401 -> 15783, awq 16059 -> 15514: the copy is
  // one more launch in the chain (~1.5 us), which a small weight's GEMV does not win back. So large weights only:
  // session 25, batch 16, rule / every layer / none: Qwen2-7B nf4 5024 / 4916 / 4749 tok/s, TinyLlama 16588 / 15735 /
  // 16524 (means of three alternating rounds). QB_Q4_X_FRAGMENTS=0: never; =all: every layer (the A/B of the rule).
  static const bool never = env_equals("QB_Q4_X_FRAGMENTS", "0");
  static const bool always = env_equals("QB_Q4_X_FRAGMENTS", "all");
  if (never || q4_x_fragments_bytes(M, K) == 0) return false;
  return always || N * K >= kQ4XFragmentsMinWeights;
}

void q4_tile_gemm(DType dtype, const Q4TileWeights& w, const void* x, int64_t ldx, const void* bias, void* y,
                  int64_t ldy, int64_t M, cudaStream_t stream, const Q4GemvConfig& config,
                  const GatedEpilogue& gated, void* x_scratch) {
  QB_CHECK(q4_tile_gemm_supported(dtype, x, ldx, M), kInvalidInput,
           "q4_tile_gemm: needs fp16/bf16 x, 1 <= M <= {} (got {}), ldx % 8 == 0 (got {}) and 16-byte aligned x",
           kQ4GemvMaxM, M, ldx);
  QB_CHECK(w.K > 0 && w.K % 64 == 0 && w.N > 0 && w.tiles != nullptr && w.scales != nullptr, kInvalidInput,
           "q4_tile_gemm: tile layout needs K % 64 == 0 and codes + scales (K={}, N={})", w.K, w.N);
  QB_CHECK(ldx >= w.K && ldy >= (gated.on ? w.N / 2 : w.N), kInvalidInput,
           "q4_tile_gemm: ldx {} < K {} or ldy {} below the output width (N {})", ldx, w.K, ldy, w.N);
  QB_CHECK(!gated.on || gated_epilogue_fits(w.N), kInvalidInput,
           "q4_tile_gemm: the gated epilogue needs N a multiple of 32 (got {})", w.N);
  QB_CHECK(w.unit_shift >= 0 && w.K % (int64_t{64} << w.unit_shift) == 0 && q4_n_tiles(w.N) < (int64_t{1} << 31) &&
               w.K / 64 < (int64_t{1} << 24),
           kInvalidInput, "q4_tile_gemm: unit of {} columns does not divide K = {} (or the weight is too large)",
           int64_t{64} << w.unit_shift, w.K);
  QB_CHECK(w.mode != Q4ScaleMode::kAbsmaxNested || (w.nested != nullptr && w.nested_code != nullptr), kInvalidInput,
           "q4_tile_gemm: nested absmax needs the nested arrays");
  if (w.mode == Q4ScaleMode::kAffine) {  // the kernel reads awq codes through the codebook table: it must be 0..15
    for (int i = 0; i < 16; ++i)
      QB_CHECK(w.codebook[i] == static_cast<float>(i), kInvalidInput,
               "q4_tile_gemm: affine weights need the identity codebook 0..15 (entry {} is {})", i, w.codebook[i]);
  }
  const Q4GemvConfig c = q4_tile_gemm_config(dtype, w, M, config, gated.on);
  const KernelFns k =
      kernel_fns(dtype, w.mode, tokens_per_slice_count(M), c.compute == Q4GemvCompute::kCudaCores, gated.on);
  const bool fragments = c.compute == Q4GemvCompute::kTensorCores && x_scratch != nullptr;
  if (fragments) q4_x_fragments(x, ldx, M, w.K, tokens_per_slice_count(M), x_scratch, stream);  // checks x_scratch
  k.launch(w, fragments ? x_scratch : x, ldx, bias, y, ldy, static_cast<int>(M), c.warps, c.stages, c.grid, gated.act,
           stream, fragments);
}

}  // namespace qb::kernels
