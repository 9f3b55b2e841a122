#include "quantbench/quant/int8.h"

#include <ATen/ATen.h>

#include "gated_epilogue.h"
#include "int8_cuda.h"
#include "prepared_weight.h"
#include "quantbench/core/error.h"

namespace qb::quant {
namespace {

// Rows padded to 16 bytes for the kernels' 16-byte loads (kernels::int8_padded_k).
int64_t padded_in(int64_t in) { return (in + 15) / 16 * 16; }

at::ScalarType bias_dtype(const FormatOptions& options) {
  const auto a = options.activation_dtype;
  return a == at::kHalf || a == at::kBFloat16 ? a : at::kFloat;
}

class Int8Format final : public WeightFormat {
 public:
  std::string name() const override { return "int8"; }
  double nominal_bits_per_weight(const FormatOptions& options) const override {
    return options.int8_per_group && options.group_size > 0 ? 8.0 + 32.0 / static_cast<double>(options.group_size)
                                                            : 8.0;
  }

  LinearPtr quantize(const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                     const FormatOptions& options) const override {
    QB_CHECK(weight.dim() == 2, kInvalidInput, "int8: weight must be 2-D [out, in], got {}-D", weight.dim());
    const int64_t group_size = options.int8_per_group ? options.group_size : 0;
    QB_CHECK(!options.int8_per_group || options.group_size > 0, kInvalidInput,
             "int8: per-group quantization needs group_size > 0, got {}", options.group_size);
    // Quantize where the weight will live (the GPU does a 7B layer in milliseconds).
    Int8Quantized quantized = quantize_int8(weight.to(options.device), group_size);
    std::optional<at::Tensor> stored_bias;
    if (bias.has_value() && bias->defined()) {
      QB_CHECK(bias->numel() == weight.size(0), kInvalidInput, "int8: bias has {} values for {} output features",
               bias->numel(), weight.size(0));
      stored_bias = bias->reshape({-1}).to(options.device, bias_dtype(options)).contiguous();
    }
    return std::make_unique<Int8Linear>(weight.size(1), std::move(quantized), stored_bias, bias_dtype(options));
  }

