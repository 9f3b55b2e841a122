// Private to src/model: from ATen tensors to the plain kernel API (dtype enum, current stream).
#pragma once

#ifdef QB_HAVE_CUDA
#include <ATen/Tensor.h>
#include <c10/cuda/CUDAStream.h>

#include "quantbench/core/error.h"
#include "quantbench/kernels/decode_ops.h"
#include "quantbench/kernels/prefill_ops.h"

namespace qb::model {

inline kernels::DType kernel_dtype(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return kernels::DType::kF32;
    case at::kHalf: return kernels::DType::kF16;
    case at::kBFloat16: return kernels::DType::kBF16;
    default: fail(ErrorKind::kUnsupported, "fused kernels take fp32, fp16 or bf16, not {}", c10::toString(type));
  }
}

inline cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

}  // namespace qb::model
#endif
