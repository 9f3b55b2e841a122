#include "quantbench/model/weight_source.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>
#include <fmt/format.h>
#include <fmt/ranges.h>


#include "quantbench/core/error.h"

#ifdef QB_HAVE_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#endif

namespace qb::model {
namespace {

// FNV-1a: a seed derivation that is the same on every platform and standard library.
uint64_t fnv1a(const std::string& text) {
  uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : text) hash = (hash ^ c) * 1099511628211ull;
  return hash;
}

class CheckpointSource final : public WeightSource {
 public:
  explicit CheckpointSource(io::Checkpoint checkpoint) : checkpoint_(std::move(checkpoint)) {}
  bool has(const std::string& name) const override { return checkpoint_.has(name); }
  at::Tensor get(const std::string& name, at::IntArrayRef shape, TensorRole) const override {
    QB_CHECK(checkpoint_.has(name), kNotFound, "{}: checkpoint has no tensor '{}' (shape {} expected)",
             checkpoint_.dir(), name, fmt::join(shape, "x"));
    at::Tensor tensor = checkpoint_.get(name);
    QB_CHECK(tensor.sizes() == shape, kInvalidInput, "{}: tensor '{}' has shape [{}], the config implies [{}]",
             checkpoint_.dir(), name, fmt::join(tensor.sizes(), ", "), fmt::join(shape, ", "));
    QB_CHECK(at::isFloatingType(tensor.scalar_type()), kInvalidInput,
             "{}: tensor '{}' has dtype {}, expected a floating-point parameter", checkpoint_.dir(), name,
             c10::toString(tensor.scalar_type()));
    return tensor;
  }
  const io::Checkpoint* checkpoint() const override { return &checkpoint_; }
  std::string description() const override { return "checkpoint " + checkpoint_.dir(); }

 private:
  io::Checkpoint checkpoint_;
};

class SyntheticSource final : public WeightSource {
 public:
  SyntheticSource(uint64_t seed, c10::Device device, at::ScalarType stored, double init_std)
      : seed_(seed), device_(device), stored_(stored), init_std_(init_std) {}
  bool has(const std::string&) const override { return true; }
  at::Tensor get(const std::string& name, at::IntArrayRef shape, TensorRole role) const override {
    const auto options = at::TensorOptions().device(device_).dtype(at::kFloat);
    if (role == TensorRole::kNormWeight) return at::ones(shape, options.dtype(stored_));
    if (role == TensorRole::kNormBias) return at::zeros(shape, options.dtype(stored_));
    // A private generator per tensor: reproducible whatever else draws random numbers, and no
    // lock held here (the sampling kernels take the generator's own mutex).
    at::Generator generator = make_private_generator(device_);
    generator.set_current_seed(seed_ ^ fnv1a(name));
    return at::normal(0.0, init_std_, shape, generator, options).to(stored_);
  }
  bool is_synthetic() const override { return true; }
  std::string description() const override { return fmt::format("synthetic weights (seed {})", seed_); }

 private:
  uint64_t seed_;
  c10::Device device_;
  at::ScalarType stored_;
  double init_std_;
};

}  // namespace

at::Generator make_private_generator(c10::Device device) {
  if (device.is_cuda()) {
#ifdef QB_HAVE_CUDA
    return at::cuda::detail::createCUDAGenerator(device.index() < 0 ? 0 : device.index());
#else
    fail(ErrorKind::kUnsupported, "CUDA random numbers need a CUDA build");
#endif
  }
  return at::make_generator<at::CPUGeneratorImpl>();
}

std::unique_ptr<WeightSource> make_checkpoint_source(io::Checkpoint checkpoint) {
  return std::make_unique<CheckpointSource>(std::move(checkpoint));
}

std::unique_ptr<WeightSource> make_synthetic_source(uint64_t seed, c10::Device device, at::ScalarType stored,
                                                    double init_std) {
  return std::make_unique<SyntheticSource>(seed, device, stored, init_std);
}

at::ScalarType stored_dtype(const ModelConfig& config) {
  if (config.torch_dtype == "bfloat16") return at::kBFloat16;
  if (config.torch_dtype == "float16") return at::kHalf;
  return at::kFloat;
}

}  // namespace qb::model
