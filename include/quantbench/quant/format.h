// A weight format: one unit per format (src/quant/<name>.cpp + kernels/<name>_*.cu) that knows how
// to quantize a dense weight, load its own serialized tensors, and build a Linear that runs it.
// Formats are listed explicitly in src/quant/registry.cpp (static registrars would be dropped by
// the linker from a static library).
#pragma once

#include <ATen/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "quantbench/quant/linear.h"

namespace qb::io {
class Checkpoint;
}

namespace qb::quant {

struct FormatOptions {
  at::ScalarType activation_dtype = at::kFloat;  // dtype of x and y in forward
  c10::Device device = c10::Device(c10::kCPU);
  int64_t blocksize = 64;         // nf4/fp4: elements per absmax block
  bool double_quant = false;      // nf4/fp4: quantize the absmax values too (off as in transformers' BitsAndBytesConfig)
  int64_t group_size = 128;       // awq (and int8 per-group when > 0 and requested)
  bool int8_per_group = false;    // int8: per-group scales instead of per-output-channel
  double outlier_threshold = 6.0; // llm.int8
};

class WeightFormat {
 public:
  virtual ~WeightFormat() = default;
  virtual std::string name() const = 0;
  // Bits per weight this format stores, for size estimates before loading (e.g. 4.5 for nf4/64).
  virtual double nominal_bits_per_weight(const FormatOptions& options) const = 0;
  // weight [out, in] any dtype/device; bias [out] or undefined. Throws kInvalidInput when the
  // shape does not fit the format (e.g. in_features not a multiple of the AWQ group size).
  virtual LinearPtr quantize(const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                             const FormatOptions& options) const = 0;
  // Whether the checkpoint holds this format's own serialized tensors under `prefix`
  // (e.g. "model.layers.0.self_attn.q_proj"), and a Linear built from them.
  virtual bool has_serialized(const io::Checkpoint& checkpoint, const std::string& prefix) const { return false; }
  virtual LinearPtr load_serialized(const io::Checkpoint& checkpoint, const std::string& prefix,
                                    const std::optional<at::Tensor>& bias, const FormatOptions& options) const;
  // Several layers with one input fused into one (rows concatenated in order). The default wraps
  // them in ConcatLinear; formats whose layout allows it merge their tensors instead.
  virtual LinearPtr fuse(std::vector<LinearPtr> parts) const;
};

// Throws kUnsupported listing every registered name when `name` is unknown.
const WeightFormat& find_format(const std::string& name);
std::vector<std::string> format_names();

}  // namespace qb::quant
