// LLM.int8() decode GEMV: the int8 x int8 part and the outlier part in one pass over CB.
//
// Contract: for m < M <= 32, n < N:
//   y[m, n] = float(sum_k CA[m, k] CB[n, k]) * (SCA[m] * SCB[n]) * (1/127^2)        (int32 accumulation)
//           + (sum_{k outlier} x[m, k] CB[n, k]) * (SCB[n] / 127)                    (fp32 accumulation)
//           + bias[n]
//   CA [M, ld_ca] int8, zero in outlier columns and beyond K (llm_int8_quantize_activations);
//   outlier_mask [ld_ca / 32]; x [M, ldx] fp16/bf16 (read only in 64-wide k steps that hold an
//   outlier column); CB [N, ldq] int8 zero padded to round_up(K, 16), 16-byte aligned; SCB fp32 [N];
//   bias, y in x's dtype. bitsandbytes rounds its int8 result and the outlier product separately
//   to 16 bits; here both stay fp32 and the sum is rounded once.
// Tiling as gemv_mma_tile.cuh (16 rows per block, 16 or 8 warps along K, lane (g,t) loads 16 bytes of
// rows g and g+8 at k = step*64 + 16t). The s8 mma m16n8k32 wants lane (g,t) to hold A slots
// {4t..4t+3} and {16+4t..16+4t+3} of rows g, g+8 and B slots of token column g: the lane's bytes
// 0-7 feed mma 0, bytes 8-15 mma 1, and the activation bytes are CA[g][k .. k+15] (one 16-byte
// load). The outlier test is warp-uniform: both mask words of the step are read by every lane.
#include "gemv_mma_tile.cuh"
#include "llm_int8_quant.cuh"
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/device_limits.h"
#include "quantbench/kernels/llm_int8.h"

