#include "quantbench/bench/kernel_trace.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>

#include "quantbench/core/error.h"

#if defined(QB_HAVE_CUDA) && defined(QB_HAVE_CUPTI)
#include <cuda_runtime_api.h>
#include <cupti.h>
#include <cxxabi.h>
#endif

namespace qb::bench {

#if defined(QB_HAVE_CUDA) && defined(QB_HAVE_CUPTI)
namespace {

// CUPTI hands records back in buffers on its own thread; they land here.
std::mutex g_mutex;
std::vector<KernelSpan> g_spans;
bool g_registered = false;

std::string short_name(const char* mangled) {
  int status = 0;
  char* demangled = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string name = status == 0 && demangled != nullptr ? demangled : mangled;
  std::free(demangled);
  // "void qb::kernels::(anonymous namespace)::f<T, 1>(args)" -> "qb::kernels::f<T, 1>"
  if (name.rfind("void ", 0) == 0) name.erase(0, 5);
  for (const std::string anon : {"(anonymous namespace)::", "<unnamed>::"}) {
    for (size_t at = name.find(anon); at != std::string::npos; at = name.find(anon)) name.erase(at, anon.size());
  }
  int depth = 0;
  for (size_t i = 0; i < name.size(); ++i) {
    if (name[i] == '<') ++depth;
    if (name[i] == '>') --depth;
    if (name[i] == '(' && depth == 0) return name.substr(0, i);
  }
  return name;
}

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  constexpr size_t kBytes = size_t{8} << 20;
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBytes));
  *size = *buffer != nullptr ? kBytes : 0;
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  CUpti_Activity* record = nullptr;
  std::vector<KernelSpan> spans;
  while (cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
    if (record->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) continue;
    const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
    const int64_t blocks = int64_t{k->gridX} * k->gridY * k->gridZ;
    spans.push_back({short_name(k->name) + " [grid " + std::to_string(blocks) + "]", k->start, k->end, k->graphId});
  }
  std::free(buffer);
  std::lock_guard<std::mutex> lock(g_mutex);
  g_spans.insert(g_spans.end(), spans.begin(), spans.end());
}

void check(CUptiResult result, const char* what) {
  if (result == CUPTI_SUCCESS) return;
  const char* text = nullptr;
  cuptiGetResultString(result, &text);
  fail(ErrorKind::kDevice, "kernel trace: {} failed: {}", what, text != nullptr ? text : "unknown CUPTI error");
}

}  // namespace

bool kernel_trace_available() { return true; }

KernelTrace::KernelTrace() {
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_spans.clear();
  }
  if (!g_registered) {
    check(cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed), "cuptiActivityRegisterCallbacks");
    g_registered = true;
  }
  check(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "cuptiActivityEnable");
  active_ = true;
}

KernelTrace::~KernelTrace() {
  if (active_) {
    cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
    cuptiActivityFlushAll(1);
  }
}

std::vector<KernelSpan> KernelTrace::stop() {
  QB_CHECK(active_, kInternal, "kernel trace: stop() without a running trace");
  const cudaError_t sync = cudaDeviceSynchronize();
  QB_CHECK(sync == cudaSuccess, kDevice, "kernel trace: cudaDeviceSynchronize failed: {}", cudaGetErrorString(sync));
  check(cuptiActivityFlushAll(1), "cuptiActivityFlushAll");
  check(cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "cuptiActivityDisable");
  active_ = false;
  std::vector<KernelSpan> spans;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    spans.swap(g_spans);
  }
  std::stable_sort(spans.begin(), spans.end(),
                   [](const KernelSpan& a, const KernelSpan& b) { return a.start < b.start; });
  return spans;
}

#else

bool kernel_trace_available() { return false; }
KernelTrace::KernelTrace() {
  fail(ErrorKind::kUnsupported, "kernel trace: this build has no CUPTI (a CUDA build with the toolkit's libcupti)");
}
KernelTrace::~KernelTrace() = default;
std::vector<KernelSpan> KernelTrace::stop() { return {}; }

#endif

nlohmann::json summarize_kernel_trace(const std::vector<KernelSpan>& spans, int64_t steps) {
  const bool graphs = std::any_of(spans.begin(), spans.end(), [](const KernelSpan& s) { return s.graph_id != 0; });
  struct Sum {
    double exclusive_ns = 0, own_ns = 0;
    int64_t calls = 0;
  };
  std::map<std::string, Sum> by_name;
  double idle_ns = 0, span_ns = 0;
  uint64_t first = 0, latest_end = 0;
  bool any = false;
  for (const KernelSpan& s : spans) {
    if (graphs && s.graph_id == 0) continue;
    if (!any) {
      first = s.start;
      latest_end = s.start;
      any = true;
    }
    if (s.start > latest_end) idle_ns += static_cast<double>(s.start - latest_end);
    const uint64_t from = std::max(s.start, latest_end);
    Sum& sum = by_name[s.name];
    sum.exclusive_ns += s.end > from ? static_cast<double>(s.end - from) : 0.0;
    sum.own_ns += static_cast<double>(s.end - s.start);
    ++sum.calls;
    latest_end = std::max(latest_end, s.end);
  }
  if (any) span_ns = static_cast<double>(latest_end - first);
  const double per = steps > 0 ? 1.0 / static_cast<double>(steps) : 0.0;
  std::vector<std::pair<std::string, Sum>> sorted(by_name.begin(), by_name.end());
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.second.exclusive_ns > b.second.exclusive_ns; });
  nlohmann::json kernels = nlohmann::json::array();
  for (const auto& [name, sum] : sorted) {
    kernels.push_back({{"name", name},
                       {"calls_per_step", static_cast<double>(sum.calls) * per},
                       {"exclusive_us_per_step", sum.exclusive_ns * per / 1e3},
                       {"own_us_per_step", sum.own_ns * per / 1e3},
                       {"mean_own_us", sum.calls > 0 ? sum.own_ns / static_cast<double>(sum.calls) / 1e3 : 0.0}});
  }
  return {{"source", graphs ? "CUPTI kernel records of the CUDA graph replays" : "CUPTI kernel records (no graphs)"},
          {"steps", steps},
          {"span_us_per_step", span_ns * per / 1e3},
          {"idle_us_per_step", idle_ns * per / 1e3},
          {"method", "exclusive = end - max(start, latest end before it), in start order; idle = gaps"},
          {"kernels", kernels}};
}

}  // namespace qb::bench
