// The QB_* switch parsers (include/quantbench/core/env_switch.h): every switch reads its variable through them.
#include <gtest/gtest.h>

#include <cstdlib>

#include "quantbench/core/env_switch.h"

namespace {

constexpr const char* kName = "QB_TEST_ENV_SWITCH";

TEST(EnvSwitch, ParsesEachFormTheSameWay) {
  unsetenv(kName);
  EXPECT_FALSE(qb::env_equals(kName, "1"));
  EXPECT_TRUE(qb::env_on_unless_zero(kName));
  EXPECT_TRUE(qb::env_unset_or(kName, "auto"));
  EXPECT_EQ(qb::env_int(kName, 7), 7);

  setenv(kName, "0", 1);
  EXPECT_FALSE(qb::env_on_unless_zero(kName));
  EXPECT_FALSE(qb::env_unset_or(kName, "auto"));
  EXPECT_EQ(qb::env_int(kName, 7), 0);
  EXPECT_EQ(qb::env_int(kName, 7, 1), 7);  // below the minimum: the fallback

  setenv(kName, "auto", 1);
  EXPECT_TRUE(qb::env_unset_or(kName, "auto"));
  EXPECT_TRUE(qb::env_on_unless_zero(kName));
  EXPECT_EQ(qb::env_int(kName, 7), 7);  // not a number

  setenv(kName, "12", 1);
  EXPECT_TRUE(qb::env_equals(kName, "12"));
  EXPECT_FALSE(qb::env_equals(kName, "1"));  // whole-string match, not a prefix
  EXPECT_EQ(qb::env_int(kName, 7, 1), 12);

  setenv(kName, "4x", 1);
  EXPECT_EQ(qb::env_int(kName, 7), 7);  // trailing garbage
  setenv(kName, "", 1);
  EXPECT_EQ(qb::env_int(kName, 7), 7);
  EXPECT_TRUE(qb::env_on_unless_zero(kName));
  setenv(kName, "99999999999", 1);
  EXPECT_EQ(qb::env_int(kName, 7), 7);  // out of int's range
  unsetenv(kName);
}

}  // namespace