namespace qb::kernels {
namespace {

struct LlmInt8GemvParams {
  const int8_t* ca;
  int64_t ld_ca;
  const float* sca;
  const uint32_t* mask;
  const void* x;
  int64_t ldx;
  const int8_t* w;
  int64_t ldw;
  const float* scb;
  const void* bias;
  void* y;
  int64_t ldy;
  int M, N, K, k_weights;
  float threshold;  // the fused prep only (kFusedPrep)
};

// M = 1 with a row of at most kFusedMaxCols columns: each block quantizes the activation row itself (the same
// helpers as the prep kernel, so CA, SCA and the mask are bit for bit the same) into shared memory, and the prep
// launch disappears: on GPT-2 it was a fifth of the layer's kernels, each a dependent launch.
constexpr int kFusedMaxCols = 20480;  // Qwen2-7B's 18944-wide down projection fits
// Every block of the fused kernel quantizes the row again, so on grids of many waves that prologue repeats per
// wave: above 16 blocks per SM the prep kernel runs once instead. Measured on H100 (BENCHMARKS.md; one call,
// caps of 1024 and 2400 blocks against none): gpt2 llm.int8 3410-3422 -> 3547-3552 tok/s (its 50257-row head is
// 3142 blocks), qwen2-7b llm.int8 302 either way (its gate_up is 2368 blocks, its head 9504).
bool fused_prep(int64_t M, int64_t ld_ca, int64_t N) {
  return M == 1 && ld_ca <= kFusedMaxCols && (N + 15) / 16 <= 16 * static_cast<int64_t>(sm_count());
}

__device__ __forceinline__ void mma_s8(int (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                       uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
      : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Keeps the 16-bit elements of a pair whose mask bits are set.
__device__ __forceinline__ uint32_t keep_pair(uint32_t pair, uint32_t bits2) {
  return pair & ((bits2 & 1u ? 0x0000ffffu : 0u) | (bits2 & 2u ? 0xffff0000u : 0u));
}

template <typename T, int MT, int KSPLIT, int UNROLL, bool kFusedPrep>
__global__ void __launch_bounds__(KSPLIT * 32) llm_int8_gemv_kernel(const LlmInt8GemvParams p) {
  using Traits = gemv::HalfTraits<T>;
  constexpr int kStepK = 64;
  static_assert(!kFusedPrep || MT == 1, "the fused prep quantizes one row");
  __shared__ __align__(16) int8_t ca_s[kFusedPrep ? kFusedMaxCols : 16];
  __shared__ uint32_t mask_s[kFusedPrep ? kFusedMaxCols / 32 : 1];
  __shared__ float sca_s[32];  // block_max scratch, then [0] = SCA
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int g = lane >> 2;
  const int t = lane & 3;
  const int n0 = blockIdx.x * 16;
  const bool has_row0 = n0 + g < p.N;
  const bool has_row1 = n0 + g + 8 < p.N;
  const int8_t* w_row0 = p.w + (has_row0 ? (int64_t)(n0 + g) * p.ldw : 0);
  const int8_t* w_row1 = p.w + (has_row1 ? (int64_t)(n0 + g + 8) * p.ldw : 0);
  const T* x = static_cast<const T*>(p.x);
  const int steps = (p.k_weights + kStepK - 1) / kStepK;

  int acc_int[MT][4];
  float acc_out[MT][4];
#pragma unroll
  for (int i = 0; i < MT; ++i) {
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      acc_int[i][c] = 0;
      acc_out[i][c] = 0.0f;
    }
  }

  // Rounds of KSPLIT x UNROLL steps, warp w taking steps w, w + KSPLIT, ... (gemv_mma_tile.cuh).
  for (int base = 0; base < steps; base += KSPLIT * UNROLL) {
    uint4 wv0[UNROLL], wv1[UNROLL];
    uint32_t step_mask[UNROLL];
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      const int step = base + warp + KSPLIT * u;
      const int k = step * kStepK + t * 16;
      const bool in_k = step < steps && k < p.k_weights;
      wv0[u] = (in_k && has_row0) ? gemv::load_stream16(w_row0 + k) : make_uint4(0, 0, 0, 0);
      wv1[u] = (in_k && has_row1) ? gemv::load_stream16(w_row1 + k) : make_uint4(0, 0, 0, 0);
    }
    // Launched with PDL (pdl.cuh): the first round's weight loads are issued before waiting for the
    // activation prep kernel, which lets this kernel launch at its own start; CA, SCA, the mask and x come
    // from it (or from before it) and are read only after the wait (steps >= 1: K >= 1 is host-checked).
    if (base == 0) {
      pdl_wait();
      pdl_launch_dependents();
      if constexpr (kFusedPrep) {  // the prep kernel's work for this row, into shared memory
        const int words = static_cast<int>(p.ld_ca / 32), vecs = static_cast<int>(p.ld_ca / 8);
        for (int w = threadIdx.x; w < words; w += KSPLIT * 32) mask_s[w] = 0u;
        __syncthreads();
        const float sca = llm_int8_quant::outlier_pass(x, p.K, vecs, p.threshold, mask_s, sca_s);
        llm_int8_quant::quantize_pass(x, p.K, vecs, mask_s, sca, ca_s);
        if (threadIdx.x == 0) sca_s[0] = sca;
        __syncthreads();
      }
    }
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      const int step = base + warp + KSPLIT * u;
      // Both mask words of the step (every lane reads the same two words: a broadcast).
      const uint32_t* mask = kFusedPrep ? mask_s : p.mask;
      step_mask[u] = step < steps ? (mask[2 * step] | ((2 * step + 1) * 32 < p.ld_ca ? mask[2 * step + 1] : 0u)) : 0u;
    }
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      const int step = base + warp + KSPLIT * u;
      if (step >= steps) break;  // warp-uniform
      const int k = step * kStepK + t * 16;
#pragma unroll
      for (int i = 0; i < MT; ++i) {
        const int m = i * 8 + g;
        uint4 qx = make_uint4(0, 0, 0, 0);
        if (m < p.M && k < p.ld_ca) {
          qx = kFusedPrep ? *reinterpret_cast<const uint4*>(ca_s + k) : gemv::load_cached16(p.ca + (int64_t)m * p.ld_ca + k);
        }
        mma_s8(acc_int[i], wv0[u].x, wv1[u].x, wv0[u].y, wv1[u].y, qx.x, qx.y);
        mma_s8(acc_int[i], wv0[u].z, wv1[u].z, wv0[u].w, wv1[u].w, qx.z, qx.w);
      }
      if (step_mask[u] != 0u) {  // warp-uniform: this 64-wide step holds an outlier column
        const uint32_t bits16 = k < p.ld_ca ? ((kFusedPrep ? mask_s[k / 32] : p.mask[k / 32]) >> (k % 32)) & 0xffffu : 0u;
        uint32_t a[4][4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          Traits::int8x4_to_pairs(gemv::word_of(wv0[u], j), a[j][0], a[j][2]);
          Traits::int8x4_to_pairs(gemv::word_of(wv1[u], j), a[j][1], a[j][3]);
        }
#pragma unroll
        for (int i = 0; i < MT; ++i) {
          const int m = i * 8 + g;
          uint4 xv[2];
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int kh = k + 8 * h;
            xv[h] = (m < p.M && kh < p.K) ? gemv::load_cached16(x + (int64_t)m * p.ldx + kh) : make_uint4(0, 0, 0, 0);
          }
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const uint32_t b0 = keep_pair(gemv::word_of(xv[j / 2], 2 * (j % 2)), bits16 >> (4 * j));
            const uint32_t b1 = keep_pair(gemv::word_of(xv[j / 2], 2 * (j % 2) + 1), bits16 >> (4 * j + 2));
            Traits::mma(acc_out[i], a[j], b0, b1);
          }
        }
      }
    }
  }

  __shared__ int partial_int[KSPLIT][MT * 8][17];
  __shared__ float partial_out[KSPLIT][MT * 8][17];
