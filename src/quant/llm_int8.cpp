#include "quantbench/quant/llm_int8.h"

#include <ATen/ATen.h>

#include <array>

#include "int8_cuda.h"
#include "quantbench/core/error.h"
#include "quantbench/io/checkpoint.h"

namespace qb::quant {
namespace {

// bitsandbytes' constants (kept equal to kernels/llm_int8.h, which CPU-only builds cannot include):
// int8_vectorwise_dequant multiplies by 7.874015718698502e-3 (1/127), int8_mm_dequant by
// 6.200124e-05 (its rounding of 1/127^2, 1.8e-5 relative above the exact value).
constexpr float kInvScale = 7.874015718698502e-3f;
constexpr float kInvScaleSquared = 6.200124e-05f;

int64_t padded_in(int64_t in) { return (in + 15) / 16 * 16; }

at::ScalarType bias_dtype(const FormatOptions& options) {
  const auto a = options.activation_dtype;
  return a == at::kHalf || a == at::kBFloat16 ? a : at::kFloat;
}

std::optional<at::Tensor> stored_bias(const std::optional<at::Tensor>& bias, int64_t out,
                                      const FormatOptions& options) {
  if (!bias.has_value() || !bias->defined()) return std::nullopt;
  QB_CHECK(bias->numel() == out, kInvalidInput, "llm.int8: bias has {} values for {} output features", bias->numel(),
           out);
  return bias->reshape({-1}).to(options.device, bias_dtype(options)).contiguous();
}

// bitsandbytes.utils.LINEAR_8BIT_WEIGHTS_FORMAT_MAPPING: 0 row, 1 col32, 2 col_turing, 3 col_ampere.
const char* weight_format_name(int code) {
  static const std::array<const char*, 4> names = {"row", "col32", "col_turing", "col_ampere"};
  return code >= 0 && code < 4 ? names[code] : "unknown";
}

class LlmInt8Format final : public WeightFormat {
 public:
  std::string name() const override { return "llm.int8"; }
  double nominal_bits_per_weight(const FormatOptions&) const override { return 8.0; }

  LinearPtr quantize(const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                     const FormatOptions& options) const override {
    QB_CHECK(weight.dim() == 2, kInvalidInput, "llm.int8: weight must be 2-D [out, in], got {}-D", weight.dim());
    LlmInt8Quantized quantized = quantize_llm_int8(weight.to(options.device));
    return std::make_unique<LlmInt8Linear>(std::move(quantized), stored_bias(bias, weight.size(0), options),
                                           options.outlier_threshold, options.device);
  }

  bool has_serialized(const io::Checkpoint& checkpoint, const std::string& prefix) const override {
    const std::string weight = prefix + ".weight";
    return checkpoint.has(weight) && checkpoint.has(prefix + ".SCB") &&
           checkpoint.info(weight).dtype == io::StDtype::kI8;
  }

  LinearPtr load_serialized(const io::Checkpoint& checkpoint, const std::string& prefix,
                            const std::optional<at::Tensor>& bias, const FormatOptions& options) const override {
    const std::string weight_name = prefix + ".weight";
    const std::string scb_name = prefix + ".SCB";
    const std::string format_name = prefix + ".weight_format";
    const io::TensorInfo& weight = checkpoint.info(weight_name);
    QB_CHECK(weight.dtype == io::StDtype::kI8 && weight.shape.size() == 2, kInvalidInput,
             "{}: {} must be I8 [out, in] for llm.int8, got {} {}", checkpoint.dir(), weight_name,
             io::st_dtype_name(weight.dtype), c10::str(at::IntArrayRef(weight.shape)));
    const int64_t out = weight.shape[0];
    const io::TensorInfo& scb = checkpoint.info(scb_name);
    QB_CHECK(scb.dtype == io::StDtype::kF32 && scb.shape == std::vector<int64_t>{out}, kInvalidInput,
             "{}: {} must be F32 [{}] (one absmax per row of {}), got {} {}", checkpoint.dir(), scb_name, out,
             weight_name, io::st_dtype_name(scb.dtype), c10::str(at::IntArrayRef(scb.shape)));
    if (checkpoint.has(format_name)) {  // absent in old checkpoints: bitsandbytes then assumes "row"
      const io::TensorInfo& format = checkpoint.info(format_name);
      QB_CHECK(format.dtype == io::StDtype::kU8 && format.numel() == 1, kInvalidInput,
               "{}: {} must be a U8 scalar (bitsandbytes' layout code), got {} {}", checkpoint.dir(), format_name,
               io::st_dtype_name(format.dtype), c10::str(at::IntArrayRef(format.shape)));
      const int code = checkpoint.raw_bytes(format_name).first[0];
      QB_CHECK(code == 0, kUnsupported,
               "{}: {} is {} ('{}'): only 0 ('row', row-major) is supported; bitsandbytes itself now loads "
               "nothing else",
               checkpoint.dir(), format_name, code, weight_format_name(code));
    }
    LlmInt8Quantized quantized{checkpoint.get(weight_name).clone(), checkpoint.get(scb_name).clone()};
    return std::make_unique<LlmInt8Linear>(std::move(quantized), stored_bias(bias, out, options),
                                           options.outlier_threshold, options.device);
  }

