// The linear-layer profile of a run (bench/linear_profile.h), on the CPU (wall clock): every role of the
// model's linears is there with the right call counts, its time fits inside the step it belongs to, and the
// profiled run computes exactly what an unprofiled one does. The same code times with CUDA events on a GPU.
#include <gtest/gtest.h>

#include <map>

#include "quantbench/bench/benchmark.h"
#include "test_support.h"

namespace qb::bench {
namespace {

BenchmarkPlan plan_for(const std::string& fixture, bool profile) {
  BenchmarkPlan plan;
  plan.model = test::fixtures_dir() + "/models/" + fixture;
  plan.precisions = {"fp32"};
  plan.batches = {2};
  plan.prompt_lens = {5};
  plan.gen_len = 6;
  plan.warmup = 1;
  plan.repetitions = 2;
  plan.profile_linears = profile;
  return plan;
}

TEST(LinearProfile, EveryRoleCountedAndTimedInsideTheStep) {
  // llama: separate head; gpt2: head tied to the embedding (wrapped too).
  const std::map<std::string, std::vector<std::string>> roles = {
      {"llama", {"self_attn.q_proj+k_proj+v_proj", "self_attn.o_proj", "mlp.gate_proj+up_proj", "mlp.down_proj",
                 "lm_head"}},
      {"gpt2", {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj", "lm_head"}}};
  for (const auto& [fixture, expected_roles] : roles) {
    SCOPED_TRACE(fixture);
    BenchmarkSession session(c10::Device(c10::kCPU), "test", false);
    const auto profiled = session.run(plan_for(fixture, true));
    const auto plain = session.run(plan_for(fixture, false));
    ASSERT_EQ(profiled.size(), 1u);
    ASSERT_EQ(profiled[0]["status"], "ok") << profiled[0].dump(1);
    EXPECT_EQ(profiled[0]["generated_tokens"], plain[0]["generated_tokens"]);  // the wrapper changes nothing
    EXPECT_FALSE(plain[0].contains("linear_profile"));

    const nlohmann::json& p = profiled[0]["linear_profile"];
    const int64_t steps = p["decode_steps"].get<int64_t>();
    EXPECT_EQ(steps, 2 * (6 - 1));  // 2 repetitions x (gen_len - 1) decode steps; warm-up not counted
    std::map<std::string, int64_t> layers_of;
    for (const auto& role : p["roles"]) {
      const std::string name = role["role"];
      const int64_t layers = role["layers"];
      layers_of[name] = layers;
      EXPECT_EQ(role["decode_calls"].get<int64_t>(), layers * steps) << name;
      EXPECT_EQ(role["prefill_calls"].get<int64_t>(), layers * 2) << name;  // one prefill per repetition
      EXPECT_GT(role["decode_ms"].get<double>(), 0) << name;
      EXPECT_GT(role["bytes_per_step"].get<int64_t>(), 0) << name;
    }
    for (const auto& name : expected_roles) EXPECT_EQ(layers_of.count(name), 1u) << name;
    EXPECT_EQ(layers_of["lm_head"], 1);
    EXPECT_EQ(layers_of.size(), expected_roles.size());
    for (const auto& name : expected_roles) {
      if (name != "lm_head") EXPECT_EQ(layers_of[name], 2) << name;  // both decoder layers
    }
    const double linear = p["linear_decode_ms_per_step"].get<double>();
    const double step = p["decode_step_ms_mean"].get<double>();
    EXPECT_GT(linear, 0);
    EXPECT_LT(linear, step);
    EXPECT_NEAR(p["other_decode_ms_per_step"].get<double>(), step - linear, 1e-9);
  }
}

}  // namespace
}  // namespace qb::bench
