#include "quantbench/bench/environment.h"

#include "quantbench/core/build_info.h"

#include <dlfcn.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <ATen/ATen.h>
#include <torch/version.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <thread>

#ifdef QB_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace qb::bench {
namespace {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

#ifdef QB_HAVE_CUDA
// NVML through dlopen: the binary must start on machines without the NVIDIA driver, and the
// toolkit here ships no nvml.h. The few declarations below are NVML's stable C ABI.
using nvmlReturn_t = int;
using nvmlDevice_t = struct nvmlDevice_st*;
enum nvmlClockType_t { NVML_CLOCK_GRAPHICS = 0, NVML_CLOCK_SM = 1, NVML_CLOCK_MEM = 2 };
constexpr nvmlReturn_t NVML_SUCCESS = 0;

nlohmann::json nvml_readings(int device_index) {
  nlohmann::json out = {{"available", false}};
  void* library = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) return out;
  auto symbol = [library](const char* name) { return dlsym(library, name); };
  auto init = reinterpret_cast<nvmlReturn_t (*)()>(symbol("nvmlInit_v2"));
  auto get_handle = reinterpret_cast<nvmlReturn_t (*)(unsigned, nvmlDevice_t*)>(symbol("nvmlDeviceGetHandleByIndex_v2"));
  auto clock = reinterpret_cast<nvmlReturn_t (*)(nvmlDevice_t, nvmlClockType_t, unsigned*)>(symbol("nvmlDeviceGetClockInfo"));
  auto max_clock = reinterpret_cast<nvmlReturn_t (*)(nvmlDevice_t, nvmlClockType_t, unsigned*)>(symbol("nvmlDeviceGetMaxClockInfo"));
  auto power_limit = reinterpret_cast<nvmlReturn_t (*)(nvmlDevice_t, unsigned*)>(symbol("nvmlDeviceGetPowerManagementLimit"));
  auto driver = reinterpret_cast<nvmlReturn_t (*)(char*, unsigned)>(symbol("nvmlSystemGetDriverVersion"));
  auto shutdown = reinterpret_cast<nvmlReturn_t (*)()>(symbol("nvmlShutdown"));
  if (init != nullptr && init() == NVML_SUCCESS) {
    nvmlDevice_t handle;
    if (get_handle != nullptr && get_handle(static_cast<unsigned>(device_index), &handle) == NVML_SUCCESS) {
      out["available"] = true;
      unsigned value = 0;
      if (clock != nullptr && clock(handle, NVML_CLOCK_SM, &value) == NVML_SUCCESS) out["sm_clock_mhz"] = value;
      if (clock != nullptr && clock(handle, NVML_CLOCK_MEM, &value) == NVML_SUCCESS) out["memory_clock_mhz"] = value;
      if (max_clock != nullptr && max_clock(handle, NVML_CLOCK_SM, &value) == NVML_SUCCESS) out["max_sm_clock_mhz"] = value;
      if (power_limit != nullptr && power_limit(handle, &value) == NVML_SUCCESS) out["power_limit_w"] = value / 1000.0;
    }
    char version[96] = {0};
    if (driver != nullptr && driver(version, sizeof(version)) == NVML_SUCCESS) out["driver_version"] = version;
    if (shutdown != nullptr) shutdown();
  }
  dlclose(library);
  return out;
}
#endif

}  // namespace

std::string utc_timestamp() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

// Every QB_* variable of the process (name -> value): the kernels' switches (QB_PDL, QB_Q4_WGMMA,
// QB_ATTENTION_PREFETCH, ...) change what runs, so a result names the ones that were set.
nlohmann::json qb_switches() {
  nlohmann::json out = nlohmann::json::object();
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string text(*entry);
    const size_t eq = text.find('=');
    if (text.rfind("QB_", 0) == 0 && eq != std::string::npos) out[text.substr(0, eq)] = text.substr(eq + 1);
  }
  return out;
}

nlohmann::json capture_environment(c10::Device device, const std::string& command_line) {
  struct utsname uts {};
  uname(&uts);
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  nlohmann::json env = {
      {"quantbench_version", QB_VERSION},
      {"git_commit", build_git_commit()},
      {"libtorch_version", TORCH_VERSION},
      {"command_line", command_line},
      {"time_utc", utc_timestamp()},
      {"host", host},
      {"os", std::string(uts.sysname) + " " + uts.release},
      {"cpu", cpu_model()},
      {"cpu_threads", std::thread::hardware_concurrency()},
      {"device", device.is_cuda() ? "cuda" : "cpu"},
      {"switches", qb_switches()},
  };
#ifdef QB_HAVE_CUDA
  if (device.is_cuda()) {
    const int index = device.index() < 0 ? 0 : device.index();
    cudaDeviceProp props{};
    if (cudaGetDeviceProperties(&props, index) == cudaSuccess) {
      env["gpu"] = {{"name", props.name},
                    {"sm_count", props.multiProcessorCount},
                    {"compute_capability", std::to_string(props.major) + "." + std::to_string(props.minor)},
                    {"memory_bytes", static_cast<int64_t>(props.totalGlobalMem)},
                    {"l2_bytes", props.l2CacheSize}};
    }
    int runtime = 0, driver = 0;
    cudaRuntimeGetVersion(&runtime);
    cudaDriverGetVersion(&driver);
    env["cuda_runtime_version"] = std::to_string(runtime / 1000) + "." + std::to_string((runtime % 1000) / 10);
    env["cuda_driver_api_version"] = std::to_string(driver / 1000) + "." + std::to_string((driver % 1000) / 10);
    env["nvml"] = nvml_readings(index);
  }
#endif
  return env;
}

}  // namespace qb::bench
