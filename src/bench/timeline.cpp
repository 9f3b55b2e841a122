#include "quantbench/bench/timeline.h"

#include <chrono>

#include "quantbench/core/error.h"

#ifdef QB_HAVE_CUDA
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include "quantbench/kernels/cuda_check.h"
#endif

namespace qb::bench {
namespace {

class WallTimeline final : public Timeline {
 public:
  void reserve(size_t marks) override { marks_.reserve(marks); }
  void clear() override { marks_.clear(); }
  void mark() override { marks_.push_back(std::chrono::steady_clock::now()); }
  std::vector<double> intervals_ms() override {
    std::vector<double> out;
    for (size_t i = 1; i < marks_.size(); ++i) {
      out.push_back(std::chrono::duration<double, std::milli>(marks_[i] - marks_[i - 1]).count());
    }
    return out;
  }
  size_t size() const override { return marks_.size(); }
  const char* clock_name() const override { return "wall clock (steady_clock)"; }

 private:
  std::vector<std::chrono::steady_clock::time_point> marks_;
};

#ifdef QB_HAVE_CUDA
class CudaEventTimeline final : public Timeline {
 public:
  ~CudaEventTimeline() override {
    for (cudaEvent_t event : events_) cudaEventDestroy(event);
  }
  void reserve(size_t marks) override {
    while (events_.size() < marks) {
      cudaEvent_t event;
      QB_CUDA_CHECK(cudaEventCreate(&event));
      events_.push_back(event);
    }
  }
  void clear() override { used_ = 0; }
  void mark() override {
    if (used_ == events_.size()) reserve(events_.size() * 2 + 8);
    QB_CUDA_CHECK(cudaEventRecord(events_[used_++], c10::cuda::getCurrentCUDAStream().stream()));
  }
  std::vector<double> intervals_ms() override {
    std::vector<double> out;
    if (used_ == 0) return out;
    QB_CUDA_CHECK(cudaEventSynchronize(events_[used_ - 1]));
    for (size_t i = 1; i < used_; ++i) {
      float ms = 0;
      QB_CUDA_CHECK(cudaEventElapsedTime(&ms, events_[i - 1], events_[i]));
      out.push_back(ms);
    }
    return out;
  }
  size_t size() const override { return used_; }
  const char* clock_name() const override { return "CUDA events (cudaEventElapsedTime after cudaEventSynchronize)"; }

 private:
  std::vector<cudaEvent_t> events_;
  size_t used_ = 0;
};
#endif

}  // namespace

std::unique_ptr<Timeline> make_timeline(c10::Device device) {
  if (device.is_cuda()) {
#ifdef QB_HAVE_CUDA
    return std::make_unique<CudaEventTimeline>();
#else
    fail(ErrorKind::kUnsupported, "CUDA timing needs a CUDA build");
#endif
  }
  return std::make_unique<WallTimeline>();
}

}  // namespace qb::bench
