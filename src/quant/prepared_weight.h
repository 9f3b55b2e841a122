// Linear::prepare's machinery for the formats whose prefill dequantizes W to 16 bits and then runs one cuBLAS GEMM
// (4-bit and int8 layers whose prefill takes no fused kernel): the 16-bit weight made ahead on a second stream, the
// two events that order it against the caller's stream, and one second stream per device.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <functional>

#ifdef QB_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace qb::quant {

#ifdef QB_HAVE_CUDA
// Invariants: at most one weight pending; it is for forwards of exactly rows() rows in its dtype. Its buffer comes
// from the caller's stream (that stream's pool, so the caching allocator reuses it in that stream's order, as any
// activation); the fill runs on the second stream after `ready_` (recorded on the caller's stream: whatever last used
// the memory has finished) and is complete when `done_` fires.
class PreparedWeight {
 public:
  PreparedWeight();
  ~PreparedWeight();
  PreparedWeight(const PreparedWeight&) = delete;
  PreparedWeight& operator=(const PreparedWeight&) = delete;

  // A fresh [N, ld] weight of `dtype` on `device` for forwards of `rows` rows; `fill(side_stream, data)` queues its
  // values on the second stream after the current stream's work. Replaces an unused earlier one. Starts nothing while
  // `device`'s current stream is being captured into a graph (a graph would need the second stream forked and joined);
  // take() then finds nothing and the forward dequantizes for itself.
  void start(int64_t rows, int64_t N, int64_t ld, at::ScalarType dtype, c10::Device device,
             const std::function<void(cudaStream_t, void*)>& fill);
  // For a forward of `rows` rows in `dtype` on `stream`: the weight after `stream` has been made to wait for its fill,
  // handed over (the caller's use of it is the last; the memory returns to the stream's pool after it). Undefined,
  // and nothing waited for, when the pending weight is for another size or dtype, or there is none.
  at::Tensor take(int64_t rows, at::ScalarType dtype, cudaStream_t stream);
  int64_t rows() const { return rows_; }

 private:
  int64_t rows_ = 0;
  at::Tensor weight_;
  cudaEvent_t ready_ = nullptr, done_ = nullptr;
};
#else
class PreparedWeight {
 public:
  int64_t rows() const { return 0; }
};
#endif

}  // namespace qb::quant
