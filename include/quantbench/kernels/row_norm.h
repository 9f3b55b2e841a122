// An RMSNorm that a decode GEMV applies to its own input row (M = 1), instead of a separate add_norm launch
// before it: x = round(round((residual + delta) / rms) * weight) exactly as kernels::add_norm computes it
// (same element order and reduction tree, so the GEMV sees bit-identical x), and the updated residual
// (residual + delta, rounded) written to residual_out by the GEMV's first block.
// Why: each norm of a decode step was a dependent launch of its own (~1.1-1.6 us a layer measured by skipping
// it, BENCHMARKS.md); in the GEMV it costs the row's loads and a block reduction after the PDL wait.
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define QB_ROW_NORM_HD __host__ __device__
#else
#define QB_ROW_NORM_HD
#endif

namespace qb::kernels {

struct RowNorm {
  const void* residual = nullptr;  // [hidden], the activation dtype, 16-byte aligned
  const void* delta = nullptr;     // [hidden] or null (then residual_out is not written)
  void* residual_out = nullptr;    // [hidden]: residual + delta; must not alias residual or delta
  const void* weight = nullptr;    // [hidden] norm weight (gamma)
  float eps = 1e-6f;
  int hidden = 0;
};

// Largest hidden size a GEMV normalises itself (its row is staged in shared memory: 2 bytes per element).
constexpr int64_t kRowNormMaxHidden = 8192;

// Threads of add_norm's vectorised kernel for this hidden size: the fused norm reduces over the same virtual
// threads so that its sum of squares is bit-identical. hidden % 8 == 0.
QB_ROW_NORM_HD inline int row_norm_threads(int64_t hidden) {
  const int64_t vecs = hidden / 8;
  const int64_t chunks = (vecs + 1023) / 1024;
  return static_cast<int>(((vecs + chunks - 1) / chunks + 31) / 32 * 32);
}

// Whether a GEMV can take `norm` (16-bit activations are the caller's check): hidden % 8 == 0, at most
// kRowNormMaxHidden, every pointer 16-byte aligned, residual_out distinct from the inputs.
bool row_norm_supported(const RowNorm& norm);

}  // namespace qb::kernels
