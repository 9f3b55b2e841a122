// `quantbench env`: what this machine is (GPU, driver, clocks, CUDA, libtorch, build), and with
// --probe the copy bandwidth that sets the floor.
#include <memory>

#include "commands.h"
#include "quantbench/bench/bandwidth_probe.h"
#include "quantbench/bench/environment.h"
#include "quantbench/quant/format.h"

namespace qb::cli {

void add_env_command(CLI::App& app, Action& action, const std::string& command_line) {
  struct Flags {
    std::string device = "auto";
    bool probe = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("env", "print the environment as JSON");
  cmd->add_option("--device", flags->device, "auto | cpu | cuda")->capture_default_str();
  cmd->add_flag("--probe", flags->probe, "also measure copy bandwidth (CUDA)");
  cmd->callback([&action, flags, command_line] {
    action = [flags, command_line]() -> int {
      const c10::Device device = parse_device(flags->device);
      nlohmann::json env = bench::capture_environment(device, command_line);
      env["precisions"] = quant::format_names();
#ifdef QB_HAVE_CUDA
      env["build"] = "cuda";
#else
      env["build"] = "cpu-only";
#endif
      if (flags->probe && device.is_cuda()) {
        const auto probe = bench::probe_copy_bandwidth(device);
        env["copy_bandwidth"] = {{"gbps", probe.copy_gbps}, {"buffer_bytes", probe.buffer_bytes}, {"method", probe.method}};
      }
      write_output("-", env.dump(2) + "\n");
      return 0;
    };
  });
}

}  // namespace qb::cli
