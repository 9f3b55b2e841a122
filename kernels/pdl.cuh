// Programmatic dependent launch (PDL, sm_90+): a kernel launched with launch_pdl may start while the
// kernel before it in the stream is still finishing, so its launch, block scheduling and any loads of
// constant data (weights, codebooks) overlap the predecessor's tail instead of following it. In a
// decode step of dozens of short kernels that gap is a large share of the step (one per kernel).
//
// The contract every kernel launched with launch_pdl keeps, in every block:
//   1. before pdl_wait(), read only data that the kernel launched just before it does not write
//      (weights, scales, codebooks, norm weights, rotary tables; also data written two or more
//      launches back, such as the KV cache rows of earlier steps and the step position: see below);
//      write nothing;
//   2. call pdl_wait() (it returns once the predecessor grid has completed and its writes are
//      visible) before reading activations, caches or positions and before any write;
//   3. then pdl_launch_dependents() (lets the successor start its own prologue). Exception: a kernel
//      that is always followed by a GEMV (norm, activation), whose pre-wait part reads weights only,
//      calls it first thing, so that the GEMV's first weight loads overlap both kernels before it
//      (measured: a norm between two GEMVs cost Qwen2-7B ~5 us, most of it this overlap). The
//      per-query-head decode attention, also followed by a GEMV, measured faster the regular way
//      (session 28: Qwen2-7B int8 / nf4 / awq +0.3-0.8%, TinyLlama +0.4-1.6%), except before a GEMV
//      that issues its whole weight's loads before its wait (the int8 one-round form: Qwen2-7B int8
//      +0.7%, session 32; the caller says so: Linear::decode_loads_weight_before_input); the grouped
//      (batched) one the same either way, and it keeps the exception.
// Completion is transitive: a kernel completes only after its own wait, so a successor's wait also
// covers every earlier kernel. And a kernel can start only once its predecessor has passed its own
// wait (rule 3), so while it runs its pre-wait part every kernel before its predecessor has completed
// and its writes are visible: only the immediate predecessor's output needs the wait. That holds for
// any kernel whose predecessor triggers after its own wait, which is why the exception in rule 3 is
// limited to kernels whose successors read nothing but weights before waiting. Kernels launched the plain way are ordered as usual. Stream capture
// keeps the programmatic edges in the CUDA graph. QB_PDL=0 in the environment turns it off (A/B runs).
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/pdl.h"

namespace qb::kernels {

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

template <typename... Params, typename... Args>
void launch_pdl(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                Args&&... args) {
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  config.attrs = &attribute;
  config.numAttrs = pdl_enabled() ? 1 : 0;
  QB_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
}

}  // namespace qb::kernels
