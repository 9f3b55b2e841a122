// Builds a CausalLM from a resolved model: reads (or synthesises) every parameter once, moves it to
// the device in the compute dtype, and hands each linear layer to the chosen weight format. q/k/v
// and gate/up are fused into one linear each (fewer launches per decode step).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "quantbench/io/model_resolver.h"
#include "quantbench/model/causal_lm.h"
#include "quantbench/quant/format.h"

namespace qb::model {

struct BuildOptions {
  std::string precision = "fp32";     // a registered weight format
  at::ScalarType compute_dtype = at::kFloat;
  c10::Device device = c10::Device(c10::kCPU);
  quant::FormatOptions format;        // blocksize, double quant, group size, threshold
  bool quantize_lm_head = true;       // false: the head stays dense in the compute dtype
  uint64_t synthetic_seed = 0;
  // Called with every linear read from the checkpoint (after q/k/v or gate/up fusion) and the
  // checkpoint prefixes it holds, in row order; the model uses what it returns. Lets a calibration
  // pass record each layer's input (src/quant/awq_calibration.cpp) while the model stays blind to it.
  std::function<quant::LinearPtr(const std::vector<std::string>& prefixes, quant::LinearPtr linear)> wrap_linear;
};

struct BuildReport {
  std::string weights;                // "checkpoint" | "synthetic"
  std::string weights_source;         // directory or description
  bool prequantized = false;          // the checkpoint held this format's own tensors
  std::string lm_head_format;
  double load_seconds = 0;
  int64_t checkpoint_tensors_unused = 0;
};

// The compute dtype a precision implies when the user does not name one: fp32 on the CPU (except
// explicit fp16/bf16), bf16 for bf16 or bf16 checkpoints, fp16 otherwise.
at::ScalarType default_compute_dtype(const std::string& precision, const ModelConfig& config, c10::Device device);

// The weight format a pre-quantized checkpoint's quantization_config names ("" when dense).
std::string checkpoint_precision(const ModelConfig& config);

std::unique_ptr<CausalLM> build_causal_lm(const io::ResolvedModel& model, const BuildOptions& options,
                                          BuildReport* report = nullptr);

}  // namespace qb::model
