// x in the order the 4-bit tensor-core GEMV's lanes read it (contract in include/quantbench/kernels/q4_gemm.h).
//
// Why: per 64-column chunk, lane (g, t) of the GEMV takes columns 16t .. 16t + 15 of token 8s + g in each 8-token
// slice s, as two 16-byte loads; from x's row layout every such warp load touches 8 rows (8 cache lines, half of each
// used), and at M = 16 those loads were ~60% of the L1 wavefronts of the kernel, the unit that bounds it (ncu,
// NOTES-q4.md). In this order each of them is 512 contiguous bytes. Measured: BENCHMARKS.md, session 24 (end to end
// Qwen2-7B batch 16 +3%, TinyLlama batch 16 -3.6%: the copy is one more launch per layer); it moves 2 x M x K bytes.
// Layout: out[((c * nt + s) * 2 + h) * 256 + lane * 8 + j] = x[8 s + lane / 4][64 c + 16 (lane % 4) + 8 h + j], zero
// for tokens >= M. One thread per 16-byte piece: a 16-byte load of x, a coalesced 16-byte store.
#include <algorithm>
#include <cstdint>

#include "pdl.cuh"
#include "quantbench/core/error.h"
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/q4_gemm.h"

namespace qb::kernels {
namespace {

__global__ void __launch_bounds__(256) q4_x_fragments_kernel(const uint16_t* __restrict__ x, int64_t ldx, int M,
                                                               int64_t pieces, int nt, uint4* __restrict__ out) {
  pdl_launch_dependents();  // always followed by the 4-bit GEMV, whose pre-wait part reads weights only (pdl.cuh, 3)
  pdl_wait();
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < pieces; i += int64_t{gridDim.x} * blockDim.x) {
    const int lane = static_cast<int>(i & 31), h = static_cast<int>((i >> 5) & 1);
    const int64_t slice_chunk = i >> 6;  // c * nt + s
    const int s = static_cast<int>(slice_chunk % nt);
    const int64_t c = slice_chunk / nt;
    const int m = 8 * s + (lane >> 2);
    out[i] = m < M ? *reinterpret_cast<const uint4*>(x + m * ldx + 64 * c + 16 * (lane & 3) + 8 * h)
                   : make_uint4(0, 0, 0, 0);
  }
}

}  // namespace

void q4_x_fragments(const void* x, int64_t ldx, int64_t M, int64_t K, int nt, void* out, cudaStream_t stream) {
  QB_CHECK(M >= 1 && M <= 8 * int64_t{nt} && (nt == 1 || nt == 2 || nt == 4 || nt == 8) && K % 64 == 0 &&
               ldx >= K && ldx % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
               reinterpret_cast<uintptr_t>(out) % 16 == 0,
           kInvalidInput, "q4_x_fragments: M = {} in {} slices, K = {}, ldx = {}: needs K % 64 == 0, ldx >= K, "
           "ldx % 8 == 0 and 16-byte aligned x and out", M, nt, K, ldx);
  const int64_t pieces = K / 64 * nt * 64;  // 16-byte pieces: per chunk and slice, 2 halves x 32 lanes
  const int64_t blocks = std::min<int64_t>((pieces + 255) / 256, 1024);
  launch_pdl(q4_x_fragments_kernel, static_cast<unsigned>(blocks), 256, 0, stream, static_cast<const uint16_t*>(x),
             ldx, static_cast<int>(M), pieces, nt, static_cast<uint4*>(out));
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace qb::kernels
