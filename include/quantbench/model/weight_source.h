// Where dense parameters come from: a checkpoint on disk (mmapped, CPU tensors) or deterministic
// synthetic values of the right shape and scale made directly on the target device, one tensor
// at a time, so that a 7B synthetic model never exists in full-precision form all at once.
#pragma once

#include <ATen/Tensor.h>
#include <ATen/core/Generator.h>
#include <c10/core/Device.h>

#include <memory>
#include <string>

#include "quantbench/io/checkpoint.h"
#include "quantbench/io/model_config.h"

namespace qb::model {

// What a parameter is, so that synthetic values get a sensible distribution (norm weights 1,
// biases and weights small normal) and checkpoint loading can check shapes.
enum class TensorRole { kLinearWeight, kBias, kNormWeight, kNormBias, kEmbedding };

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual bool has(const std::string& name) const = 0;
  // The tensor `name` with exactly `shape` (the source's own orientation: gpt2 Conv1D weights
  // come [in, out]); throws kNotFound / kInvalidInput naming the source and the tensor.
  virtual at::Tensor get(const std::string& name, at::IntArrayRef shape, TensorRole role) const = 0;
  virtual const io::Checkpoint* checkpoint() const { return nullptr; }
  virtual bool is_synthetic() const { return false; }
  virtual std::string description() const = 0;
};

std::unique_ptr<WeightSource> make_checkpoint_source(io::Checkpoint checkpoint);
// A fresh generator of its own for `device` (never the global default one).
at::Generator make_private_generator(c10::Device device);
// Values: linear weights and embeddings N(0, init_std), biases N(0, init_std), norm weights 1,
// norm biases 0, drawn in fp32 and returned in `stored` (the dtype the real checkpoint holds: config.json's
// torch_dtype), so that a format quantizing them sees what it would see loading that checkpoint (bf16 weights
// give absmax values exact in 16 bits, fp32 ones do not). Seeded per tensor from (seed, name), so any subset is
// reproducible.
std::unique_ptr<WeightSource> make_synthetic_source(uint64_t seed, c10::Device device,
                                                    at::ScalarType stored = at::kFloat, double init_std = 0.02);
// The dtype config.json's torch_dtype names (float32 where it names none or another).
at::ScalarType stored_dtype(const ModelConfig& config);

}  // namespace qb::model
