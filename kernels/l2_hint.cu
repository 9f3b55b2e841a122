// The side-branch L2 prefetch (include/quantbench/kernels/l2_hint.h).
//
// Work split: the ranges are cut into pieces of kPieceBytes (a piece never crosses a range's end); thread i of the
// grid issues piece i. Small pieces spread the requests over many SMs' copy engines: one SM issuing a whole weight
// would be bound by its own request rate (QB_L2_HINT_PIECE_KB changes the size, for A/B runs).
#include <algorithm>

#include "l2_prefetch.cuh"
#include "quantbench/core/env_switch.h"
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/l2_hint.h"

namespace qb::kernels {
namespace {

constexpr int kMaxRanges = 8;
constexpr int kThreads = 64;

struct Ranges {
  const char* ptr[kMaxRanges];
  int64_t bytes[kMaxRanges];
  int64_t first_piece[kMaxRanges + 1];  // prefix sums of pieces per range
  int count;
  int64_t piece_bytes;
};

__global__ void __launch_bounds__(kThreads) l2_prefetch_ranges_kernel(Ranges r) {
  const int64_t piece = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (piece >= r.first_piece[r.count]) return;
  int k = 0;
  while (piece >= r.first_piece[k + 1]) ++k;
  const int64_t offset = (piece - r.first_piece[k]) * r.piece_bytes;
  l2_prefetch(r.ptr[k] + offset, std::min(r.piece_bytes, r.bytes[k] - offset));
}

int64_t piece_bytes() {
  static const int64_t bytes = int64_t{env_int("QB_L2_HINT_PIECE_KB", 16, 1)} * 1024;
  return bytes;
}

}  // namespace

L2Prefetcher::~L2Prefetcher() {
  // Destruction order at exit is not ours to choose; a failure here has nothing left to report to.
  if (fork_event_ != nullptr) cudaEventDestroy(fork_event_);
  if (join_event_ != nullptr) cudaEventDestroy(join_event_);
  if (side_ != nullptr) cudaStreamDestroy(side_);
}

void L2Prefetcher::fork(cudaStream_t stream, const std::vector<ByteRange>& ranges, int64_t max_bytes) {
  Ranges r{};
  r.piece_bytes = piece_bytes();
  int64_t left = max_bytes;
  for (const ByteRange& range : ranges) {
    if (r.count == kMaxRanges || left < 16) break;
    // 16-byte alignment and size, as cp.async.bulk.prefetch requires: trim the range inward.
    const auto address = reinterpret_cast<uintptr_t>(range.ptr);
    const uintptr_t begin = (address + 15) & ~uintptr_t{15};
    const int64_t bytes = std::min(left, (range.bytes - static_cast<int64_t>(begin - address)) & ~int64_t{15});
    if (range.ptr == nullptr || bytes < 16) continue;
    r.ptr[r.count] = reinterpret_cast<const char*>(begin);
    r.bytes[r.count] = bytes;
    r.first_piece[r.count + 1] = r.first_piece[r.count] + (bytes + r.piece_bytes - 1) / r.piece_bytes;
    left -= bytes;
    ++r.count;
  }
  if (r.count == 0) return;
  if (side_ == nullptr) {
    QB_CUDA_CHECK(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking));
    QB_CUDA_CHECK(cudaEventCreateWithFlags(&fork_event_, cudaEventDisableTiming));
    QB_CUDA_CHECK(cudaEventCreateWithFlags(&join_event_, cudaEventDisableTiming));
  }
  QB_CUDA_CHECK(cudaEventRecord(fork_event_, stream));
  QB_CUDA_CHECK(cudaStreamWaitEvent(side_, fork_event_, 0));
  const int64_t pieces = r.first_piece[r.count];
  l2_prefetch_ranges_kernel<<<static_cast<unsigned>((pieces + kThreads - 1) / kThreads), kThreads, 0, side_>>>(r);
  QB_CUDA_CHECK_LAUNCH();
  pending_ = true;
}

void L2Prefetcher::join(cudaStream_t stream) {
  if (!pending_) return;
  QB_CUDA_CHECK(cudaEventRecord(join_event_, side_));
  QB_CUDA_CHECK(cudaStreamWaitEvent(stream, join_event_, 0));
  pending_ = false;
}

}  // namespace qb::kernels
