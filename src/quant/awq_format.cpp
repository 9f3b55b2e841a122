// The "awq" format: AutoAWQ GEMM checkpoints (awq_pack.cpp) and AutoAWQ-style RTN quantization, run as a
// Q4Linear with the affine scheme (codebook 0..15, (code - zero) * scale per group).
#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "quantbench/core/error.h"
#include "quantbench/io/checkpoint.h"
#include "quantbench/io/model_config.h"
#include "quantbench/quant/awq.h"

#ifdef QB_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "quantbench/kernels/q4_quantize.h"
#endif

namespace qb::quant {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Groups run along in_features, so any out_features quantizes and runs (the device layouts take any N). Only
// AutoAWQ's packed tensors need out % 8 == 0 (8 outputs per int32): awq_pack and awq_check_fits say so where a
// checkpoint is written; GPT-2's 50257-row head is therefore awq at run time but never exported.
void check_shape(int64_t out, int64_t in, int64_t group, const char* what) {
  QB_CHECK(group > 0, kInvalidInput, "awq {}: group size must be positive, got {}", what, group);
  QB_CHECK(in % group == 0, kInvalidInput,
           "awq {}: weight [{}, {}]: in_features {} is not a multiple of the group size {}", what, out, in, in, group);
  QB_CHECK((out * in) % 2 == 0, kInvalidInput,
           "awq {}: weight [{}, {}] has an odd number of elements (two 4-bit codes share a byte)", what, out, in);
}

// awq_quantize_rtn + awq_to_q4 on the layer's GPU (kernels/q4_quantize.cu, the same fp16 operations: equal codes,
// scales and zeros; tests/test_q4_gpu_quantize.cpp), straight into the canonical Q4Weights on the device.
Q4Weights quantize_on_gpu(const at::Tensor& weight, const FormatOptions& options) {
  QB_CHECK(weight.dim() == 2, kInvalidInput, "awq quantize: weight must be 2-D [out, in], got {}-D", weight.dim());
  const int64_t out = weight.size(0), in = weight.size(1), group = options.group_size;
  check_shape(out, in, group, "quantize");
#ifdef QB_HAVE_CUDA
  // AutoAWQ: linear.half() first (torch's conversion, the same rounding on either device).
  const at::Tensor w = weight.to(options.device).to(at::kHalf).contiguous();
  const c10::cuda::CUDAGuard guard(w.device());
  Q4Weights q;
  q.out_features = out;
  q.in_features = in;
  for (int i = 0; i < 16; ++i) q.codebook[i] = static_cast<float>(i);
  q.scales = Q4Scales::kGroupAffine;
  q.block = group;
  q.codes = at::empty({out * in / 2}, w.options().dtype(at::kByte));
  q.group_scale = at::empty({out, in / group}, w.options());
  q.group_zero = at::empty({out, in / group}, w.options().dtype(at::kByte));
  const c10::Half min_scale(static_cast<float>(1e-5));  // clamp_min(., 1e-5) on a Half tensor compares in Half
  kernels::awq_quantize_rtn_cuda(reinterpret_cast<const uint16_t*>(w.data_ptr<at::Half>()), out, in, group,
                                 min_scale.x, q.codes.data_ptr<uint8_t>(),
                                 reinterpret_cast<uint16_t*>(q.group_scale.data_ptr<at::Half>()),
                                 q.group_zero.data_ptr<uint8_t>(), at::cuda::getCurrentCUDAStream());
  q.validate("awq weights");
  return q;
#else
  fail(ErrorKind::kUnsupported, "awq: this build has no CUDA; cannot quantize on {}", options.device.str());
#endif
}

class AwqFormat final : public WeightFormat {
 public:
  std::string name() const override { return "awq"; }

  double nominal_bits_per_weight(const FormatOptions& options) const override {
    return 4.0 + 32.0 / static_cast<double>(options.group_size);  // on the device: fp16 scale + zero word per group
  }

  LinearPtr quantize(const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                     const FormatOptions& options) const override {
    if (options.device.is_cuda()) return std::make_unique<Q4Linear>(quantize_on_gpu(weight, options), bias, options, name());
    return std::make_unique<Q4Linear>(awq_to_q4(awq_quantize_rtn(weight, options.group_size)), bias, options, name());
  }

  bool has_serialized(const io::Checkpoint& checkpoint, const std::string& prefix) const override {
    return checkpoint.has(prefix + ".qweight") && checkpoint.has(prefix + ".qzeros") &&
           checkpoint.has(prefix + ".scales");
  }

