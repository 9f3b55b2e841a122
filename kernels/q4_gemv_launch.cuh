// Host side of the q4_gemv_kernel instantiations (kernels/q4_gemv.cuh): shared-memory attribute, occupancy,
// launch. Included by the per-(activation, scale mode) instantiation files kernels/q4_gemv_<act>_<mode>.cu so
// that the build compiles them in parallel.
#pragma once

#include <mutex>

#include "l2_policy.cuh"
#include "pdl.cuh"
#include "q4_gemv.cuh"
#include "quantbench/core/error.h"
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/device_limits.h"

namespace qb::kernels::q4 {

template <typename Act, Q4ScaleMode MODE, int NT, bool kCudaCores, bool kGated, bool kXFrag = false>
void gemv_prepare_kernel() {
  // The rings need more than the 48 KB a block gets by default: allow the device's opt-in maximum (the
  // attribute is a ceiling; occupancy follows what a launch asks for). Once per process (device 0's limit is
  // the limit of every device of one machine here).
  static std::once_flag once;
  std::call_once(once, [] {
    auto kernel = q4_gemv_kernel<Act, MODE, NT, kCudaCores, kGated, kXFrag>;
    const int optin = max_shared_per_block_optin();
    cudaFuncAttributes attributes{};
    QB_CUDA_CHECK(cudaFuncGetAttributes(&attributes, kernel));
    QB_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       optin - static_cast<int>(attributes.sharedSizeBytes)));
  });
}

template <typename Act, Q4ScaleMode MODE, int NT, bool kCudaCores, bool kGated>
int GemvKernel<Act, MODE, NT, kCudaCores, kGated>::resident_blocks(int warps, int stages) {
  gemv_prepare_kernel<Act, MODE, NT, kCudaCores, kGated>();
  return resident_blocks_per_sm(reinterpret_cast<const void*>(q4_gemv_kernel<Act, MODE, NT, kCudaCores, kGated, false>),
                                warps * 32, gemv_dynamic_smem_bytes(MODE, NT, warps, stages, kGated));
}

template <typename Act, Q4ScaleMode MODE, int NT, bool kCudaCores, bool kGated>
void GemvKernel<Act, MODE, NT, kCudaCores, kGated>::launch(const Q4TileWeights& w, const void* x, int64_t ldx,
                                                   const void* bias, void* y, int64_t ldy, int M, int warps,
                                                   int stages, int grid, ActType gate_act,
                                                   cudaStream_t stream, bool x_frag) {
  // x_frag (tensor cores only): x is q4_x_fragments' copy, read by the kXFrag instance (the same resources: the
  // occupancy above is the row-layout instance's).
  auto run = [&](auto kernel) {
    launch_pdl(kernel, grid, warps * 32, gemv_dynamic_smem_bytes(MODE, NT, warps, stages, kGated), stream, w,
               static_cast<const Act*>(x), ldx, static_cast<const Act*>(bias), static_cast<Act*>(y), ldy, M, stages,
               gate_act, weight_stream_policy(weight_stream_evict_first()));
  };
  if constexpr (!kCudaCores) {
    if (x_frag) {
      gemv_prepare_kernel<Act, MODE, NT, kCudaCores, kGated, true>();
      run(q4_gemv_kernel<Act, MODE, NT, kCudaCores, kGated, true>);
      QB_CUDA_CHECK_LAUNCH();
      return;
    }
  }
  QB_CHECK(!x_frag, kInvalidInput, "q4_tile_gemm: x in fragment order is for the tensor-core path");
  gemv_prepare_kernel<Act, MODE, NT, kCudaCores, kGated>();
  run(q4_gemv_kernel<Act, MODE, NT, kCudaCores, kGated, false>);
  QB_CUDA_CHECK_LAUNCH();
}

// Every variant the dispatch can pick for one (activation, scale mode): tensor cores for 8, 16, 32, 64 tokens,
// CUDA cores for one; with the gated epilogue, both for up to 8 tokens.
#define QB_Q4_GEMV_INSTANTIATE(ACT, MODE)                      \
  template struct GemvKernel<ACT, MODE, 1, false>;             \
  template struct GemvKernel<ACT, MODE, 2, false>;             \
  template struct GemvKernel<ACT, MODE, 4, false>;             \
  template struct GemvKernel<ACT, MODE, 8, false>;             \
  template struct GemvKernel<ACT, MODE, 1, true>;              \
  template struct GemvKernel<ACT, MODE, 1, false, true>;       \
  template struct GemvKernel<ACT, MODE, 1, true, true>;

}  // namespace qb::kernels::q4
