// Memory, measured two ways, each named in the result:
// - libtorch's caching allocator: bytes allocated now, peak allocated and peak reserved since the
//   last reset (what tensors use, and what the allocator holds from the driver);
// - the device as a whole: a sampling thread reads cudaMemGetInfo every `interval` and keeps the
//   peak of (total - free), which also sees cuBLAS workspaces, CUDA graphs, the context itself.
#pragma once

#include <c10/core/Device.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>

namespace qb::bench {

struct AllocatorStats {
  int64_t allocated_bytes = 0;
  int64_t peak_allocated_bytes = 0;
  int64_t reserved_bytes = 0;
  int64_t peak_reserved_bytes = 0;
};

// Zeros on the CPU (no allocator statistics there).
AllocatorStats allocator_stats(c10::Device device);
void reset_allocator_peaks(c10::Device device);
// Frees libtorch's cuBLAS workspaces and the caching allocator's free blocks; between runs only (no live
// CUDA graph may refer to a workspace). Best effort, never throws: it also runs after a failed run, when the
// device may be unusable.
void release_cached_memory(c10::Device device);

// Why the process can no longer use the GPU, once a kernel fault (illegal address or instruction, trap, ...) has
// left its CUDA context unusable: every later CUDA call fails with that error, whatever it is asked. Checked after
// a failed run; the answer is remembered for the process (the context is the process's). Nothing on the CPU.
std::optional<std::string> lost_device_context(c10::Device device);

struct DeviceMemory {
  int64_t total_bytes = 0;
  int64_t used_bytes = 0;
};
DeviceMemory device_memory(c10::Device device);

class DeviceMemorySampler {
 public:
  explicit DeviceMemorySampler(c10::Device device, int interval_us = 500);
  ~DeviceMemorySampler();
  void start();               // resets the peak to the current use
  int64_t stop();             // returns the peak of (total - free) seen since start
  int64_t samples() const { return samples_.load(); }

 private:
  c10::Device device_;
  int interval_us_;
  std::atomic<bool> running_{false};
  std::atomic<int64_t> peak_{0};
  std::atomic<int64_t> samples_{0};
  std::thread thread_;
};

}  // namespace qb::bench
