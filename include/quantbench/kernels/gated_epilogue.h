// The gated activation a decode GEMV can apply in its epilogue, so that a gated MLP's decode step needs no
// separate activation kernel between its gate_up and down projections.
//
// With `on`, the GEMV's N outputs are [gate rows | up rows] (N = 2 * inter) and it writes, for i < inter,
//   y[m, i] = round(round(act(round(gate[m, i]))) * round(up[m, i]))      (y [M, ldy], ldy >= inter)
// where round() is the activation dtype's rounding: bit for bit what activation() (decode_ops.h) gives on the
// ungated GEMV's output. The split must fall on the kernels' 16-row tiles: gated_epilogue_fits(N).
// Taken by the dense GEMV (gemv_mma_tile.cuh, one gate and one up row tile per block) and the 4-bit decode kernel
// (q4_gemv.cuh, tile pairs). The int8 GEMV has the same template but measured slower with it (Qwen2-7B int8 276 vs
// 300 tok/s, TinyLlama 1137 vs 1168 in 16-warp blocks; TinyLlama 1163 vs 1173 in 8-warp blocks), so int8 keeps the
// separate kernel.
#pragma once

#include <cstdint>

#include "quantbench/kernels/decode_ops.h"

namespace qb::kernels {

struct GatedEpilogue {
  bool on = false;
  ActType act = ActType::kSilu;
};

inline bool gated_epilogue_fits(int64_t N) { return N > 0 && N % 32 == 0; }

}  // namespace qb::kernels
