// Statistics against hand-computed values (numpy's linear-interpolation percentiles).
#include <gtest/gtest.h>

#include "quantbench/bench/stats.h"

namespace qb::bench {
namespace {

TEST(Stats, SummaryOfASmallSample) {
  const Summary s = summarize({4, 1, 3, 2, 10});
  EXPECT_EQ(s.count, 5u);
  EXPECT_DOUBLE_EQ(s.min, 1);
  EXPECT_DOUBLE_EQ(s.max, 10);
  EXPECT_DOUBLE_EQ(s.mean, 4);
  EXPECT_DOUBLE_EQ(s.median, 3);
  // numpy.percentile([1,2,3,4,10], 90) = 4 + 0.6 * 6 = 7.6; p99 = 4 + 0.96 * 6 = 9.76
  EXPECT_NEAR(s.p90, 7.6, 1e-12);
  EXPECT_NEAR(s.p99, 9.76, 1e-12);
  // sample stddev: sqrt((9 + 4 + 1 + 0 + 36) / 4) = sqrt(12.5)
  EXPECT_NEAR(s.stddev, std::sqrt(12.5), 1e-12);
}

TEST(Stats, EvenCountMedianAndDegenerateSamples) {
  EXPECT_DOUBLE_EQ(summarize({1, 2, 3, 4}).median, 2.5);
  const Summary one = summarize({7});
  EXPECT_DOUBLE_EQ(one.median, 7);
  EXPECT_DOUBLE_EQ(one.p99, 7);
  EXPECT_DOUBLE_EQ(one.stddev, 0);
  EXPECT_EQ(summarize({}).count, 0u);
}

TEST(Stats, JsonRoundTrip) {
  const Summary s = summarize({1.5, 2.5, 9.0});
  const Summary back = summary_from_json(to_json(s));
  EXPECT_DOUBLE_EQ(back.median, s.median);
  EXPECT_DOUBLE_EQ(back.p90, s.p90);
  EXPECT_DOUBLE_EQ(back.stddev, s.stddev);
  EXPECT_EQ(back.count, s.count);
}

}  // namespace
}  // namespace qb::bench
