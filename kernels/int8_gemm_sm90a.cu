// INT8 weights at large M (prefill) on Hopper: y[M, N] = x[M, K] W^T (+ bias), W = q * scale per output channel,
// in one kernel: the block skeleton of kernels/fused_gemm_sm90a.cuh with the int8 matrix as its weight source, so
// the 16-bit copy of W that int8_prefill_matmul writes to DRAM and reads back never exists. sm_90a only.
// Status: the register-A form of fused_gemm_rs_sm90a.cuh where fused_prefill_cut names it (int8_prefill_fused_form;
// gate_up at M = 512: 286.9 us against 343.1 for dequantize + cuBLAS, H100); the shared-B form is opt-in
// (QB_INT8_WGMMA=1: 1.05-1.8x the two-pass time at M = 512, NOTES-q4.md "Fused prefill").
//
// Contract: x, y, bias fp16 or bf16; per-channel scales only (group_size == 0: a per-group scale would change
//   inside a block's step and cannot ride the copy engine in 16-byte pieces; those weights keep the two-pass path);
//   K % 8 == 0 (x's rows 16-byte aligned for the tensor map), q 16-byte aligned with ldq % 16 == 0; columns past K
//   read as zeros from both x and q. Weight values: shared-B, float(q) * (scale * multiplier) rounded once to 16
//   bits, exactly as int8_dequantize folds them (bit-identical W, only the fp32 summation order differs);
//   register-A, q exactly, the scale applied to the fp32 sums (as the decode GEMV).
// Packed step: q[n0 .. n0+128, 64k .. 64k+64] as the tensor map writes it, [128 rows][64 bytes] (8 KB). Converter
// lane (g, t) of a 16-row group takes rows g and g + 8, columns 16t .. 16t + 16 (one 16-byte load per row; a
// quarter warp reads 8 distinct 16-byte chunks of two rows: conflict-free).
#include <climits>
#include <cstdlib>
#include <cstring>

#include "fused_gemm_rs_sm90a.cuh"
#include "fused_gemm_sm90a.cuh"
#include "gemv_mma_tile.cuh"  // HalfTraits: the exact int8 -> 16-bit pair conversions
#include "q4_common.cuh"
#include "quantbench/core/env_switch.h"
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/device_limits.h"
#include "quantbench/kernels/fused_prefill_policy.h"
#include "quantbench/kernels/int8_dequant.h"

namespace qb::kernels {
namespace {

using fused::kBK;
using fused::aligned;
using fused::kBN;
using q4::ActOps;

struct Int8Tables {
  float scale[kBN];  // scale * multiplier of the block's rows (0 past N)
};

struct Int8Source {
  static constexpr int kPackedStepBytes = kBN * kBK;
  using Shared = Int8Tables;
  CUtensorMap q_map;  // q [N, K] int8, boxes of 64 columns x 128 rows, no swizzle
  const float* scales;
  float multiplier;
  int64_t N, K;

  __host__ __device__ __forceinline__ int64_t n() const { return N; }
  __device__ __forceinline__ int k_steps() const { return static_cast<int>((K + kBK - 1) / kBK); }

  __device__ __forceinline__ void init_shared(Int8Tables& t, int64_t n0) const {
    for (int i = threadIdx.x; i < kBN; i += blockDim.x) t.scale[i] = n0 + i < N ? scales[n0 + i] * multiplier : 0.f;
  }

  __device__ __forceinline__ void load_step(int k, int64_t n0, uint8_t* dst, uint64_t* bar) const {
    sm90::mbar_arrive_expect_tx(bar, kPackedStepBytes);
    sm90::tma_load_2d(dst, &q_map, k * kBK, static_cast<int>(n0), bar);
  }

