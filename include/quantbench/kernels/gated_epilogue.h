// The gated activation a decode GEMV can apply in its epilogue, so that a gated MLP's decode step needs no
// separate activation kernel between its gate_up and down projections.
//
// With `on`, the GEMV's N outputs are [gate rows | up rows] (N = 2 * inter) and it writes, for i < inter,
//   y[m, i] = round(round(act(round(gate[m, i]))) * round(up[m, i]))      (y [M, ldy], ldy >= inter)
// where round() is the activation dtype's rounding: bit for bit what activation() (decode_ops.h) gives on the
// ungated GEMV's output. The split must fall on the kernels' 16-row tiles: gated_epilogue_fits(N).
// Taken by the dense GEMV (gemv_mma_tile.cuh, one gate and one up row tile per block), the int8 GEMV (the same
// template with paired rows: 8 gate and 8 up rows in one 16-row tile, so its grid and form are the ungated ones; the
// two-tile form measured slower for int8: Qwen2-7B 276 vs 300 tok/s) and the 4-bit decode kernel (q4_gemv.cuh, tile
// pairs).
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
