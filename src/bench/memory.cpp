#include "quantbench/bench/memory.h"

#include <chrono>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#ifdef QB_HAVE_CUDA
#include <ATen/cuda/CUDAContextLight.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime_api.h>

#include "quantbench/kernels/cuda_check.h"
#endif

namespace qb::bench {

AllocatorStats allocator_stats(c10::Device device) {
  AllocatorStats out;
#ifdef QB_HAVE_CUDA
  if (device.is_cuda()) {
    using c10::CachingAllocator::StatType;
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index());
    const auto& allocated = stats.allocated_bytes[static_cast<size_t>(StatType::AGGREGATE)];
    const auto& reserved = stats.reserved_bytes[static_cast<size_t>(StatType::AGGREGATE)];
    out.allocated_bytes = allocated.current;
    out.peak_allocated_bytes = allocated.peak;
    out.reserved_bytes = reserved.current;
    out.peak_reserved_bytes = reserved.peak;
  }
#endif
  return out;
}

void reset_allocator_peaks(c10::Device device) {
#ifdef QB_HAVE_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index() < 0 ? 0 : device.index());
#endif
}

void release_cached_memory(c10::Device device) {
#ifdef QB_HAVE_CUDA
  if (device.is_cuda()) {
    // libtorch keeps one cuBLAS workspace per (handle, stream) for the life of the process, allocated through
    // the caching allocator; every decode run takes a fresh stream from the pool for its graph, so without this
    // each run left ~32 MB allocated and a sweep's later runs counted up to ~1 GB of earlier runs' workspaces in
    // their memory figures. Called between runs only, when no captured graph refers to a workspace.
    try {
      at::cuda::clearCublasWorkspaces();
      c10::cuda::CUDACachingAllocator::emptyCache();
    } catch (const std::exception& e) {
      // After a kernel fault every CUDA call fails; the run that caused it is already recorded as failed.
      spdlog::warn("could not release cached device memory: {}", e.what());
    }
  }
#endif
}

std::optional<std::string> lost_device_context(c10::Device device) {
  static std::optional<std::string> lost;  // single-threaded use: the benchmark loop
#ifdef QB_HAVE_CUDA
  if (!lost && device.is_cuda()) {
    cudaError_t e = cudaDeviceSynchronize();
    if (e != cudaSuccess) {
      (void)cudaGetLastError();  // clears an error that is not sticky (a failed launch's configuration, ...)
      e = cudaDeviceSynchronize();
    }
    if (e != cudaSuccess) {
      lost = fmt::format("a kernel fault ({}: {}) left this process's CUDA context unusable", cudaGetErrorName(e),
                         cudaGetErrorString(e));
    }
  }
#else
  (void)device;
#endif
  return lost;
}

DeviceMemory device_memory(c10::Device device) {
  DeviceMemory out;
#ifdef QB_HAVE_CUDA
  if (device.is_cuda()) {
    size_t free_bytes = 0, total_bytes = 0;
    QB_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    out.total_bytes = static_cast<int64_t>(total_bytes);
    out.used_bytes = static_cast<int64_t>(total_bytes - free_bytes);
  }
#endif
  return out;
}

DeviceMemorySampler::DeviceMemorySampler(c10::Device device, int interval_us)
    : device_(device), interval_us_(interval_us) {}

// Never throws: it runs while a failed run unwinds (a kernel fault leaves the context unusable, and stop()'s final
// reading would throw again, from a destructor: std::terminate, the whole sweep lost). The thread is joined either way.
DeviceMemorySampler::~DeviceMemorySampler() {
  running_ = false;
  if (thread_.joinable()) thread_.join();
}

void DeviceMemorySampler::start() {
  peak_ = device_memory(device_).used_bytes;
  samples_ = 0;
  if (!device_.is_cuda()) return;
  running_ = true;
  const int device_index = device_.index() < 0 ? 0 : device_.index();
  thread_ = std::thread([this, device_index] {
#ifdef QB_HAVE_CUDA
    cudaSetDevice(device_index);
    while (running_.load()) {
      size_t free_bytes = 0, total_bytes = 0;
      if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
        const int64_t used = static_cast<int64_t>(total_bytes - free_bytes);
        int64_t seen = peak_.load();
        while (used > seen && !peak_.compare_exchange_weak(seen, used)) {
        }
        ++samples_;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(interval_us_));
    }
#else
    (void)device_index;
#endif
  });
}

int64_t DeviceMemorySampler::stop() {
  running_ = false;
  if (thread_.joinable()) thread_.join();
  const int64_t now = device_memory(device_).used_bytes;
  return std::max(peak_.load(), now);
}

}  // namespace qb::bench
