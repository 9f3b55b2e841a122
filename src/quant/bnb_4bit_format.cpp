// The "nf4" and "fp4" formats: quantize from a dense weight (bitsandbytes-exact, bnb_4bit_codec.cpp), or load
// the tensors bitsandbytes / transformers serialized; both run as a Q4Linear.
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cstring>

#include "quantbench/core/error.h"
#include "quantbench/io/checkpoint.h"
#include "quantbench/quant/bnb_4bit.h"
#include "quantbench/quant/q4_linear.h"

namespace qb::quant {
namespace {

std::string state_key(const std::string& prefix, Bnb4bitType type) {
  return prefix + ".weight.quant_state.bitsandbytes__" + bnb_4bit_type_name(type);
}

// A float32 tensor of the checkpoint with exactly `count` elements.
at::Tensor float_tensor(const io::Checkpoint& ckpt, const std::string& name, int64_t count) {
  QB_CHECK(ckpt.has(name), kNotFound, "{}: missing tensor '{}'", ckpt.dir(), name);
  at::Tensor t = ckpt.get(name).reshape({-1});
  QB_CHECK(t.numel() == count, kInvalidInput, "{}: '{}' has {} elements, expected {}", ckpt.dir(), name, t.numel(),
           count);
  return t.to(at::kFloat).contiguous().clone();
}

class Bnb4bitFormat final : public WeightFormat {
 public:
  explicit Bnb4bitFormat(Bnb4bitType type) : type_(type) {}
  std::string name() const override { return bnb_4bit_type_name(type_); }

  double nominal_bits_per_weight(const FormatOptions& options) const override {
    const double bs = static_cast<double>(options.blocksize);
    return 4.0 + (options.double_quant ? 8.0 / bs + 64.0 / (bs * 256.0) : 32.0 / bs);
  }

  LinearPtr quantize(const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                     const FormatOptions& options) const override {
    // A layer bound for a GPU is quantized there (bit-exact with the CPU path; bnb_4bit_codec.cpp): the codes
    // never cross to the host, and the device layout is built from them where they are.
    const at::Tensor w = options.device.is_cuda() ? weight.to(options.device) : weight;
    const Bnb4bitState state = bnb_quantize_4bit(w, type_, options.blocksize, options.double_quant);
    return std::make_unique<Q4Linear>(bnb_state_to_q4(state), bias, options, name());
  }

  bool has_serialized(const io::Checkpoint& checkpoint, const std::string& prefix) const override {
    return bnb_has_serialized(checkpoint, prefix, type_);
  }

  LinearPtr load_serialized(const io::Checkpoint& checkpoint, const std::string& prefix,
                            const std::optional<at::Tensor>& bias, const FormatOptions& options) const override {
    const Bnb4bitState state = bnb_load_state(checkpoint, prefix, type_);
    return std::make_unique<Q4Linear>(bnb_state_to_q4(state), bias, options, name());
  }

  LinearPtr fuse(std::vector<LinearPtr> parts) const override {
    if (parts.size() == 1) return std::move(parts.front());
    if (LinearPtr fused = q4_fuse(parts, name())) return fused;
    return WeightFormat::fuse(std::move(parts));  // blocks straddle the parts: run them side by side
  }

