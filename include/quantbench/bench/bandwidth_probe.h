// The copy-bandwidth probe that sets every result's floor: a large device-to-device copy,
// bytes read + bytes written over the median time of repeated copies (CUDA events). Buffers are
// large enough (default 1 GiB each) that the 50 MB L2 cannot hold them.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>

namespace qb::bench {

struct BandwidthProbe {
  double copy_gbps = 0;       // (read + write) bytes / median time, 1e9 bytes per second
  double median_ms = 0;
  int64_t buffer_bytes = 0;
  int repetitions = 0;
  const char* method = "cudaMemcpyAsync device-to-device, bytes read + written / median of CUDA-event times";
};

// Falls back to smaller buffers when the device has no room for two of the requested size.
BandwidthProbe probe_copy_bandwidth(c10::Device device, int64_t buffer_bytes = int64_t(1) << 30, int repetitions = 20);

}  // namespace qb::bench
