// The environment block every result carries: the QB_* switches that change which kernels run are recorded
// with their values, other variables are not.
#include <gtest/gtest.h>

#include "quantbench/bench/environment.h"
#include "test_support.h"

namespace qb::bench {
namespace {

TEST(Environment, RecordsEveryQbSwitchAndNothingElse) {
  test::ScopedEnv wgmma("QB_Q4_WGMMA", "1");
  test::ScopedEnv other("QBX_NOT_A_SWITCH", "x");
  test::ScopedEnv empty("QB_EMPTY_SWITCH", "");
  const nlohmann::json env = capture_environment(c10::Device(c10::kCPU), "quantbench run --model m");
  ASSERT_TRUE(env.contains("switches"));
  const nlohmann::json& switches = env["switches"];
  EXPECT_EQ(switches.value("QB_Q4_WGMMA", "missing"), "1");
  EXPECT_EQ(switches.value("QB_EMPTY_SWITCH", "missing"), "");
  EXPECT_FALSE(switches.contains("QBX_NOT_A_SWITCH"));
  for (const auto& [name, value] : switches.items()) {
    EXPECT_EQ(name.rfind("QB_", 0), 0u) << name;
    EXPECT_TRUE(value.is_string()) << name;
  }
  EXPECT_EQ(env["command_line"], "quantbench run --model m");
  EXPECT_EQ(env["device"], "cpu");
}

TEST(Environment, SwitchesFollowTheProcessEnvironment) {
  const nlohmann::json before = qb_switches();
  EXPECT_FALSE(before.contains("QB_TEST_ONLY_SWITCH"));
  {
    test::ScopedEnv set("QB_TEST_ONLY_SWITCH", "on");
    EXPECT_EQ(qb_switches().value("QB_TEST_ONLY_SWITCH", "missing"), "on");
  }
  EXPECT_FALSE(qb_switches().contains("QB_TEST_ONLY_SWITCH"));
}

}  // namespace
}  // namespace qb::bench
