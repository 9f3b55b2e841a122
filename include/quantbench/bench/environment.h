// What a result was measured on: GPU (name, SMs, memory, driver, CUDA runtime, clocks and power
// limit through NVML, loaded at run time so CPU-only machines need no NVIDIA library), CPU, OS,
// libtorch, quantbench version and commit, the command line, the time, and every QB_* environment variable
// (the kernels' A/B switches) under "switches".
#pragma once

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include <string>

namespace qb::bench {

nlohmann::json capture_environment(c10::Device device, const std::string& command_line);
std::string utc_timestamp();  // ISO 8601, seconds
nlohmann::json qb_switches();  // {"QB_NAME": "value"} for every QB_* variable set in this process

}  // namespace qb::bench