 private:
  Bnb4bitType type_;
};

}  // namespace

bool bnb_has_serialized(const io::Checkpoint& checkpoint, const std::string& prefix, Bnb4bitType type) {
  return checkpoint.has(prefix + ".weight") && checkpoint.has(state_key(prefix, type));
}

Bnb4bitState bnb_load_state(const io::Checkpoint& checkpoint, const std::string& prefix, Bnb4bitType type) {
  const std::string key = state_key(prefix, type);
  QB_CHECK(checkpoint.has(key), kNotFound, "{}: '{}' has no bitsandbytes {} quant state ('{}')", checkpoint.dir(),
           prefix, bnb_4bit_type_name(type), key);
  const auto [json_bytes, json_size] = checkpoint.raw_bytes(key);
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(json_bytes), json_size));
  } catch (const std::exception& e) {
    fail(ErrorKind::kInvalidInput, "{}: '{}' is not JSON: {}", checkpoint.dir(), key, e.what());
  }
  Bnb4bitState state;
  state.type = type;
  try {
    QB_CHECK(meta.at("quant_type").get<std::string>() == bnb_4bit_type_name(type), kInvalidInput,
             "{}: '{}' says quant_type {}", checkpoint.dir(), key, meta.at("quant_type").dump());
    state.blocksize = meta.at("blocksize").get<int64_t>();
    state.dtype = meta.at("dtype").get<std::string>();
    state.shape = meta.at("shape").get<std::vector<int64_t>>();
    state.nested = meta.contains("nested_offset") || checkpoint.has(prefix + ".weight.nested_absmax");
    if (state.nested) {
      state.nested_blocksize = meta.at("nested_blocksize").get<int64_t>();
      state.nested_offset = static_cast<float>(meta.at("nested_offset").get<double>());
      QB_CHECK(meta.value("nested_dtype", std::string("float32")) == "float32", kUnsupported,
               "{}: '{}' nested_dtype {} (bitsandbytes writes float32)", checkpoint.dir(), key,
               meta.value("nested_dtype", std::string()));
    }
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::kInvalidInput, "{}: '{}' lacks a quant-state field: {}", checkpoint.dir(), key, e.what());
  }
  QB_CHECK(state.shape.size() == 2 && state.shape[0] > 0 && state.shape[1] > 0, kInvalidInput,
           "{}: '{}' shape must be [out, in], got {}", checkpoint.dir(), key, meta.at("shape").dump());
  QB_CHECK(state.blocksize >= 32 && state.blocksize <= 4096 && (state.blocksize & (state.blocksize - 1)) == 0,
           kInvalidInput, "{}: '{}' blocksize {} is not one of bitsandbytes' 32..4096", checkpoint.dir(), key,
           state.blocksize);
  // The packed codes, whatever storage dtype bnb used (quant_storage): ceil(numel/2) raw bytes.
  const std::string weight_key = prefix + ".weight";
  const auto [packed_bytes, packed_size] = checkpoint.raw_bytes(weight_key);
  QB_CHECK(static_cast<int64_t>(packed_size) == (state.numel() + 1) / 2, kInvalidInput,
           "{}: '{}' holds {} bytes, a packed [{}, {}] weight needs {}", checkpoint.dir(), weight_key, packed_size,
           state.shape[0], state.shape[1], (state.numel() + 1) / 2);
  state.packed = at::empty({static_cast<int64_t>(packed_size)}, at::kByte);
  std::memcpy(state.packed.data_ptr<uint8_t>(), packed_bytes, packed_size);
  const std::string absmax_key = weight_key + ".absmax";
  QB_CHECK(checkpoint.has(absmax_key), kNotFound, "{}: missing '{}'", checkpoint.dir(), absmax_key);
  if (state.nested) {
    const auto [abs_bytes, abs_size] = checkpoint.raw_bytes(absmax_key);
    QB_CHECK(checkpoint.info(absmax_key).dtype == io::StDtype::kU8 &&
                 static_cast<int64_t>(abs_size) == state.blocks(),
             kInvalidInput, "{}: '{}' must be uint8 [{}] for a double-quantized state", checkpoint.dir(), absmax_key,
             state.blocks());
    state.absmax = at::empty({state.blocks()}, at::kByte);
    std::memcpy(state.absmax.data_ptr<uint8_t>(), abs_bytes, abs_size);
    state.nested_absmax = float_tensor(checkpoint, weight_key + ".nested_absmax",
                                       (state.blocks() + state.nested_blocksize - 1) / state.nested_blocksize);
    state.nested_code = float_tensor(checkpoint, weight_key + ".nested_quant_map", 256);
  } else {
    state.absmax = float_tensor(checkpoint, absmax_key, state.blocks());
  }
  // bitsandbytes dequantizes with its built-in codebook and ignores the stored quant_map; so do we.
  return state;
}

std::unique_ptr<WeightFormat> make_bnb_4bit_format(Bnb4bitType type) { return std::make_unique<Bnb4bitFormat>(type); }

}  // namespace qb::quant
