// CUDA kernels of the 4-bit formats (nf4, fp4, awq): y[M, N] = x[M, K] W[N, K]^T (+ bias[N]).
// Layouts: quantbench/kernels/q4_layout.h. Values: every format is "a 4-bit code per weight, looked up
// in a 16-entry codebook, times a scale":
//   absmax modes (nf4/fp4): w[n, k] = codebook[code] * absmax,  absmax per block of `blocksize`
//       consecutive elements of the flattened weight (fp32, or double-quantized: absmax =
//       nested_code[u8] * nested_absmax + nested_offset, each op rounded to fp32 as bitsandbytes does)
//   affine mode (awq): w[n, k] = (code - zero) * scale per (row, group of K), codebook = 0..15, scale fp16,
//       zero 0..15.
// Accumulation is fp32 everywhere; x and y are fp16 or bf16 (the dequantize kernels also write fp32).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "quantbench/kernels/decode_ops.h"  // DType
#include "quantbench/kernels/gated_epilogue.h"

typedef struct cublasContext* cublasHandle_t;

namespace qb::kernels {

enum class Q4ScaleMode {
  kAbsmaxF32,     // scales: float absmax
  kAbsmaxNested,  // scales: uint8 code into nested_code; nested: (absmax, offset) per 256 flat blocks
  kAffine,        // scales: uint32 = fp16 scale bits | zero << 16
  // scales: the fp32 absmax stored as 16 bits (bf16, or fp16 when Q4TileWeights::absmax_f16), chosen at load
  // only where every absmax of the weight converts to it and back exactly: it is then the same fp32 value, so
  // every product and rounding is kAbsmaxF32's, for half the scale bytes (nf4 / fp4 blocksize 64: 4.5 -> 4.25
  // bits a weight). bitsandbytes' absmax of 16-bit weights is max |w| of a block, a 16-bit value: always exact.
  kAbsmax16,
};

// Tile layout (K % 64 == 0, unit = 64 << unit_shift columns): the fast path for every M.
struct Q4TileWeights {
  const uint8_t* tiles = nullptr;  // [n_tiles][K/64][512]
  int64_t N = 0, K = 0;
  Q4ScaleMode mode = Q4ScaleMode::kAbsmaxF32;
  int unit_shift = 0;             // unit U = 64 << unit_shift columns; units per row = K / U
  const void* scales = nullptr;   // [n_tiles][K/U][8][2] of float | uint8 | uint32 | uint16 (see mode, q4_layout.h)
  bool absmax_f16 = false;        // kAbsmax16: the 16 bits are fp16 (else bf16)
  // kAbsmaxNested: flat block index of (row n, unit u) is n * (K/U) + u (U == blocksize, K % U == 0);
  // nested[flat >> 8] = {nested absmax, nested offset}; nested_code [256] fp32.
  const float2* nested = nullptr;
  const float* nested_code = nullptr;
  float codebook[16] = {};
};

// Flat layout (any shape): the fallback when K % 64 != 0 or the unit is smaller than 64.
struct Q4FlatWeights {
  const uint8_t* codes = nullptr;  // canonical, ceil(N*K/2) bytes
  int64_t N = 0, K = 0;
  Q4ScaleMode mode = Q4ScaleMode::kAbsmaxF32;  // kAbsmaxF32 or kAffine
  int64_t blocksize = 0;          // absmax: block of the flattened weight; affine: group along K
  const float* absmax = nullptr;  // [ceil(N*K/blocksize)]
  const uint32_t* affine = nullptr;  // [N][K/group]: fp16 scale bits | zero << 16
  float codebook[16] = {};
};

constexpr int64_t kQ4GemvMaxM = 64;
// Largest M with the gated epilogue (one 8-token slice: the kernel's gated instances; batch 16 measured slower gated).
constexpr int64_t kQ4GemvGatedMaxM = 8;

// Whether q4_tile_gemm takes these operands: 1 <= M <= 64, x 16-byte aligned, ldx % 8 == 0, dtype
// fp16/bf16, weights in tile layout.
bool q4_tile_gemm_supported(DType dtype, const void* x, int64_t ldx, int64_t M);

// How q4_tile_gemm runs (kernels/q4_gemv.cuh): 0 = choose (the measured rule, NOTES-q4.md); the benchmark
// and the tests set them to reach every variant.
enum class Q4GemvCompute {
  kAuto = 0,
  kTensorCores = 1,  // mma.m16n8k16, fp32 accumulation; any M <= 64
  kCudaCores = 2,    // M == 1 only: half2 FMAs over 8 products per half, then fp32 (error bound in q4_gemv.cuh)
};
struct Q4GemvConfig {
  Q4GemvCompute compute = Q4GemvCompute::kAuto;
  int warps = 0;   // warps per block, all on one 16-row tile splitting its K chunks: 1..16 for M <= 16,
                   // 1..8 for M <= 32, 1..4 above
  int stages = 0;  // cp.async ring depth per warp (chunks in flight + 1): 2, 3, 4 or 6; 0 = 2 (QB_Q4_GEMV_STAGES overrides)
  int grid = 0;    // blocks; 0 = as many as are resident at once (a block loops over tiles), capped at n_tiles
};
// The configuration q4_tile_gemm runs for these operands (auto fields resolved, grid included); `gated`: with the
// gated epilogue (the grid then counts (gate, up) tile pairs).
Q4GemvConfig q4_tile_gemm_config(DType dtype, const Q4TileWeights& w, int64_t M, const Q4GemvConfig& request = {},
                                 bool gated = false);

// Decode / small-batch path: y = x W^T (+ bias) straight from the tile layout. x [M, ldx], bias [N] or null,
// y [M, ldy]. No allocation, no host sync: capturable in a CUDA graph. Deterministic (fixed-order sums).
// With gated.on, y [M, ldy >= N / 2] gets act(gate) * up instead (gated_epilogue.h; N % 32 == 0).
// x_scratch (16-byte aligned, q4_x_fragments_bytes(M, K) bytes) or null: where the tensor-core path (M >= 2) first
// copies x in the order its lanes read it (kernels/q4_x_fragments.cu), so that each x load of a warp is 512
// contiguous bytes instead of 8 rows' pieces; the same values in the same order (bit-identical y).
void q4_tile_gemm(DType dtype, const Q4TileWeights& w, const void* x, int64_t ldx, const void* bias, void* y,
                  int64_t ldy, int64_t M, cudaStream_t stream, const Q4GemvConfig& config = {},
                  const GatedEpilogue& gated = {}, void* x_scratch = nullptr);

// Bytes of q4_tile_gemm's x_scratch for M tokens of K columns (K % 64 == 0): 0 where none is used (M = 1: the CUDA-core
// path reads x as it is).
size_t q4_x_fragments_bytes(int64_t M, int64_t K);
// Whether the copy pays for an N x K weight at M tokens: weights of at least kQ4XFragmentsMinWeights elements
// (QB_Q4_X_FRAGMENTS=0: never, =all: always; the A/B switches).
constexpr int64_t kQ4XFragmentsMinWeights = int64_t{32} << 20;
bool q4_x_fragments_pay(int64_t M, int64_t N, int64_t K);
// x [M, ldx] (16-bit) into the fragment order of the tensor-core GEMV with nt 8-token slices:
// out[((c * nt + s) * 2 + h) * 256 + lane * 8 + j] = x[8 s + lane / 4][64 c + 16 (lane % 4) + 8 h + j] (0 past M).
void q4_x_fragments(const void* x, int64_t ldx, int64_t M, int64_t K, int nt, void* out, cudaStream_t stream);

// Rows [row0, row0 + rows) x columns [col0, col0 + cols) of W, dequantized into out (row-major, ld ldo,
// dtype fp32/fp16/bf16). row0 % 16 == 0, col0 % 64 == 0, cols % 64 == 0; rows past N are not written.
// l2_hints: codes loaded evict-first, output stored evict-last (for a chunk that cuBLAS reads next).
void q4_tile_dequant(DType dtype, const Q4TileWeights& w, int64_t row0, int64_t rows, int64_t col0, int64_t cols,
                     void* out, int64_t ldo, cudaStream_t stream, bool l2_hints = false);

// The whole W [N, K] dequantized into out (row-major, ld K), any shape.
void q4_flat_dequant(DType dtype, const Q4FlatWeights& w, void* out, cudaStream_t stream);

// Large-M path: W dequantized chunk by chunk into `scratch`, each chunk multiplied by cuBLAS (fp32
// accumulation). (Chunks small enough to stay in L2 were measured slower than one whole-W pass: the chunk
// GEMMs stop filling the chip; NOTES-q4.md.)
//   split kRows: chunk = `chunk` rows of W (a multiple of 16), y[:, rows] written directly.
//   split kCols: chunk = `chunk` columns of K (a multiple of 64), accumulated in fp32 `accum` [M, N],
//                converted (+ bias) at the end.
//   chunk >= N (rows) is "dequantize all, one GEMM".
enum class Q4PrefillSplit { kRows, kCols };
struct Q4PrefillPlan {
  Q4PrefillSplit split = Q4PrefillSplit::kRows;
  int64_t chunk = 0;
  bool l2_hints = false;  // dequantize with evict-first loads / evict-last stores
};
// Bytes of scratch (and of fp32 accum for kCols) the plan needs.
int64_t q4_prefill_scratch_bytes(const Q4PrefillPlan& plan, DType dtype, int64_t N, int64_t K);
int64_t q4_prefill_accum_bytes(const Q4PrefillPlan& plan, int64_t M, int64_t N);
// A plan for these sizes: measured on H100 (kernels/NOTES-q4.md).
Q4PrefillPlan q4_default_prefill_plan(int64_t M, int64_t N, int64_t K);

void q4_tile_matmul_cublas(cublasHandle_t handle, DType dtype, const Q4TileWeights& w, const Q4PrefillPlan& plan,
                           const void* x, int64_t ldx, const void* bias, void* y, int64_t ldy, int64_t M,
                           void* scratch, float* accum, cudaStream_t stream);


// Large-M path on Hopper (sm_90a, kernels/q4_gemm_sm90a.cu): one kernel, W dequantized inside the GEMM main loop
// (wgmma, fp32 accumulation). No host sync; scratch only for split-K's partial tiles. Supported: compute capability 9.0,
// fp16/bf16, tile layout, x 16-byte aligned with ldx % 8 == 0, any ldy. Two forms:
//   kRegisterA128 / kRegisterA256 (kernels/fused_gemm_rs_sm90a.cuh): each warp dequantizes its weight rows into
//     wgmma's A registers, blocks of 128 or 256 tokens; awq values bit-identical to q4_tile_dequant's, nf4 / fp4
//     within 2 roundings (the codebook in 16 bits).
//   kSharedB (kernels/fused_gemm_sm90a.cuh): converter warps write W into a shared-memory B stage; bit-identical.
// Q4Linear takes this path through q4_prefill_fused_form: by default the register-A cut fused_prefill_cut names
// (tokens per block, split count); QB_Q4_WGMMA=1 or rs: register-A everywhere, 128 tokens, or 256 with
// QB_FUSED_RS_TOKENS=256; QB_Q4_WGMMA=ss: shared-B everywhere; QB_Q4_WGMMA=0: never. QB_FUSED_SPLITS=n caps the
// split count (1: no split-K).
enum class Q4WgmmaForm { kRegisterA128, kRegisterA256, kSharedB };
// The form QB_Q4_WGMMA / QB_FUSED_RS_TOKENS name (register-A with 128 tokens when neither says otherwise).
Q4WgmmaForm q4_tile_gemm_wgmma_form();

// The fused form (and split-K count) Q4Linear takes at M rows, or none (dequantize + cuBLAS): QB_Q4_WGMMA=1|rs|ss
// force the fused kernel on every large-M call (q4_tile_gemm_wgmma_form(), no split); unset or auto, the register-A
// cut fused_prefill_cut names (fused_prefill_policy.h), where it names one (BENCHMARKS.md has the end-to-end
// effect); QB_Q4_WGMMA=0 (any other value), none.
bool q4_prefill_fused_form(const Q4TileWeights& w, int64_t M, Q4WgmmaForm* form, int* splits);
bool q4_tile_gemm_wgmma_supported(DType dtype, const Q4TileWeights& w, const void* x, int64_t ldx, const void* y,
                                  int64_t ldy, int64_t M, Q4WgmmaForm form = q4_tile_gemm_wgmma_form());
// Split-K (register-A forms only): `splits` K ranges per output tile, fp32 partial tiles in `workspace`
// (q4_tile_gemm_wgmma_workspace_bytes, 16-byte aligned; 0 bytes for splits = 1).
size_t q4_tile_gemm_wgmma_workspace_bytes(int64_t M, int64_t N, Q4WgmmaForm form, int splits);
void q4_tile_gemm_wgmma(DType dtype, const Q4TileWeights& w, const void* x, int64_t ldx, const void* bias, void* y,
                        int64_t ldy, int64_t M, cudaStream_t stream, Q4WgmmaForm form = q4_tile_gemm_wgmma_form(),
                        int splits = 1, void* workspace = nullptr, size_t workspace_bytes = 0);

// y = x W^T (+ bias) for the flat layout: dequantize all of W into scratch (N*K elements of dtype), one GEMM.
void q4_flat_matmul_cublas(cublasHandle_t handle, DType dtype, const Q4FlatWeights& w, const void* x, int64_t ldx,
                           const void* bias, void* y, int64_t ldy, int64_t M, void* scratch, cudaStream_t stream);

}  // namespace qb::kernels