  // Per-row layouts concatenate: q rows (same padded width), scale rows, biases (zeros where absent).
  LinearPtr fuse(std::vector<LinearPtr> parts) const override {
    QB_CHECK(!parts.empty(), kInternal, "int8: fuse of no layers");
    if (parts.size() == 1) return std::move(parts.front());
    const auto& first = static_cast<const Int8Linear&>(*parts.front());
    std::vector<at::Tensor> qs, scales, biases;
    std::optional<at::ScalarType> bias_type;
    for (const auto& part : parts) {
      const auto& layer = static_cast<const Int8Linear&>(*part);
      if (layer.has_bias() && !bias_type) bias_type = layer.bias().scalar_type();
    }
    for (const auto& part : parts) {
      const auto& layer = static_cast<const Int8Linear&>(*part);
      QB_CHECK(layer.in_features() == first.in_features() && layer.group_size() == first.group_size(), kInvalidInput,
               "int8: fused layers must share in_features and group size ({} vs {}, {} vs {})", layer.in_features(),
               first.in_features(), layer.group_size(), first.group_size());
      qs.push_back(layer.q());
      scales.push_back(layer.scales());
      if (bias_type) {
        biases.push_back(layer.has_bias() ? layer.bias().to(*bias_type)
                                          : at::zeros({layer.out_features()}, layer.scales().options().dtype(*bias_type)));
      }
    }
    std::optional<at::Tensor> bias;
    if (bias_type) bias = at::cat(biases, 0).contiguous();
    Int8Quantized fused{at::cat(qs, 0).contiguous(), at::cat(scales, 0).contiguous(), first.group_size()};
    return std::make_unique<Int8Linear>(first.in_features(), std::move(fused), bias, first.activation_dtype());
  }
};

}  // namespace

std::unique_ptr<WeightFormat> make_int8_format() { return std::make_unique<Int8Format>(); }

Int8Quantized quantize_int8(const at::Tensor& weight, int64_t group_size) {
  QB_CHECK(weight.dim() == 2 && weight.size(0) >= 1 && weight.size(1) >= 1, kInvalidInput,
           "int8: weight must be a non-empty 2-D [out, in] tensor, got shape {}", c10::str(weight.sizes()));
  QB_CHECK(at::isFloatingType(weight.scalar_type()), kInvalidInput, "int8: weight must be floating point, got {}",
           c10::toString(weight.scalar_type()));
  QB_CHECK(group_size >= 0, kInvalidInput, "int8: group_size must be >= 0, got {}", group_size);
  const at::Tensor w = weight.to(at::kFloat);
  QB_CHECK(at::isfinite(w).all().item<bool>(), kInvalidInput, "int8: weight holds non-finite values");
  const int64_t N = w.size(0);
  const int64_t K = w.size(1);
  const int64_t padded_k = padded_in(K);

  auto quantize_rows = [](const at::Tensor& values, const at::Tensor& scale) {
    // values [..., g], scale [..., 1]; a zero scale (all-zero row or group) gives q = 0.
    const at::Tensor q = at::round(values / scale).clamp(-127, 127);
    return at::where(scale > 0, q, at::zeros_like(q));
  };

  Int8Quantized out;
  out.group_size = group_size;
  at::Tensor q;
  if (group_size == 0) {
    out.scales = (w.abs().amax({1}, /*keepdim=*/true) / 127.0f).contiguous();
    q = quantize_rows(w, out.scales);
    out.scales = out.scales.reshape({N});
  } else {
    const int64_t groups = (K + group_size - 1) / group_size;
    const at::Tensor grouped = at::constant_pad_nd(w, {0, groups * group_size - K}, 0).view({N, groups, group_size});
    const at::Tensor scale = grouped.abs().amax({2}, /*keepdim=*/true) / 127.0f;
    q = quantize_rows(grouped, scale).view({N, groups * group_size}).narrow(1, 0, K);
    out.scales = scale.reshape({N, groups}).contiguous();
  }
  out.q = at::constant_pad_nd(q, {0, padded_k - K}, 0).to(at::kChar).contiguous();
  return out;
}

Int8Linear::Int8Linear(int64_t in_features, Int8Quantized quantized, std::optional<at::Tensor> bias,
                       at::ScalarType activation_dtype)
    : Linear(in_features, quantized.q.size(0)), q_(std::move(quantized.q)), scales_(std::move(quantized.scales)),
      group_size_(quantized.group_size), bias_(std::move(bias)), activation_dtype_(activation_dtype) {
  QB_CHECK(q_.dim() == 2 && q_.scalar_type() == at::kChar && q_.size(1) == padded_in(in_features),
           kInternal, "int8: q must be int8 [out, round_up(in, 16)]");
  QB_CHECK(scales_.scalar_type() == at::kFloat && scales_.size(0) == q_.size(0), kInternal,
           "int8: scales must be fp32 with one row per output");
}

Int8Linear::~Int8Linear() = default;

void Int8Linear::prepare(int64_t rows) const {
#ifdef QB_HAVE_CUDA
  if (!q_.is_cuda() || rows <= int8_cuda::kInt8GemvMaxRows) return;
  const kernels::Int8Weights w =
      int8_cuda::weights_view(q_, scales_, group_size_, int8_cuda::kernel_k(in_features()), 1.0f);
  if (!prepared_) prepared_ = std::make_unique<PreparedWeight>();
  int8_cuda::prepare_int8_prefill(w, rows, activation_dtype_, q_.device(), *prepared_);
#else
  (void)rows;
#endif
}

namespace {

#ifdef QB_HAVE_CUDA
// x's shape with its last dimension `features`.
std::vector<int64_t> output_shape(const at::Tensor& x, int64_t features) {
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = features;
  return shape;
}

// What the int8 kernels take for one forward: x as [M, K'] rows (int8_cuda::flatten_activations), the weights viewed
// over K' columns, the bias in x's dtype (undefined when the layer has none).
struct KernelOperands {
  at::Tensor x2;
  int64_t M = 0;
  kernels::Int8Weights w;
  at::Tensor bias;
};
KernelOperands kernel_operands(const Int8Linear& layer, const at::Tensor& x) {
  KernelOperands op;
  op.x2 = int8_cuda::flatten_activations(x, layer.in_features());
  op.M = op.x2.size(0);
  op.w = int8_cuda::weights_view(layer.q(), layer.scales(), layer.group_size(), op.x2.size(1), 1.0f);
  if (layer.has_bias()) op.bias = layer.bias().to(x.scalar_type());
  return op;
}
#endif

}  // namespace

at::Tensor Int8Linear::forward_gated(const at::Tensor& x, GateActivation act) const {
#ifdef QB_HAVE_CUDA
  const int64_t K = in_features(), N = out_features();
  const bool half = x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16;
  if (!x.is_cuda() || !half || x.size(-1) != K || x.device() != q_.device() || !kernels::gated_epilogue_fits(N))
    return {};
  const KernelOperands op = kernel_operands(*this, x);
  if (op.M < 1 || op.M > kernels::kInt8GemvGatedMaxM ||
      !kernels::int8_gemv_supported(op.x2.data_ptr(), op.x2.size(1), op.w, op.M))
    return {};
  return int8_cuda::int8_gemv(op.x2, op.w, op.bias, gated_epilogue(act)).view(output_shape(x, N / 2));
#else
  (void)x, (void)act;
  return {};
#endif
}

bool Int8Linear::decode_loads_weight_before_input(int64_t rows, at::ScalarType dtype) const {
#ifdef QB_HAVE_CUDA
  if (!q_.is_cuda() || (dtype != at::kHalf && dtype != at::kBFloat16)) return false;
  const kernels::Int8Weights w =
      int8_cuda::weights_view(q_, scales_, group_size_, int8_cuda::kernel_k(in_features()), 1.0f);
  return w.group_size % 64 == 0 && kernels::int8_gemv_loads_weight_before_wait(int8_cuda::half_type(dtype), w, rows);
#else
  (void)rows, (void)dtype;
  return false;
#endif
}

int64_t Int8Linear::prepared_rows() const { return prepared_ ? prepared_->rows() : 0; }

at::Tensor Int8Linear::dequantize() const {
  const at::Tensor q = q_.narrow(1, 0, in_features()).to(at::kCPU, at::kFloat);
  const at::Tensor s = scales_.to(at::kCPU);
  if (group_size_ == 0) return q * s.unsqueeze(1);
  return q * s.repeat_interleave(group_size_, 1).narrow(1, 0, in_features());
}

int64_t Int8Linear::weight_bytes() const {
  return static_cast<int64_t>(q_.nbytes() + scales_.nbytes()) + (bias_.has_value() ? bias_->nbytes() : 0);
}

at::Tensor Int8Linear::forward_with(const at::Tensor& x, Int8KernelPath path) const {
  QB_CHECK(x.size(-1) == in_features(), kInvalidInput, "int8 linear: input has {} features, weight expects {}",
           x.size(-1), in_features());
  QB_CHECK(x.device() == q_.device(), kInvalidInput, "int8 linear: input on {}, weights on {}", x.device().str(),
           q_.device().str());
  const int64_t K = in_features();
#ifdef QB_HAVE_CUDA
  const bool half = x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16;
  if (x.is_cuda() && half && path != Int8KernelPath::kGeneric) {
    const KernelOperands op = kernel_operands(*this, x);
    const int64_t M = op.M;
    const bool gemv_ok = kernels::int8_gemv_supported(op.x2.data_ptr(), op.x2.size(1), op.w, M);
    const bool prefill_ok = group_size_ == 0 || group_size_ % 16 == 0;
    const bool want_gemv =
        path == Int8KernelPath::kGemv || (path == Int8KernelPath::kAuto && M <= int8_cuda::kInt8GemvMaxRows);
    QB_CHECK(path != Int8KernelPath::kGemv || gemv_ok, kInvalidInput,
             "int8 linear: the GEMV path cannot take M = {}, group size {}", M, group_size_);
    QB_CHECK(path != Int8KernelPath::kPrefill || prefill_ok, kInvalidInput,
             "int8 linear: the prefill path needs a group size that is a multiple of 16, got {}", group_size_);
    const std::vector<int64_t> shape = output_shape(x, out_features());
    if (want_gemv && gemv_ok) return int8_cuda::int8_gemv(op.x2, op.w, op.bias).view(shape);
    if (prefill_ok) return int8_cuda::int8_prefill(op.x2, op.w, op.bias, prepared_.get()).view(shape);
  }
#endif
  // Reference / generic path: dequantize on x's device, then at::linear in fp32 (CPU) or x's dtype.
  QB_CHECK(path == Int8KernelPath::kAuto || path == Int8KernelPath::kGeneric, kUnsupported,
           "int8 linear: kernel paths need a CUDA build and fp16/bf16 input on the GPU");
  const at::Tensor q = q_.narrow(1, 0, K).to(at::kFloat);
  const at::Tensor w = group_size_ == 0 ? q * scales_.unsqueeze(1)
                                        : q * scales_.repeat_interleave(group_size_, 1).narrow(1, 0, K);
  const at::ScalarType compute = x.is_cuda() ? x.scalar_type() : at::kFloat;
  const at::Tensor y = bias_.has_value() ? at::linear(x.to(compute), w.to(compute), bias_->to(compute))
                                         : at::linear(x.to(compute), w.to(compute));
  return y.to(x.scalar_type());
}

}  // namespace qb::quant