#pragma unroll
  for (int i = 0; i < MT; ++i) {
    partial_int[warp][i * 8 + 2 * t][g] = acc_int[i][0];
    partial_int[warp][i * 8 + 2 * t + 1][g] = acc_int[i][1];
    partial_int[warp][i * 8 + 2 * t][g + 8] = acc_int[i][2];
    partial_int[warp][i * 8 + 2 * t + 1][g + 8] = acc_int[i][3];
    partial_out[warp][i * 8 + 2 * t][g] = acc_out[i][0];
    partial_out[warp][i * 8 + 2 * t + 1][g] = acc_out[i][1];
    partial_out[warp][i * 8 + 2 * t][g + 8] = acc_out[i][2];
    partial_out[warp][i * 8 + 2 * t + 1][g + 8] = acc_out[i][3];
  }
  __syncthreads();
  T* y = static_cast<T*>(p.y);
  const T* bias = static_cast<const T*>(p.bias);
  for (int o = threadIdx.x; o < MT * 8 * 16; o += KSPLIT * 32) {
    const int m = o / 16;
    const int r = o % 16;
    const int n = n0 + r;
    if (m >= p.M || n >= p.N) continue;
    int dot = 0;
    float outlier = 0.0f;
#pragma unroll
    for (int w = 0; w < KSPLIT; ++w) {
      dot += partial_int[w][m][r];
      outlier += partial_out[w][m][r];
    }
    const float scb = __ldg(p.scb + n);
    const float sca = kFusedPrep ? sca_s[0] : __ldg(p.sca + m);
    float v = static_cast<float>(dot) * (sca * scb) * kBnbInvScaleSquared;
    v += outlier * (scb * kBnbInvScale);
    if (bias != nullptr) v += Traits::to_float(bias[n]);
    y[(int64_t)m * p.ldy + n] = Traits::from_float(v);
  }
}

template <typename T, int MT>
void launch_tiles(const LlmInt8GemvParams& p, cudaStream_t stream) {
  const unsigned blocks = static_cast<unsigned>((p.N + 15) / 16);
  // 16 warps x 2 steps as the int8 GEMV (its best decode shape); the four-tile variant keeps 8 warps
  // so that its two reduction buffers fit the 48 KB of static shared memory.
  if constexpr (MT <= 2) {
    launch_pdl(llm_int8_gemv_kernel<T, MT, 16, 2, false>, blocks, 512, 0, stream, p);
  } else {
    launch_pdl(llm_int8_gemv_kernel<T, MT, 8, 4, false>, blocks, 256, 0, stream, p);
  }
}