  LinearPtr load_serialized(const io::Checkpoint& checkpoint, const std::string& prefix,
                            const std::optional<at::Tensor>& bias, const FormatOptions& options) const override {
    const std::string config_path = (std::filesystem::path(checkpoint.dir()) / "config.json").string();
    QB_CHECK(std::filesystem::exists(config_path), kNotFound, "{}: an awq checkpoint needs config.json", config_path);
    const nlohmann::json config = load_json_file(config_path);
    QB_CHECK(config.contains("quantization_config"), kUnsupported,
             "{}: no quantization_config: '{}' has AWQ tensors but the checkpoint does not say how they were made",
             config_path, prefix);
    awq_check_quantization_config(config["quantization_config"], config_path);
    // The group size comes from the tensors themselves (scales has in / g rows), as AutoAWQ's loader derives it.
    const AwqUnpacked unpacked = awq_unpack(checkpoint.get(prefix + ".qweight"), checkpoint.get(prefix + ".qzeros"),
                                            checkpoint.get(prefix + ".scales"));
    return std::make_unique<Q4Linear>(awq_to_q4(unpacked), bias, options, name());
  }

  LinearPtr fuse(std::vector<LinearPtr> parts) const override {
    if (parts.size() == 1) return std::move(parts.front());
    if (LinearPtr fused = q4_fuse(parts, name())) return fused;
    return WeightFormat::fuse(std::move(parts));
  }
};

}  // namespace

AwqUnpacked awq_quantize_rtn(const at::Tensor& weight, int64_t group_size) {
  QB_CHECK(weight.dim() == 2, kInvalidInput, "awq quantize: weight must be 2-D [out, in], got {}-D", weight.dim());
  const int64_t out = weight.size(0), in = weight.size(1);
  check_shape(out, in, group_size, "quantize");
  // AutoAWQ: linear.half(), then every op in fp16 (each rounds its fp32 result to fp16, as torch does).
  const at::Tensor w = weight.to(at::kCPU).to(at::kHalf).reshape({-1, group_size});
  const at::Tensor max_val = std::get<0>(w.max(1, true));
  const at::Tensor min_val = std::get<0>(w.min(1, true));
  const at::Tensor scales = at::clamp_min(max_val - min_val, 1e-5) / 15;
  const at::Tensor zeros = at::clamp(-at::round(min_val / scales), 0, 15);
  const at::Tensor q = at::clamp(at::round(w / scales) + zeros, 0, 15);
  AwqUnpacked u;
  u.int_weight = q.reshape({out, in}).to(at::kByte).contiguous();
  u.zeros = zeros.reshape({out, in / group_size}).to(at::kByte).contiguous();
  u.scales = scales.reshape({out, in / group_size}).contiguous();
  return u;
}

Q4Weights awq_to_q4(const AwqUnpacked& u) {
  const int64_t out = u.int_weight.size(0), in = u.int_weight.size(1), groups = u.scales.size(1);
  check_shape(out, in, in / std::max<int64_t>(groups, 1), "weights");
  Q4Weights w;
  w.out_features = out;
  w.in_features = in;
  for (int i = 0; i < 16; ++i) w.codebook[i] = static_cast<float>(i);
  w.scales = Q4Scales::kGroupAffine;
  w.block = in / groups;
  // Codes re-laid row-major, two per byte, the earlier input in the high nibble (the shared 4-bit layout).
  const at::Tensor q = u.int_weight.to(at::kCPU, at::kByte).contiguous();
  w.codes = at::empty({(out * in + 1) / 2}, at::kByte);
  const uint8_t* src = q.data_ptr<uint8_t>();
  uint8_t* dst = w.codes.data_ptr<uint8_t>();
  for (int64_t e = 0; e + 1 < out * in; e += 2) dst[e / 2] = static_cast<uint8_t>((src[e] << 4) | (src[e + 1] & 15));
  w.group_scale = u.scales.to(at::kCPU, at::kHalf).contiguous();
  w.group_zero = u.zeros.to(at::kCPU, at::kByte).contiguous();
  w.validate("awq weights");
  return w;
}

int64_t awq_check_quantization_config(const nlohmann::json& qc, const std::string& source) {
  QB_CHECK(qc.is_object(), kUnsupported, "{}: quantization_config is not an object", source);
  const std::string method = lower(qc.value("quant_method", std::string()));
  QB_CHECK(method == "awq", kUnsupported, "{}: quantization_config.quant_method is '{}', the awq format reads 'awq'",
           source, qc.value("quant_method", std::string()));
  const std::string version = lower(qc.value("version", std::string("gemm")));
  QB_CHECK(version == "gemm", kUnsupported,
           "{}: quantization_config.version '{}' is not supported (only AutoAWQ's 'gemm' layout)", source, version);
  const int64_t bits = qc.contains("bits") ? qc["bits"].get<int64_t>() : qc.value("w_bit", int64_t{4});
  QB_CHECK(bits == 4, kUnsupported, "{}: quantization_config.bits is {}, only 4-bit AWQ is supported", source, bits);
  const bool zero_point = qc.value("zero_point", true);
  QB_CHECK(zero_point, kUnsupported, "{}: quantization_config.zero_point is false; only zero-point AWQ is supported",
           source);
  if (qc.contains("group_size")) return qc["group_size"].get<int64_t>();
  return qc.value("q_group_size", int64_t{0});
}

std::unique_ptr<WeightFormat> make_awq_format() { return std::make_unique<AwqFormat>(); }

}  // namespace qb::quant
