// Asking L2 for bytes a later kernel will read, on a side branch of the stream, so that the copy engine fills L2
// while the main chain runs kernels that leave DRAM idle (norms, decode attention, a latency-bound small GEMV).
//
// Why: at batch 1 a decode step is a chain of short kernels; the small GEMVs (qkv, o) run at ~30-60% of copy
// bandwidth because their first bytes arrive a DRAM latency after the kernel may start, while the kernels before
// them (attention, norms) read almost nothing from DRAM. Their weights are constant, so they can be asked for
// early, with no ordering against the chain at all.
//
// How: fork() records an event on `stream`, the side stream waits on it and runs one small kernel of
// cp.async.bulk.prefetch.L2 instructions (no registers, no shared memory, nothing to wait for); join() makes
// `stream` wait on the side stream, once, before a captured graph ends. A hint: results never depend on it.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

namespace qb::kernels {

struct ByteRange {
  const void* ptr;
  int64_t bytes;
};

class L2Prefetcher {
 public:
  L2Prefetcher() = default;
  ~L2Prefetcher();
  L2Prefetcher(const L2Prefetcher&) = delete;
  L2Prefetcher& operator=(const L2Prefetcher&) = delete;

  // Asks L2 for `ranges` (at most `max_bytes` of them, first bytes first) once everything enqueued on `stream` so
  // far has completed, without delaying what is enqueued on `stream` after this call.
  void fork(cudaStream_t stream, const std::vector<ByteRange>& ranges, int64_t max_bytes);
  // Makes `stream` wait for every fork since the last join (no-op when there was none).
  void join(cudaStream_t stream);

 private:
  cudaStream_t side_ = nullptr;
  cudaEvent_t fork_event_ = nullptr;
  cudaEvent_t join_event_ = nullptr;
  bool pending_ = false;
};

}  // namespace qb::kernels