  template <typename Act, int CW>
  __device__ __forceinline__ void convert_step(int /*k*/, int64_t /*n0*/, const uint8_t* src, uint8_t* b,
                                               const Int8Tables& t, int warp, int lane) const {
    constexpr int kGroupsPerWarp = (kBN / 16) / CW;
    const int g = lane >> 2, q = lane & 3;
#pragma unroll
    for (int jj = 0; jj < kGroupsPerWarp; ++jj) {
      const int j = kGroupsPerWarp * warp + jj;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = 16 * j + g + 8 * h;
        const uint4 v = *reinterpret_cast<const uint4*>(src + r * kBK + 16 * q);
        const float s = t.scale[r];
        const uint32_t words[4] = {v.x, v.y, v.z, v.w};
        uint32_t out[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const uint32_t word = words[i >> 1];
          const int shift = 16 * (i & 1);
          const float first = static_cast<float>(static_cast<int8_t>((word >> shift) & 0xFFu)) * s;
          const float second = static_cast<float>(static_cast<int8_t>((word >> (shift + 8)) & 0xFFu)) * s;
          out[i] = ActOps<Act>::pack(first, second);
        }
        *reinterpret_cast<uint4*>(b + sm90::swizzled_offset(r, 2 * q)) = make_uint4(out[0], out[1], out[2], out[3]);
        *reinterpret_cast<uint4*>(b + sm90::swizzled_offset(r, 2 * q + 1)) =
            make_uint4(out[4], out[5], out[6], out[7]);
      }
    }
  }
};

// The same weights as the A operand of the register form (fused_gemm_rs_sm90a.cuh): W rows in wgmma's A registers,
// shared memory carries only x and the int8 step. Lane (g, t) loads columns 16t .. 16t + 15 of its two rows (one
// conflict-free 16-byte load each, as convert_step); wgmma's k16 step kk wants from lane (g, t) columns 16kk +
// {2t, 2t + 1} and 16kk + {2t + 8, 2t + 9}: 16-bit units t and t + 4 of lane (g, kk)'s 16 bytes. So each lane packs
// its units as words (unit u, unit u + 4), u = 0..3, and the quad transposes them (fused::quad_transpose, as the
// 4-bit source does). Values: the integers q themselves, exact in fp16 and bf16, converted with integer ops and one
// packed fma a pair (gemv::HalfTraits::int8x4_to_pairs_alu, as the one-tile decode GEMV); the row's scale *
// multiplier multiplies the fp32 sum in the epilogue (kRowScaled). So y = (s m) sum q x as the decode GEMV computes
// it, not sum round16(q s m) x: the conversion was the kernel's bound (4 I2F + 4 FMUL + 2 F2F a 4 weights against
// 2 PRMT + 4 LOP3 + 2 HFMA2), and W is now exact rather than rounded once.
struct Int8RsSource : Int8Source {
  static constexpr bool kRowScaled = true;

  template <typename Act>
  __device__ __forceinline__ void init_shared(Int8Tables& t, int64_t n0) const {
    Int8Source::init_shared(t, n0);
  }
  __device__ __forceinline__ const float* row_scales(const Int8Tables& t) const { return t.scale; }

  template <typename Act>
  __device__ __forceinline__ void fragments(int /*k*/, int64_t /*n0*/, const uint8_t* src,
                                            const Int8Tables& /*t*/, int j, int lane, uint32_t (&a)[4][4]) const {
    const int g = lane >> 2, q = lane & 3;
    uint32_t y[2][4];  // [row g, row g + 8][word u = (unit u, unit u + 4)]
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const uint4 v = *reinterpret_cast<const uint4*>(src + (16 * j + g + 8 * h) * kBK + 16 * q);
      y[h][0] = __byte_perm(v.x, v.z, 0x5410);
      y[h][1] = __byte_perm(v.x, v.z, 0x7632);
      y[h][2] = __byte_perm(v.y, v.w, 0x5410);
      y[h][3] = __byte_perm(v.y, v.w, 0x7632);
    }
    fused::quad_transpose(y[0], lane);
    fused::quad_transpose(y[1], lane);
    // y[h][kk]: row g + 8h, bytes 0-1 = columns 16kk + 2q, + 1; bytes 2-3 = columns 16kk + 2q + 8, + 9.
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      gemv::HalfTraits<Act>::int8x4_to_pairs_alu(y[0][kk], a[kk][0], a[kk][2]);
      gemv::HalfTraits<Act>::int8x4_to_pairs_alu(y[1][kk], a[kk][1], a[kk][3]);
    }
  }
};

// The register form, fused_prefill_tokens(M) tokens per block.
template <typename Act>
void launch_register_a(const Int8RsSource& src, const void* x, int64_t ldx, const void* bias, void* y, int64_t ldy,
                       int64_t M, cudaStream_t stream, int splits, void* workspace, size_t workspace_bytes) {
  if (fused_prefill_tokens(M) == 128) {
    fused::launch_rs<Act, Int8RsSource, 128>(src, x, ldx, src.K, bias, y, ldy, M, stream, splits, workspace,
                                             workspace_bytes);
  } else {
    fused::launch_rs<Act, Int8RsSource, 256>(src, x, ldx, src.K, bias, y, ldy, M, stream, splits, workspace,
                                             workspace_bytes);
  }
}

}  // namespace

