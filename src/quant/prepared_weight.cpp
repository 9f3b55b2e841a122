#include "prepared_weight.h"

#ifdef QB_HAVE_CUDA

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAStream.h>

#include <map>
#include <mutex>

#include "quantbench/kernels/cuda_check.h"

namespace qb::quant {

namespace {
// One second stream per device for every layer's preparation (one stream: their work runs in call order).
cudaStream_t prepare_stream(c10::DeviceIndex device) {
  static std::mutex mutex;
  static std::map<c10::DeviceIndex, cudaStream_t> streams;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = streams.find(device);
  if (it == streams.end()) it = streams.emplace(device, c10::cuda::getStreamFromPool(false, device).stream()).first;
  return it->second;
}
}  // namespace

PreparedWeight::PreparedWeight() {
  QB_CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
  QB_CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
}

PreparedWeight::~PreparedWeight() {
  cudaEventDestroy(ready_);
  cudaEventDestroy(done_);
}

void PreparedWeight::start(int64_t rows, int64_t N, int64_t ld, at::ScalarType dtype, c10::Device device,
                           const std::function<void(cudaStream_t, void*)>& fill) {
  const cudaStream_t current = c10::cuda::getCurrentCUDAStream(device.index()).stream();
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  QB_CUDA_CHECK(cudaStreamIsCapturing(current, &capture));
  if (capture != cudaStreamCaptureStatusNone) return;
  // An unused weight from an earlier call: this stream may reuse its memory only after its fill has finished.
  if (weight_.defined()) QB_CUDA_CHECK(cudaStreamWaitEvent(current, done_, 0));
  weight_ = at::empty({N, ld}, at::TensorOptions().dtype(dtype).device(device));
  const cudaStream_t side = prepare_stream(device.index());
  QB_CUDA_CHECK(cudaEventRecord(ready_, current));
  QB_CUDA_CHECK(cudaStreamWaitEvent(side, ready_, 0));
  fill(side, weight_.data_ptr());
  QB_CUDA_CHECK(cudaEventRecord(done_, side));
  rows_ = rows;
}

at::Tensor PreparedWeight::take(int64_t rows, at::ScalarType dtype, cudaStream_t stream) {
  if (rows_ == 0 || rows != rows_ || !weight_.defined() || weight_.scalar_type() != dtype) return {};
  QB_CUDA_CHECK(cudaStreamWaitEvent(stream, done_, 0));
  rows_ = 0;
  at::Tensor weight = std::move(weight_);
  weight_ = at::Tensor();
  return weight;
}

}  // namespace qb::quant

#endif  // QB_HAVE_CUDA
