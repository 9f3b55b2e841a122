// QB_CUDA_CHECK(call): every CUDA runtime call's status is checked; a failure throws qb::Error
// naming the call, the file and line, and the CUDA error string. An allocation failure is kOutOfMemory
// so that a sweep can record it and go on.
#pragma once

#include <cuda_runtime_api.h>

#include "quantbench/core/error.h"

namespace qb {

[[noreturn]] inline void throw_cuda_error(cudaError_t status, const char* what, const char* file, int line) {
  const ErrorKind kind = status == cudaErrorMemoryAllocation ? ErrorKind::kOutOfMemory : ErrorKind::kDevice;
  fail(kind, "CUDA error at {}:{}: {} failed: {} ({})", file, line, what, cudaGetErrorString(status),
       cudaGetErrorName(status));
}

}  // namespace qb

#define QB_CUDA_CHECK(call)                                                    \
  do {                                                                         \
    cudaError_t qb_status_ = (call);                                           \
    if (qb_status_ != cudaSuccess) ::qb::throw_cuda_error(qb_status_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: configuration errors surface here, not at the next sync.
#define QB_CUDA_CHECK_LAUNCH() QB_CUDA_CHECK(cudaGetLastError())
