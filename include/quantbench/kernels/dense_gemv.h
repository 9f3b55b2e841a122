// Dense decode GEMV: y[M, N] = x[M, K] W[N, K]^T (+ bias[N]) for fp16 or bf16 x and W with few
// rows of x (decode: tokens x batch <= kGemvMaxM). cuBLAS reaches only ~50% of copy bandwidth at
// M = 1 on 7B-model shapes; this kernel streams each weight byte once with 16-byte loads and does
// the arithmetic on tensor cores (fp32 accumulation), so M up to 32 costs about what M = 1 does.
// Layout and tiling: kernels/gemv_mma_tile.cuh.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "quantbench/kernels/gated_epilogue.h"

namespace qb::kernels {

enum class HalfType { kF16, kBF16 };

// Largest M the decode GEMV kernels (dense, int8, llm.int8) take: four 8-token mma tiles.
constexpr int64_t kGemvMaxM = 32;
// Largest M with the dense GEMV's gated epilogue (one 8-token mma tile; gated_epilogue.h).
constexpr int64_t kGemvGatedMaxM = 8;

// Whether dense_gemv takes these operands: 1 <= M <= kGemvMaxM, K % 8 == 0, ldx/ldw % 8 == 0 and
// x, W 16-byte aligned (the kernel reads 16 bytes per lane). Callers fall back to cuBLAS otherwise.
bool dense_gemv_supported(const void* x, int64_t ldx, const void* w, int64_t ldw, int64_t M, int64_t K);

// x [M, ldx], W [N, ldw], bias [N] or null, y [M, ldy]: all of `dtype`, on the device. With gated.on, y gets
// act(gate) * up (gated_epilogue.h; M <= kGemvGatedMaxM, gated_epilogue_fits(N)). Throws qb::Error (kInvalidInput)
// naming the violated precondition.
void dense_gemv(HalfType dtype, const void* x, int64_t ldx, const void* w, int64_t ldw, const void* bias, void* y,
                int64_t ldy, int64_t M, int64_t N, int64_t K, cudaStream_t stream, const GatedEpilogue& gated = {});

}  // namespace qb::kernels
