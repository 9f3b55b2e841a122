// The kernel trace's attribution (bench/kernel_trace.h): exclusive times and gaps sum to the span; overlapped
// starts (programmatic dependent launch) are charged to the kernel that was already running.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "quantbench/bench/kernel_trace.h"
#include "quantbench/cli/app.h"
#include "test_support.h"

#ifdef QB_HAVE_CUDA
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include "quantbench/kernels/timing_probe.h"
#endif

namespace {

using qb::bench::KernelSpan;

const nlohmann::json& kernel(const nlohmann::json& trace, const std::string& name) {
  for (const auto& k : trace["kernels"]) {
    if (k["name"] == name) return k;
  }
  static const nlohmann::json none;
  ADD_FAILURE() << "no kernel " << name;
  return none;
}

TEST(KernelTrace, ExclusiveTimesAndGapsSumToTheSpan) {
  // Two steps of graph kernels (graph 7) after a prefill kernel outside the graph, which is left out.
  // step 1: norm [1000, 1010], gemv [1005, 1030] (starts under the norm), attn [1040, 1050] (10 ns gap)
  // step 2: norm [1050, 1060], gemv [1052, 1070], attn [1068, 1069] (ends inside gemv: exclusive 0)
  const std::vector<KernelSpan> spans = {
      {"prefill", 0, 900, 0},      {"norm", 1000, 1010, 7}, {"gemv", 1005, 1030, 7}, {"attn", 1040, 1050, 7},
      {"norm", 1050, 1060, 7},     {"gemv", 1052, 1070, 7}, {"attn", 1068, 1069, 7},
  };
  const nlohmann::json t = qb::bench::summarize_kernel_trace(spans, 2);
  EXPECT_DOUBLE_EQ(t["span_us_per_step"].get<double>(), 70e-3 / 2);
  EXPECT_DOUBLE_EQ(t["idle_us_per_step"].get<double>(), 10e-3 / 2);
  EXPECT_DOUBLE_EQ(kernel(t, "norm")["exclusive_us_per_step"].get<double>(), (10 + 10) * 1e-3 / 2);
  EXPECT_DOUBLE_EQ(kernel(t, "gemv")["exclusive_us_per_step"].get<double>(), (20 + 10) * 1e-3 / 2);
  EXPECT_DOUBLE_EQ(kernel(t, "attn")["exclusive_us_per_step"].get<double>(), (10 + 0) * 1e-3 / 2);
  EXPECT_DOUBLE_EQ(kernel(t, "gemv")["own_us_per_step"].get<double>(), (25 + 18) * 1e-3 / 2);
  EXPECT_DOUBLE_EQ(kernel(t, "gemv")["calls_per_step"].get<double>(), 1.0);
  double total = t["idle_us_per_step"].get<double>();
  for (const auto& k : t["kernels"]) total += k["exclusive_us_per_step"].get<double>();
  EXPECT_NEAR(total, t["span_us_per_step"].get<double>(), 1e-12);
  EXPECT_EQ(t["kernels"][0]["name"], "gemv");  // largest exclusive time first
  EXPECT_EQ(t["kernels"].size(), 3u);          // the prefill kernel outside the graph is not a decode kernel
}

TEST(KernelTrace, WithoutGraphsEveryKernelCounts) {
  const std::vector<KernelSpan> spans = {{"a", 0, 10, 0}, {"b", 20, 30, 0}};
  const nlohmann::json t = qb::bench::summarize_kernel_trace(spans, 1);
  EXPECT_EQ(t["kernels"].size(), 2u);
  EXPECT_DOUBLE_EQ(t["idle_us_per_step"].get<double>(), 10e-3);
}

// On the CPU there are no kernels to trace: the run is refused before any model loads, with an error that says why.
TEST(KernelTrace, ACpuRunIsRefusedUpFront) {
  std::vector<std::string> args = {"quantbench", "run", "--model", "synthetic:gpt2", "--device", "cpu", "--kernel-trace"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  testing::internal::CaptureStderr();
  const int status = qb::cli::run_app(static_cast<int>(argv.size()), argv.data());
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(status, 0);
  EXPECT_NE(err.find("--kernel-trace"), std::string::npos) << err;
  EXPECT_NE(err.find("CUDA device"), std::string::npos) << err;
}

#ifdef QB_HAVE_CUDA
// Two kernels of known duration (20 and 10 us on the device clock) captured in a CUDA graph and replayed three times:
// the trace finds every replayed kernel inside the graph, charges each at least its spin, and leaves out the
// kernel launched outside the graph.
TEST(KernelTraceGpu, SeesTheKernelsInsideAGraphReplay) {
  QB_REQUIRE_CUDA();
  if (!qb::bench::kernel_trace_available()) GTEST_SKIP() << "this build has no CUPTI";
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  qb::kernels::launch_spin(20000, stream);
  qb::kernels::launch_spin(10000, stream);
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);  // warm-up, untraced
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  std::vector<KernelSpan> spans;
  {
    qb::bench::KernelTrace trace;
    qb::kernels::launch_spin(5000, stream);  // outside the graph
    for (int i = 0; i < 3; ++i) ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    spans = trace.stop();
  }
  int in_graph = 0, outside = 0;
  for (const KernelSpan& s : spans) {
    if (s.name.find("spin_kernel") == std::string::npos) continue;
    (s.graph_id != 0 ? in_graph : outside) += 1;
    EXPECT_GE(s.end - s.start, s.graph_id != 0 ? 10000u : 5000u) << s.name;
  }
  EXPECT_EQ(in_graph, 6);
  EXPECT_EQ(outside, 1);
  const nlohmann::json t = qb::bench::summarize_kernel_trace(spans, 3);
  ASSERT_EQ(t["kernels"].size(), 1u) << t.dump();  // both spins: one name, one grid
  EXPECT_DOUBLE_EQ(t["kernels"][0]["calls_per_step"].get<double>(), 2.0);
  EXPECT_GE(t["kernels"][0]["exclusive_us_per_step"].get<double>(), 30.0);
  EXPECT_GE(t["span_us_per_step"].get<double>(), 30.0);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}
#endif

}  // namespace

