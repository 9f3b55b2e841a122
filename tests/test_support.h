// Shared helpers for the tests: where data lives, temp dirs, GPU skipping, error comparison.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <ftw.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include "quantbench/quant/format.h"

namespace qb::test {

// ../shared/data beside the checkout (CI has it too), or $QB_SHARED_DATA (the GPU machine).
inline std::string shared_data_dir() {
  const char* env = std::getenv("QB_SHARED_DATA");
  if (env != nullptr && *env != '\0') return env;
  return (std::filesystem::path(QB_SOURCE_DIR).parent_path() / "shared" / "data").string();
}

inline std::string fixtures_dir() { return (std::filesystem::path(QB_SOURCE_DIR) / "tests" / "fixtures").string(); }

// A fresh directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "quantbench-test-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data()) != nullptr ? pattern : std::string();
  }
  // nftw, not std::filesystem::remove_all: libtorch.so exports its own copy of that symbol, which
  // interposes on libstdc++'s and crashes (seen with torch 2.11 wheels).
  ~TempDir() {
    if (path_.empty()) return;
    ::nftw(path_.c_str(), [](const char* p, const struct stat*, int, struct FTW*) { return std::remove(p); }, 16,
           FTW_DEPTH | FTW_PHYS);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return (std::filesystem::path(path_) / name).string(); }

 private:
  std::string path_;
};

// Sets an environment variable for the scope of a test (restores or unsets it after).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    const char* old = std::getenv(name);
    if (old != nullptr) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_.has_value()) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// ||out - ref|| / ||ref|| in float64.
inline double relative_error(const at::Tensor& out, const at::Tensor& ref) {
  const at::Tensor o = out.to(at::kCPU, at::kDouble);
  const at::Tensor r = ref.to(at::kCPU, at::kDouble);
  const double denom = r.norm().item<double>();
  const double num = (o - r).norm().item<double>();
  return denom == 0.0 ? num : num / denom;
}

bool cuda_available();  // defined in test_support.cpp

// `text` in single quotes, for a shell command line (the tests' paths hold no quote).
inline std::string quoted(const std::string& text) { return "'" + text + "'"; }

// Options for a layer on `device` computing in `act`; `block` is both the nf4 / fp4 blocksize and the awq group.
inline quant::FormatOptions format_options(c10::Device device, at::ScalarType act, bool double_quant, int64_t block) {
  quant::FormatOptions o;
  o.device = device;
  o.activation_dtype = act;
  o.double_quant = double_quant;
  o.blocksize = o.group_size = block;
  return o;
}

}  // namespace qb::test

// Skips the test, printing why, when no CUDA device is present (CI); runs it on the GPU machine.
#define QB_REQUIRE_CUDA()                                                                   \
  do {                                                                                      \
    if (!::qb::test::cuda_available()) GTEST_SKIP() << "no CUDA device on this machine: GPU test skipped"; \
  } while (0)

#ifdef QB_HAVE_CUDA
#include "quantbench/kernels/device_limits.h"
// QB_REQUIRE_CUDA, then skips (printing why) unless the GPU is a Hopper: the wgmma (sm_90a) kernels run nowhere else.
#define QB_REQUIRE_SM90()                                                                                  \
  do {                                                                                                     \
    QB_REQUIRE_CUDA();                                                                                     \
    if (::qb::kernels::compute_capability() != 90)                                                         \
      GTEST_SKIP() << "the wgmma prefill kernel needs compute capability 9.0; this GPU is "                \
                   << ::qb::kernels::compute_capability();                                                 \
  } while (0)
#endif
