// Marks on a timeline, read after the work is done. On CUDA each mark is an event recorded on the
// current stream, so the intervals are device time, read after cudaEventSynchronize; on the CPU a
// mark is the wall clock (CPU ops are synchronous).
#pragma once

#include <c10/core/Device.h>

#include <memory>
#include <vector>

namespace qb::bench {

class Timeline {
 public:
  virtual ~Timeline() = default;
  // Prepares room for `marks` marks (events are created once, outside any timed region).
  virtual void reserve(size_t marks) = 0;
  virtual void clear() = 0;
  virtual void mark() = 0;
  // Milliseconds between consecutive marks: [mark1 - mark0, mark2 - mark1, ...]. Synchronises.
  virtual std::vector<double> intervals_ms() = 0;
  virtual size_t size() const = 0;
  virtual const char* clock_name() const = 0;
};

std::unique_ptr<Timeline> make_timeline(c10::Device device);

}  // namespace qb::bench