template <typename T>
void launch_typed(const LlmInt8GemvParams& p, cudaStream_t stream) {
  if (fused_prep(p.M, p.ld_ca, p.N)) {
    launch_pdl(llm_int8_gemv_kernel<T, 1, 16, 2, true>, static_cast<unsigned>((p.N + 15) / 16), 512, 0, stream, p);
  } else if (p.M <= 8) {
    launch_tiles<T, 1>(p, stream);
  } else if (p.M <= 16) {
    launch_tiles<T, 2>(p, stream);
  } else {
    launch_tiles<T, 4>(p, stream);
  }
}

}  // namespace

void llm_int8_gemv(HalfType dtype, const void* x, int64_t ldx, const Int8Weights& w, const void* bias, void* y,
                   int64_t ldy, int64_t M, float threshold, void* workspace, size_t workspace_bytes,
                   cudaStream_t stream) {
  QB_CHECK(M >= 1 && M <= kGemvMaxM, kInvalidInput, "llm_int8_gemv: M = {} outside 1..{}", M, kGemvMaxM);
  QB_CHECK(w.N >= 1 && w.N < (int64_t{1} << 31) && w.K >= 1 && w.K < (int64_t{1} << 30), kInvalidInput,
           "llm_int8_gemv: N = {} and K = {} out of range", w.N, w.K);
  QB_CHECK(w.group_size == 0 && w.scales != nullptr, kInvalidInput, "llm_int8_gemv: needs per-row SCB");
  QB_CHECK(w.ldq % 16 == 0 && w.ldq >= int8_padded_k(w.K) && reinterpret_cast<uintptr_t>(w.q) % 16 == 0,
           kInvalidInput, "llm_int8_gemv: CB must be 16-byte aligned with ldq = {} a multiple of 16 >= round_up(K, 16)",
           w.ldq);
  QB_CHECK(ldy >= w.N, kInvalidInput, "llm_int8_gemv: ldy = {} < N = {}", ldy, w.N);
  const size_t need = llm_int8_activation_bytes(M, w.K);
  QB_CHECK(workspace != nullptr && workspace_bytes >= need && reinterpret_cast<uintptr_t>(workspace) % 256 == 0,
           kInvalidInput, "llm_int8_gemv: workspace of {} bytes (256-byte aligned) needed, got {}", need,
           workspace_bytes);
  const LlmInt8Activations act = llm_int8_activation_layout(workspace, M, w.K);
  if (fused_prep(M, act.ld, w.N)) {
    QB_CHECK(w.K % 8 == 0 && ldx >= w.K && reinterpret_cast<uintptr_t>(x) % 16 == 0, kInvalidInput,
             "llm_int8_gemv: x must be 16-byte aligned with K = {} a multiple of 8 (pad x first)", w.K);
  } else {
    llm_int8_quantize_activations(dtype, x, ldx, M, w.K, threshold, act, stream);  // checks x
  }

  LlmInt8GemvParams p;
  p.ca = act.ca;
  p.ld_ca = act.ld;
  p.sca = act.sca;
  p.mask = act.outlier_mask;
  p.x = x;
  p.ldx = ldx;
  p.w = w.q;
  p.ldw = w.ldq;
  p.scb = w.scales;
  p.bias = bias;
  p.y = y;
  p.ldy = ldy;
  p.M = static_cast<int>(M);
  p.N = static_cast<int>(w.N);
  p.K = static_cast<int>(w.K);
  p.k_weights = static_cast<int>(int8_padded_k(w.K));
  p.threshold = threshold;
  if (dtype == HalfType::kF16) {
    launch_typed<__half>(p, stream);
  } else {
    launch_typed<__nv_bfloat16>(p, stream);
  }
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace qb::kernels
