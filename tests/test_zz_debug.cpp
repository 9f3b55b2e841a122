// TEMPORARY (session 24): why the kernel-fault test's process segfaults. Removed after the device call.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "test_support.h"

namespace {

std::string cli_command(const char* env, const char* precisions, const char* tag) {
  return std::string(env) + " '" + QB_CLI_PATH + "' run --model '" + qb::test::fixtures_dir() +
         "/models/llama' --device cuda --precision " + precisions +
         " --batch 1 --prompt-len 8 --gen-len 2 --warmup 0 --repetitions 1 --no-probe --format json --out /tmp/dbg-" +
         tag + ".json > /tmp/dbg-" + tag + ".out 2> /tmp/dbg-" + tag + ".err";
}

TEST(DebugChild, NoCudaInParentFault) {
  std::fprintf(stderr, "A: before system\n");
  const int st = std::system(cli_command("QB_DIAG_KERNEL_FAULT=fp32", "fp16,fp32", "a").c_str());
  std::fprintf(stderr, "A: after system, status %d exited %d code %d\n", st, WIFEXITED(st), WEXITSTATUS(st));
}

TEST(DebugChild, CudaInParentNoFault) {
  std::fprintf(stderr, "B: hasCUDA %d\n", int(qb::test::cuda_available()));
  const int st = std::system(cli_command("", "fp16", "b").c_str());
  std::fprintf(stderr, "B: after system, status %d exited %d code %d\n", st, WIFEXITED(st), WEXITSTATUS(st));
}

TEST(DebugChild, CudaInParentFault) {
  std::fprintf(stderr, "C: hasCUDA %d\n", int(qb::test::cuda_available()));
  const int st = std::system(cli_command("QB_DIAG_KERNEL_FAULT=fp32", "fp16,fp32", "c").c_str());
  std::fprintf(stderr, "C: after system, status %d exited %d code %d\n", st, WIFEXITED(st), WEXITSTATUS(st));
}

}  // namespace