bool int8_prefill_fused_form(const Int8Weights& w, int64_t M, Int8WgmmaForm* form, int* splits) {
  // QB_INT8_WGMMA, read once: 1 / rs force a form, unset or auto the policy, anything else never.
  enum class Choice { kPolicy, kSharedB, kRegisterA, kNever };
  static const Choice choice = env_equals("QB_INT8_WGMMA", "1")    ? Choice::kSharedB
                               : env_equals("QB_INT8_WGMMA", "rs") ? Choice::kRegisterA
                               : env_unset_or("QB_INT8_WGMMA", "auto") ? Choice::kPolicy
                                                                     : Choice::kNever;
  *splits = 1;
  if (choice == Choice::kSharedB || choice == Choice::kRegisterA) {
    *form = choice == Choice::kSharedB ? Int8WgmmaForm::kSharedB : Int8WgmmaForm::kRegisterA;
    return true;
  }
  FusedPrefillCut cut;
  if (choice == Choice::kNever || !fused_prefill_device_cut(M, w.N, w.K, kInt8FusedCost, &cut)) return false;
  *form = Int8WgmmaForm::kRegisterA;
  *splits = cut.splits;
  return true;
}

bool int8_gemm_wgmma_weights_supported(const Int8Weights& w, Int8WgmmaForm form) {
  const int smem = form == Int8WgmmaForm::kSharedB ? fused::dynamic_smem_bytes<Int8Source>()
                                                   : fused::rs_dynamic_smem_bytes<Int8RsSource, 256>();
  return compute_capability() == 90 && w.q != nullptr && w.scales != nullptr && w.group_size == 0 && w.N > 0 &&
         w.N < INT_MAX && w.K > 0 && w.K % 8 == 0 && w.ldq >= w.K && w.ldq % 16 == 0 && aligned(w.q, 16) &&
         max_shared_per_block_optin() >= smem;
}

bool int8_gemm_wgmma_supported(const void* x, int64_t ldx, const Int8Weights& w, const void* y, int64_t ldy,
                               int64_t M, Int8WgmmaForm form) {
  return int8_gemm_wgmma_weights_supported(w, form) && M > 0 && M <= INT_MAX - fused::kBM && aligned(x, 16) &&
         ldx % 8 == 0 && ldx >= w.K && aligned(y, 2) && ldy >= w.N;
}

size_t int8_gemm_wgmma_workspace_bytes(int64_t M, int64_t N, Int8WgmmaForm form, int splits) {
  if (splits <= 1 || form != Int8WgmmaForm::kRegisterA) return 0;
  return fused::rs_split_workspace_bytes(M, N, fused_prefill_tokens(M), splits);
}

void int8_gemm_wgmma(HalfType dtype, const void* x, int64_t ldx, const Int8Weights& w, const void* bias, void* y,
                     int64_t ldy, int64_t M, cudaStream_t stream, Int8WgmmaForm form, int splits, void* workspace,
                     size_t workspace_bytes) {
  QB_CHECK(int8_gemm_wgmma_supported(x, ldx, w, y, ldy, M, form), kInvalidInput,
           "int8_gemm_wgmma: operands not supported (per-channel scales, alignment, K % 8, M={}, ldx={}, ldy={}, or "
           "not sm_90)",
           M, ldx, ldy);
  QB_CHECK(splits == 1 || form == Int8WgmmaForm::kRegisterA, kInvalidInput,
           "int8_gemm_wgmma: split-K ({} splits) needs the register-A form", splits);
  Int8Source src;
  src.q_map = fused::tensor_map_2d(w.q, CU_TENSOR_MAP_DATA_TYPE_UINT8, 1, w.N, w.K, w.ldq, kBK, kBN,
                                   CU_TENSOR_MAP_SWIZZLE_NONE, "int8 weight");
  src.scales = w.scales;
  src.multiplier = w.scale_multiplier;
  src.N = w.N;
  src.K = w.K;
  if (form == Int8WgmmaForm::kRegisterA) {
    Int8RsSource rs;
    static_cast<Int8Source&>(rs) = src;
    if (dtype == HalfType::kF16) {
      launch_register_a<__half>(rs, x, ldx, bias, y, ldy, M, stream, splits, workspace, workspace_bytes);
    } else {
      launch_register_a<__nv_bfloat16>(rs, x, ldx, bias, y, ldy, M, stream, splits, workspace, workspace_bytes);
    }
  } else if (dtype == HalfType::kF16) {
    fused::launch<__half>(src, x, ldx, w.K, bias, y, ldy, M, stream);
  } else {
    fused::launch<__nv_bfloat16>(src, x, ldx, w.K, bias, y, ldy, M, stream);
  }
}

}  // namespace qb::kernels