  LinearPtr fuse(std::vector<LinearPtr> parts) const override {
    QB_CHECK(!parts.empty(), kInternal, "llm.int8: fuse of no layers");
    if (parts.size() == 1) return std::move(parts.front());
    const auto& first = static_cast<const LlmInt8Linear&>(*parts.front());
    std::optional<at::ScalarType> bias_type;
    for (const auto& part : parts) {
      const auto& layer = static_cast<const LlmInt8Linear&>(*part);
      if (layer.has_bias() && !bias_type) bias_type = layer.bias().scalar_type();
    }
    std::vector<at::Tensor> cbs, scbs, biases;
    for (const auto& part : parts) {
      const auto& layer = static_cast<const LlmInt8Linear&>(*part);
      QB_CHECK(layer.in_features() == first.in_features() && layer.threshold() == first.threshold(), kInvalidInput,
               "llm.int8: fused layers must share in_features and threshold ({} vs {}, {} vs {})",
               layer.in_features(), first.in_features(), layer.threshold(), first.threshold());
      cbs.push_back(layer.cb_padded().narrow(1, 0, layer.in_features()));
      scbs.push_back(layer.scb());
      if (bias_type) {
        biases.push_back(layer.has_bias() ? layer.bias().to(*bias_type)
                                          : at::zeros({layer.out_features()}, layer.scb().options().dtype(*bias_type)));
      }
    }
    std::optional<at::Tensor> bias;
    if (bias_type) bias = at::cat(biases, 0).contiguous();
    LlmInt8Quantized fused{at::cat(cbs, 0), at::cat(scbs, 0)};
    return std::make_unique<LlmInt8Linear>(std::move(fused), bias, first.threshold(), first.scb().device());
  }
};

}  // namespace

std::unique_ptr<WeightFormat> make_llm_int8_format() { return std::make_unique<LlmInt8Format>(); }

LlmInt8Quantized quantize_llm_int8(const at::Tensor& weight) {
  QB_CHECK(weight.dim() == 2 && weight.size(0) >= 1 && weight.size(1) >= 1, kInvalidInput,
           "llm.int8: weight must be a non-empty 2-D [out, in] tensor, got shape {}", c10::str(weight.sizes()));
  QB_CHECK(at::isFloatingType(weight.scalar_type()), kInvalidInput, "llm.int8: weight must be floating point, got {}",
           c10::toString(weight.scalar_type()));
  // Int8Params._quantize: B = weight.to(float16); int8_vectorwise_quant(B) without a threshold.
  const at::Tensor w16 = weight.to(at::kHalf).to(at::kFloat);
  QB_CHECK(at::isfinite(w16).all().item<bool>(), kInvalidInput,
           "llm.int8: weight holds values that are not finite in fp16 (bitsandbytes quantizes the fp16 cast)");
  const at::Tensor scb = w16.abs().amax({1});
  // Python's `127.0 / row_stats` is reciprocal(row_stats) * 127: one more rounding than a division.
  const at::Tensor inv = (at::reciprocal(scb) * 127.0f).unsqueeze(1);  // fp32, inf for zero rows
  at::Tensor cb = at::round(w16 * inv).clamp(-127, 127);
  cb = at::where((scb > 0).unsqueeze(1), cb, at::zeros_like(cb));
  return {cb.to(at::kChar).contiguous(), scb.contiguous()};
}

at::Tensor llm_int8_reference_matmul(const at::Tensor& x, const at::Tensor& cb, const at::Tensor& scb,
                                     const std::optional<at::Tensor>& bias, double threshold,
                                     at::ScalarType compute) {
  const int64_t K = x.size(-1);
  QB_CHECK(cb.dim() == 2 && cb.size(1) >= K && scb.numel() == cb.size(0), kInvalidInput,
           "llm.int8 reference: cb {} / scb {} do not fit input width {}", c10::str(cb.sizes()),
           c10::str(scb.sizes()), K);
  const int64_t N = cb.size(0);
  const at::Tensor x2 = x.reshape({-1, K}).to(at::kCPU);
  // int8_vectorwise_quant(A.to(float16), threshold) as the default (PyTorch) backend writes it.
  const at::Tensor xh = x2.to(at::kHalf).to(at::kFloat);
  const at::Tensor a = xh.abs();
  const at::Tensor outlier = threshold > 0.0 ? a.ge(threshold) : at::zeros_like(a, a.options().dtype(at::kBool));
  const at::Tensor outlier_cols = outlier.any(0);
  const at::Tensor sca = at::where(outlier, at::zeros_like(a), a).amax({1});
  const at::Tensor inv = (at::reciprocal(sca) * 127.0f).unsqueeze(1);
  at::Tensor ca = at::round(xh * inv).clamp(-127, 127);
  const at::Tensor zeroed = outlier.logical_or(outlier_cols.unsqueeze(0)).logical_or((sca <= 0).unsqueeze(1));
  ca = at::where(zeroed, at::zeros_like(ca), ca);

  const at::Tensor cb_k = cb.narrow(1, 0, K).to(at::kCPU, compute);
  const at::Tensor scb_cpu = scb.reshape({N}).to(at::kCPU, at::kFloat);
  // int8_mm_dequant: int32 result * (row_stats * col_stats) * 6.200124e-05, the scale product in fp32.
  const at::Tensor dot = at::matmul(ca.to(compute), cb_k.t());
  const at::Tensor scale = (sca.unsqueeze(1) * scb_cpu.unsqueeze(0)).to(compute);
  at::Tensor y = dot * scale * static_cast<double>(kInvScaleSquared);
  // Outlier columns in 16-bit precision: x (not rounded) against CB * SCB / 127.
  const at::Tensor x_out = at::where(outlier_cols.unsqueeze(0), x2.to(compute), at::zeros({}, x2.options().dtype(compute)));
  const at::Tensor w_out = cb_k * scb_cpu.to(compute).unsqueeze(1) * static_cast<double>(kInvScale);
  y = y + at::matmul(x_out, w_out.t());
  if (bias.has_value() && bias->defined()) y = y + bias->reshape({N}).to(at::kCPU, compute);
  std::vector<int64_t> out_shape(x.sizes().begin(), x.sizes().end());
  out_shape.back() = N;
  return y.view(out_shape);
}

LlmInt8Linear::LlmInt8Linear(LlmInt8Quantized quantized, std::optional<at::Tensor> bias, double threshold,
                             c10::Device device)
    : Linear(quantized.cb.size(1), quantized.cb.size(0)), bias_(std::move(bias)), threshold_(threshold) {
  QB_CHECK(quantized.cb.dim() == 2 && quantized.cb.scalar_type() == at::kChar, kInvalidInput,
           "llm.int8: CB must be int8 [out, in], got {} {}", c10::toString(quantized.cb.scalar_type()),
           c10::str(quantized.cb.sizes()));
  QB_CHECK(quantized.scb.numel() == quantized.cb.size(0) && quantized.scb.scalar_type() == at::kFloat, kInvalidInput,
           "llm.int8: SCB must be fp32 with {} values, got {} {}", quantized.cb.size(0),
           c10::toString(quantized.scb.scalar_type()), c10::str(quantized.scb.sizes()));
  const int64_t in = quantized.cb.size(1);
  cb_ = at::constant_pad_nd(quantized.cb.to(device), {0, padded_in(in) - in}, 0).contiguous();
  scb_ = quantized.scb.reshape({-1}).to(device).contiguous();
}

at::Tensor LlmInt8Linear::dequantize() const {
  // int8_vectorwise_dequant: A * stats.view(-1, 1) * 7.874015718698502e-3, in fp32.
  return cb_.narrow(1, 0, in_features()).to(at::kCPU, at::kFloat) * scb_.to(at::kCPU).unsqueeze(1) * kInvScale;
}

int64_t LlmInt8Linear::weight_bytes() const {
  return static_cast<int64_t>(cb_.nbytes() + scb_.nbytes()) + (bias_.has_value() ? bias_->nbytes() : 0);
}

at::Tensor LlmInt8Linear::forward_with(const at::Tensor& x, LlmInt8KernelPath path) const {
  QB_CHECK(x.size(-1) == in_features(), kInvalidInput, "llm.int8 linear: input has {} features, weight expects {}",
           x.size(-1), in_features());
  QB_CHECK(x.device() == cb_.device(), kInvalidInput, "llm.int8 linear: input on {}, weights on {}",
           x.device().str(), cb_.device().str());
#ifdef QB_HAVE_CUDA
  const bool half = x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16;
  if (x.is_cuda() && half) {
    std::vector<int64_t> out_shape(x.sizes().begin(), x.sizes().end());
    out_shape.back() = out_features();
    const at::Tensor x2 = int8_cuda::flatten_activations(x, in_features());
    const kernels::Int8Weights w = int8_cuda::weights_view(cb_, scb_, 0, x2.size(1), 1.0f);
    const at::Tensor b = bias_.has_value() ? bias_->to(x.scalar_type()) : at::Tensor();
    const int64_t M = x2.size(0);
    const float threshold = static_cast<float>(threshold_);
    const bool gemv = path == LlmInt8KernelPath::kGemv ||
                      (path == LlmInt8KernelPath::kAuto && M <= int8_cuda::kLlmInt8GemvMaxRows);
    if (gemv) return int8_cuda::llm_int8_gemv(x2, w, b, threshold).view(out_shape);
    return int8_cuda::llm_int8_prefill(x2, w, b, threshold).view(out_shape);
  }
#endif
  QB_CHECK(path == LlmInt8KernelPath::kAuto, kUnsupported,
           "llm.int8 linear: kernel paths need a CUDA build and fp16/bf16 input on the GPU");
  // CPU runs (and fp32 input on the GPU): bitsandbytes' algorithm in fp32.
  return llm_int8_reference_matmul(x, cb_, scb_, bias_, threshold_, at::kFloat).to(x.device(), x.scalar_type());
}

}  // namespace qb::quant
