// The host-side 4-bit layout helpers (quantbench/kernels/q4_layout.h), on the CPU: the tile permutation round trip
// and the nested-absmax run the fused prefill kernel copies per step (every row's entry inside the run, the run
// inside the nested array, its length under the bound q4_tile_gemm_wgmma_supported checks).
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "quantbench/kernels/q4_layout.h"

namespace qb::kernels {
namespace {

TEST(Q4Layout, TilesRoundTripEveryByte) {
  std::mt19937 rng(5);
  for (const auto& [N, K] : std::vector<std::pair<int64_t, int64_t>>{{77, 320}, {16, 64}, {300, 1024}}) {
    std::vector<uint8_t> flat(static_cast<size_t>(q4_flat_bytes(N, K)));
    for (auto& b : flat) b = static_cast<uint8_t>(rng());
    std::vector<uint8_t> tiles(static_cast<size_t>(q4_tile_bytes(N, K)));
    q4_build_tiles(flat.data(), N, K, tiles.data());
    std::vector<uint8_t> back(flat.size());
    q4_unbuild_tiles(tiles.data(), N, K, back.data());
    EXPECT_EQ(back, flat) << N << "x" << K;
  }
}

TEST(Q4Layout, NestedRunHoldsEveryRowOfABlockAndStaysInTheArray) {
  std::mt19937 rng(6);
  for (int trial = 0; trial < 400; ++trial) {
    const int64_t N = 1 + static_cast<int64_t>(rng() % 3000);
    const int64_t units = 1 + static_cast<int64_t>(rng() % 600);  // K / blocksize
    const int64_t nested_entries = (N * units + 255) / 256;
    const int64_t u = static_cast<int64_t>(rng() % units);
    for (int64_t row0 = 0; row0 < N; row0 += 128) {
      const int64_t row_end = std::min(row0 + 128, N);
      const Q4NestedRun run = q4_nested_run(row0, row_end, units, u);
      ASSERT_EQ(run.first % 2, 0) << "16-byte aligned start";
      ASSERT_GE(run.first, 0);
      ASSERT_GE(run.count, 1);
      ASSERT_LE(run.first + run.count, nested_entries) << "N " << N << " units " << units << " u " << u;
      ASSERT_LE(run.count, q4_nested_run_bound(128, units));
      for (int64_t n = row0; n < row_end; ++n) {
        const int64_t entry = q4_nested_index(n, units, u);
        ASSERT_GE(entry, run.first);
        ASSERT_LT(entry, run.first + run.count);
        ASSERT_EQ(entry, (n * units + u) / 256);  // bitsandbytes' nested block of the flat absmax block
      }
    }
  }
}

TEST(Q4Layout, NestedRunBoundIsTight) {
  // The bound holds for any 128 consecutive rows (not only the kernel's block starts), and some window reaches
  // it: a bound that is never reached would hide a wrong formula.
  for (const int64_t units : {int64_t{56}, int64_t{1}, int64_t{296}}) {  // Qwen2-7B K = 3584, 64, 18944 at bs 64
    int64_t worst = 0;
    for (int64_t row0 = 0; row0 < 4000; ++row0)
      for (int64_t u = 0; u < units; ++u) worst = std::max(worst, q4_nested_run(row0, row0 + 128, units, u).count);
    EXPECT_EQ(worst, q4_nested_run_bound(128, units)) << "units " << units;
  }
}

}  // namespace
}  // namespace qb::kernels
