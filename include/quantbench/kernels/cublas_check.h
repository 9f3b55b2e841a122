// QB_CUBLAS_CHECK(call): a cuBLAS call's status checked like QB_CUDA_CHECK's; a failure throws qb::Error naming the
// call, the file and line, and cuBLAS's status string (an allocation failure is kOutOfMemory, as for CUDA).
#pragma once

#include <cublas_v2.h>

#include "quantbench/core/error.h"

namespace qb {

[[noreturn]] inline void throw_cublas_error(cublasStatus_t status, const char* what, const char* file, int line) {
  const ErrorKind kind = status == CUBLAS_STATUS_ALLOC_FAILED ? ErrorKind::kOutOfMemory : ErrorKind::kDevice;
  fail(kind, "cuBLAS error at {}:{}: {} failed: {}", file, line, what, cublasGetStatusString(status));
}

}  // namespace qb

#define QB_CUBLAS_CHECK(call)                                                                     \
  do {                                                                                            \
    const cublasStatus_t qb_cublas_status_ = (call);                                              \
    if (qb_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                               \
      ::qb::throw_cublas_error(qb_cublas_status_, #call, __FILE__, __LINE__);                     \
  } while (0)
