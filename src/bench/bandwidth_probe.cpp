#include "quantbench/bench/bandwidth_probe.h"

#include <ATen/ATen.h>

#include "quantbench/bench/stats.h"
#include "quantbench/bench/timeline.h"
#include "quantbench/core/error.h"

#ifdef QB_HAVE_CUDA
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include "quantbench/kernels/cuda_check.h"
#endif

namespace qb::bench {

BandwidthProbe probe_copy_bandwidth(c10::Device device, int64_t buffer_bytes, int repetitions) {
  BandwidthProbe probe;
#ifdef QB_HAVE_CUDA
  QB_CHECK(device.is_cuda(), kInvalidInput, "the bandwidth probe runs on a CUDA device");
  at::Tensor source, destination;
  while (!destination.defined()) {
    try {
      source = at::empty({buffer_bytes}, at::TensorOptions().dtype(at::kByte).device(device));
      destination = at::empty_like(source);
    } catch (const c10::OutOfMemoryError&) {
      source = at::Tensor();
      QB_CHECK(buffer_bytes > (int64_t(64) << 20), kOutOfMemory, "no room for the bandwidth probe's buffers");
      buffer_bytes /= 2;
    }
  }
  source.fill_(0x5a);  // not zeros: some paths run faster on zero pages
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  auto copy = [&] {
    QB_CUDA_CHECK(cudaMemcpyAsync(destination.data_ptr(), source.data_ptr(), buffer_bytes, cudaMemcpyDeviceToDevice, stream));
  };
  for (int i = 0; i < 3; ++i) copy();
  auto timeline = make_timeline(device);
  timeline->reserve(2 * repetitions);
  std::vector<double> times;
  for (int i = 0; i < repetitions; ++i) {
    timeline->clear();
    timeline->mark();
    copy();
    timeline->mark();
    times.push_back(timeline->intervals_ms().front());
  }
  probe.median_ms = summarize(times).median;
  probe.buffer_bytes = buffer_bytes;
  probe.repetitions = repetitions;
  probe.copy_gbps = 2.0 * static_cast<double>(buffer_bytes) / (probe.median_ms * 1e-3) / 1e9;
#else
  fail(ErrorKind::kUnsupported, "the bandwidth probe needs a CUDA build");
#endif
  return probe;
}

}  // namespace qb::bench
