// Where a decode step's device time goes, kernel by kernel, inside the CUDA graph: CUPTI's activity API records
// every kernel a graph replay runs (start and end on the device clock), which CUDA events around the replay cannot
// see. Used by `quantbench run --kernel-trace` on one extra, untimed generate call after the timed ones.
//
// Attribution. Decode kernels overlap (programmatic dependent launch starts a kernel during its predecessor's tail,
// kernels/pdl.cuh), so a kernel's own duration counts the time it waits for its predecessor. Each kernel is charged
// its exclusive time instead: how far it moves the end of the chain, end - max(start, latest end before it), taken in
// start order; idle time is the gaps where no kernel runs. Exclusive times plus gaps sum to the span exactly.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace qb::bench {

struct KernelSpan {
  std::string name;     // demangled, arguments cut, " [grid N]" appended (one layer shape from another)
  uint64_t start = 0;   // ns, device clock
  uint64_t end = 0;
  uint32_t graph_id = 0;  // 0: launched outside a CUDA graph
};

// Whether this build can trace kernels (CUDA with CUPTI).
bool kernel_trace_available();

// Records every kernel run from construction to stop(). One at a time per process.
class KernelTrace {
 public:
  KernelTrace();
  ~KernelTrace();
  KernelTrace(const KernelTrace&) = delete;
  KernelTrace& operator=(const KernelTrace&) = delete;
  // Synchronizes the device, then stops recording and returns the kernels in start order.
  std::vector<KernelSpan> stop();

 private:
  bool active_ = false;
};

// The decode steps' kernels (those of graph replays when there are any, else every kernel), summed per kernel name
// and divided by `steps`: exclusive and own time per step, calls per step,
// the span and the idle time per step. Kernels sorted by exclusive time, largest first.
nlohmann::json summarize_kernel_trace(const std::vector<KernelSpan>& spans, int64_t steps);

}  // namespace qb::bench
