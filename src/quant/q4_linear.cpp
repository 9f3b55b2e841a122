#include "quantbench/quant/q4_linear.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstring>

#include "quantbench/core/env_switch.h"
#include "quantbench/core/error.h"
#include "prepared_weight.h"
#include "quantbench/kernels/q4_layout.h"

#ifdef QB_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAStream.h>

#include "gated_epilogue.h"
#include "quantbench/kernels/cuda_check.h"
#include "quantbench/kernels/dequantized_matmul.h"
#include "quantbench/kernels/q4_gemm.h"
#endif

namespace qb::quant {
namespace {

bool is_pow2(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

// a * b rounded to fp32 on its own, so that a following add is never fused into an FMA.
inline float product_f32(float a, float b) {
  volatile float r = a * b;
  return r;
}

at::Tensor cpu_bytes(const at::Tensor& t) { return t.to(at::kCPU).contiguous(); }
at::Tensor dense_bytes(const at::Tensor& t) { return t.contiguous(); }  // on whatever device it lives

int64_t nbytes_or_zero(const at::Tensor& t) { return t.defined() ? static_cast<int64_t>(t.nbytes()) : 0; }

}  // namespace

// ---- Q4Weights ---------------------------------------------------------------------------------------------

void Q4Weights::validate(const std::string& what) const {
  QB_CHECK(out_features > 0 && in_features > 0, kInvalidInput, "{}: empty weight [{}, {}]", what, out_features,
           in_features);
  QB_CHECK(codes.defined() && codes.scalar_type() == at::kByte && codes.numel() == (numel() + 1) / 2, kInvalidInput,
           "{}: codes must be uint8 with {} bytes for [{}, {}], got {} {}", what, (numel() + 1) / 2, out_features,
           in_features, codes.defined() ? codes.numel() : 0,
           codes.defined() ? c10::toString(codes.scalar_type()) : "undefined");
  QB_CHECK(block > 0, kInvalidInput, "{}: block / group size must be positive, got {}", what, block);
  switch (scales) {
    case Q4Scales::kBlockAbsmax:
      QB_CHECK(absmax.defined() && absmax.scalar_type() == at::kFloat && absmax.numel() == blocks(), kInvalidInput,
               "{}: absmax must be float32 [{}] (one per {} elements), got {}", what, blocks(), block,
               absmax.defined() ? absmax.numel() : 0);
      break;
    case Q4Scales::kBlockAbsmaxNested: {
      const int64_t nested = (blocks() + 255) / 256;
      QB_CHECK(absmax.defined() && absmax.scalar_type() == at::kByte && absmax.numel() == blocks(), kInvalidInput,
               "{}: double-quantized absmax must be uint8 [{}], got {}", what, blocks(),
               absmax.defined() ? absmax.numel() : 0);
      QB_CHECK(nested_absmax.defined() && nested_absmax.numel() == nested && nested_offset.defined() &&
                   nested_offset.numel() == nested,
               kInvalidInput, "{}: nested absmax / offset must have {} entries (one per 256 blocks)", what, nested);
      QB_CHECK(nested_code.defined() && nested_code.numel() == 256, kInvalidInput,
               "{}: nested quant map must have 256 entries", what);
      break;
    }
    case Q4Scales::kGroupAffine:
      QB_CHECK(in_features % block == 0, kInvalidInput, "{}: in_features {} is not a multiple of the group size {}",
               what, in_features, block);
      QB_CHECK(group_scale.defined() && group_scale.scalar_type() == at::kHalf &&
                   group_scale.sizes() == at::IntArrayRef({out_features, in_features / block}),
               kInvalidInput, "{}: scales must be float16 [{}, {}]", what, out_features, in_features / block);
      QB_CHECK(group_zero.defined() && group_zero.scalar_type() == at::kByte &&
                   group_zero.sizes() == at::IntArrayRef({out_features, in_features / block}),
               kInvalidInput, "{}: zeros must be uint8 [{}, {}]", what, out_features, in_features / block);
      break;
  }
}

at::Tensor Q4Weights::resolved_absmax() const {
  QB_CHECK(scales != Q4Scales::kGroupAffine, kInternal, "resolved_absmax of an affine (awq) weight");
  if (scales == Q4Scales::kBlockAbsmax) return absmax.to(at::kFloat).contiguous();
  const at::Tensor q = cpu_bytes(absmax), code = nested_code.to(at::kCPU, at::kFloat).contiguous();
  const at::Tensor scale = nested_absmax.to(at::kCPU, at::kFloat).contiguous();
  const at::Tensor offset = nested_offset.to(at::kCPU, at::kFloat).contiguous();
  at::Tensor out = at::empty({q.numel()}, at::kFloat);
  const uint8_t* qp = q.data_ptr<uint8_t>();
  const float* cp = code.data_ptr<float>();
  const float* sp = scale.data_ptr<float>();
  const float* op = offset.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  for (int64_t b = 0; b < q.numel(); ++b) dst[b] = product_f32(cp[qp[b]], sp[b / 256]) + op[b / 256];
  return out;
}

at::Tensor Q4Weights::dequantize() const {
  const int64_t N = out_features, K = in_features;
  at::Tensor out = at::empty({N, K}, at::kFloat);
  const at::Tensor c = cpu_bytes(codes);
  const uint8_t* cp = c.data_ptr<uint8_t>();
  float* dst = out.data_ptr<float>();
  if (scales == Q4Scales::kGroupAffine) {
    const at::Tensor s = group_scale.to(at::kCPU, at::kFloat).contiguous();
    const at::Tensor z = cpu_bytes(group_zero);
    const float* sp = s.data_ptr<float>();
    const uint8_t* zp = z.data_ptr<uint8_t>();
    const int64_t groups = K / block;
    at::parallel_for(0, N, 16, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t k = 0; k < K; ++k) {
          const int64_t e = n * K + k;
          const int code = (e % 2 == 0) ? cp[e / 2] >> 4 : cp[e / 2] & 15;
          const int64_t gi = n * groups + k / block;
          dst[e] = static_cast<float>(code - static_cast<int>(zp[gi])) * sp[gi];  // exact in fp32
        }
    });
    return out;
  }
  // The absmax may live on the GPU (formats quantize there); this reference reads it on the host.
  const at::Tensor am = resolved_absmax().to(at::kCPU).contiguous();
  const float* ap = am.data_ptr<float>();
  const int64_t n_el = numel();
  at::parallel_for(0, n_el, 1 << 16, [&](int64_t e0, int64_t e1) {
    for (int64_t e = e0; e < e1; ++e) {
      const int code = (e % 2 == 0) ? cp[e / 2] >> 4 : cp[e / 2] & 15;
      dst[e] = codebook[code] * ap[e / block];
    }
  });
  return out;
}

std::optional<Q4Weights> q4_concat_rows(const std::vector<Q4Weights>& parts) {
  if (parts.empty()) return std::nullopt;
  const Q4Weights& first = parts.front();
  for (const Q4Weights& p : parts) {
    if (p.in_features != first.in_features || p.scales != first.scales || p.block != first.block ||
        p.codebook != first.codebook)
      return std::nullopt;
    if (p.scales != Q4Scales::kGroupAffine && p.numel() % p.block != 0) return std::nullopt;  // blocks straddle parts
    if (p.numel() % 2 != 0) return std::nullopt;
    if (p.scales == Q4Scales::kBlockAbsmaxNested &&
        (p.blocks() % 256 != 0 || !at::equal(p.nested_code.to(at::kFloat), first.nested_code.to(at::kFloat))))
      return std::nullopt;
  }
  Q4Weights out = first;
  out.out_features = 0;
  std::vector<at::Tensor> codes, absmax, nabs, noff, gscale, gzero;
  for (const Q4Weights& p : parts) {
    out.out_features += p.out_features;
    codes.push_back(dense_bytes(p.codes));
    if (p.scales == Q4Scales::kGroupAffine) {
      gscale.push_back(dense_bytes(p.group_scale));
      gzero.push_back(dense_bytes(p.group_zero));
    } else {
      absmax.push_back(dense_bytes(p.absmax));
      if (p.scales == Q4Scales::kBlockAbsmaxNested) {
        nabs.push_back(dense_bytes(p.nested_absmax));
        noff.push_back(dense_bytes(p.nested_offset));
      }
    }
  }
  out.codes = at::cat(codes, 0);
  if (out.scales == Q4Scales::kGroupAffine) {
    out.group_scale = at::cat(gscale, 0);
    out.group_zero = at::cat(gzero, 0);
  } else {
    out.absmax = at::cat(absmax, 0);
    if (out.scales == Q4Scales::kBlockAbsmaxNested) {
      out.nested_absmax = at::cat(nabs, 0);
      out.nested_offset = at::cat(noff, 0);
    }
  }
  out.validate("fused 4-bit layers");
  return out;
}

LinearPtr q4_fuse(std::vector<LinearPtr>& parts, const std::string& format_name) {
  std::vector<Q4Weights> canon;
  const Q4Linear* first = nullptr;
  bool any_bias = false;
  for (const auto& part : parts) {
    const auto* q4 = dynamic_cast<const Q4Linear*>(part.get());
    if (q4 == nullptr) return nullptr;
    if (first == nullptr) first = q4;
    if (q4->options().device != first->options().device) return nullptr;
    any_bias |= q4->bias().has_value();
    canon.push_back(q4->canonical(/*on_device=*/true));
  }
  std::optional<Q4Weights> fused = q4_concat_rows(canon);
  if (!fused.has_value()) return nullptr;
  std::optional<at::Tensor> bias;
  if (any_bias) {
    std::vector<at::Tensor> biases;
    for (const auto& part : parts) {
      const auto& q4 = static_cast<const Q4Linear&>(*part);
      biases.push_back(q4.bias().has_value() ? q4.bias()->to(at::kCPU, at::kFloat)
                                             : at::zeros({q4.out_features()}, at::kFloat));
    }
    bias = at::cat(biases, 0);
  }
  return std::make_unique<Q4Linear>(*fused, bias, first->options(), format_name);
}

// ---- Q4Linear -----------------------------------------------------------------------------------------------

#ifdef QB_HAVE_CUDA
// What a CUDA layer holds: the tile layout (fast path) or the canonical codes (flat), plus the scales in the
// matching order. `mode` says how the scales are stored (nested absmax is resolved to fp32 when blocks
// straddle rows, so it may differ from the canonical scheme).
struct Q4Linear::Device {
  bool tiles = false;
  int64_t unit = 0;  // tile scale unit in columns
  kernels::Q4ScaleMode mode = kernels::Q4ScaleMode::kAbsmaxF32;
  bool absmax_f16 = false;  // kAbsmax16: scales hold fp16 (else bf16)
  at::Tensor codes, scales, nested, nested_code;
  kernels::Q4TileWeights tw;
  kernels::Q4FlatWeights fw;
};

namespace {

// The layouts of quantbench/kernels/q4_layout.h as tensor permutes, so that they run where the tensors are (the
// GPU, for a layer quantized or loaded there): no host loop over the weights, no round trip.
at::Tensor pad_rows(const at::Tensor& rows2d, int64_t rows) {
  if (rows2d.size(0) == rows) return rows2d;
  return at::cat({rows2d, at::zeros({rows - rows2d.size(0), rows2d.size(1)}, rows2d.options())}, 0);
}

// canonical codes [N * K / 2] -> tiles [n_tiles][K/64 c][8 g][4 t][2 h][8 b] (row of the tile = 8h + g).
at::Tensor tiles_from_codes(const at::Tensor& codes, int64_t N, int64_t K) {
  const int64_t T = kernels::q4_n_tiles(N), C = K / kernels::kQ4ChunkCols;
  return pad_rows(codes.view({N, K / 2}), T * 16).view({T, 2, 8, C, 4, 8}).permute({0, 3, 2, 4, 1, 5}).contiguous().view({-1});
}

at::Tensor codes_from_tiles(const at::Tensor& tiles, int64_t N, int64_t K) {
  const int64_t T = kernels::q4_n_tiles(N), C = K / kernels::kQ4ChunkCols;
  return tiles.view({T, C, 8, 4, 2, 8}).permute({0, 4, 2, 1, 3, 5}).contiguous().view({T * 16, K / 2}).narrow(0, 0, N)
      .reshape({-1});
}

// per (row, unit) values [N, units] -> tile scale order [n_tiles][units][8 g][2 h]; padded rows are zero.
at::Tensor tile_scales(const at::Tensor& per_row_unit, int64_t N) {
  const int64_t T = kernels::q4_n_tiles(N), units = per_row_unit.size(1);
  return pad_rows(per_row_unit, T * 16).view({T, 2, 8, units}).permute({0, 3, 2, 1}).contiguous().view({-1});
}

at::Tensor untile_scales(const at::Tensor& tiled, int64_t N, int64_t units) {
  const int64_t T = kernels::q4_n_tiles(N);
  return tiled.view({T, units, 8, 2}).permute({0, 3, 2, 1}).contiguous().view({T * 16, units}).narrow(0, 0, N);
}

// QB_Q4_ABSMAX16=0 keeps every absmax in fp32 (the A/B of kAbsmax16). Read once.
bool absmax16_enabled() {
  static const bool enabled = env_on_unless_zero("QB_Q4_ABSMAX16");
  return enabled;
}

// awq: fp16 scale bits | zero << 16 as int32 words, and back.
at::Tensor affine_words(const at::Tensor& scale_fp16, const at::Tensor& zero_u8) {
  return scale_fp16.contiguous().view(at::kShort).to(at::kInt).bitwise_and(0xFFFF).bitwise_or(zero_u8.to(at::kInt).mul(65536));
}

std::pair<at::Tensor, at::Tensor> affine_unwords(const at::Tensor& words) {
  const at::Tensor bits = words.bitwise_and(0xFFFF);
  const at::Tensor scale = at::where(bits.ge(32768), bits.sub(65536), bits).to(at::kShort).view(at::kHalf);
  return {scale, words.bitwise_right_shift(16).to(at::kByte)};
}

// q4_tile_gemm's x_scratch for M rows of x2 (the tensor-core path's fragment-ordered copy of x) where the copy pays
// for this N x K weight, from the caching allocator (graph-safe); undefined where the call reads x as it is.
at::Tensor x_fragment_scratch(const at::Tensor& x2, int64_t M, int64_t N, int64_t K) {
  if (!kernels::q4_x_fragments_pay(M, N, K)) return {};
  return at::empty({static_cast<int64_t>(kernels::q4_x_fragments_bytes(M, K))}, x2.options().dtype(at::kByte));
}

}  // namespace
#else
struct Q4Linear::Device {};
#endif

Q4Linear::~Q4Linear() = default;

Q4Linear::Q4Linear(const Q4Weights& weights, const std::optional<at::Tensor>& bias, const FormatOptions& options,
                   std::string format_name)
    : Linear(weights.in_features, weights.out_features), format_(std::move(format_name)), options_(options) {
  weights.validate(format_);
  const int64_t N = weights.out_features, K = weights.in_features;
  if (bias.has_value() && bias->defined()) {
    QB_CHECK(bias->numel() == N, kInvalidInput, "{}: bias has {} elements, out_features is {}", format_, bias->numel(), N);
    bias_ = bias->reshape({N}).to(options.device, options.activation_dtype).contiguous();
  }
  if (!options.device.is_cuda()) {
    cpu_ = weights;
    for (at::Tensor* t : {&cpu_.codes, &cpu_.absmax, &cpu_.nested_absmax, &cpu_.nested_offset, &cpu_.nested_code,
                          &cpu_.group_scale, &cpu_.group_zero})
      if (t->defined()) *t = cpu_bytes(*t);
    return;
  }
#ifdef QB_HAVE_CUDA
  namespace k = qb::kernels;
  cpu_ = weights;  // metadata only for CUDA layers: the tensors live on the device
  cpu_.codes = at::Tensor();
  cpu_.absmax = cpu_.nested_absmax = cpu_.nested_offset = cpu_.nested_code = at::Tensor();
  cpu_.group_scale = cpu_.group_zero = at::Tensor();
  device_ = std::make_unique<Device>();
  Device& d = *device_;
  // Everything below runs where the canonical tensors are moved to: the device (a no-op when they were quantized
  // or loaded there).
  auto on_device = [&](const at::Tensor& t) { return t.to(options.device).contiguous(); };
  const bool affine = weights.scales == Q4Scales::kGroupAffine;
  const at::Tensor codes = on_device(weights.codes);
  d.tiles = K % 64 == 0 && is_pow2(weights.block) && weights.block >= 64;
  if (!affine && d.tiles && K % weights.block != 0) d.unit = 64;  // blocks straddle rows: one scale per 64 columns
  else d.unit = weights.block;
  if (d.tiles) {
    d.codes = tiles_from_codes(codes, N, K);
    const int64_t units = K / d.unit;
    if (affine) {
      d.scales = tile_scales(affine_words(on_device(weights.group_scale), on_device(weights.group_zero)), N);
      d.mode = k::Q4ScaleMode::kAffine;
    } else if (weights.scales == Q4Scales::kBlockAbsmaxNested && d.unit == weights.block) {
      d.scales = tile_scales(on_device(weights.absmax).view({N, units}), N);
      d.nested = on_device(at::stack({weights.nested_absmax.to(at::kFloat), weights.nested_offset.to(at::kFloat)}, 1));
      d.nested_code = on_device(weights.nested_code.to(at::kFloat));
      d.mode = k::Q4ScaleMode::kAbsmaxNested;
    } else {
      const at::Tensor resolved = on_device(weights.resolved_absmax());
      at::Tensor per;
      if (d.unit == weights.block) {
        per = resolved.view({N, units});
      } else {  // the block holding each (row, 64-column unit): a unit never straddles blocks (block % 64 == 0)
        const auto long_opts = resolved.options().dtype(at::kLong);
        const at::Tensor first = at::arange(N, long_opts).mul(K).unsqueeze(1) + at::arange(units, long_opts).mul(d.unit).unsqueeze(0);
        per = resolved.index_select(0, first.div(weights.block, "floor").view({-1})).view({N, units});
      }
      d.scales = tile_scales(per, N);
      d.mode = k::Q4ScaleMode::kAbsmaxF32;
      // Half the scale bytes where 16 bits hold every absmax exactly (bitsandbytes' absmax of 16-bit weights is
      // one of them): the kernels then compute with the same fp32 values. The activation's own type first, since
      // the register-A prefill kernel multiplies an absmax of that type as packed pairs (q4_gemm_sm90a.cu); e.g.
      // a bf16 checkpoint computing in fp16 has absmax values both types hold.
      if (absmax16_enabled()) {
        const bool f16_first = options.activation_dtype == at::kHalf;
        for (const at::ScalarType narrow :
             {f16_first ? at::kHalf : at::kBFloat16, f16_first ? at::kBFloat16 : at::kHalf}) {
          const at::Tensor held = per.to(narrow);
          if (at::equal(held.to(at::kFloat), per)) {
            d.scales = tile_scales(held, N);
            d.mode = k::Q4ScaleMode::kAbsmax16;
            d.absmax_f16 = narrow == at::kHalf;
            break;
          }
        }
      }
    }
    k::Q4TileWeights& tw = d.tw;
    tw.tiles = d.codes.data_ptr<uint8_t>();
    tw.N = N;
    tw.K = K;
    tw.mode = d.mode;
    int shift = 0;
    while ((int64_t{64} << shift) < d.unit) ++shift;
    tw.unit_shift = shift;
    tw.scales = d.scales.data_ptr();
    tw.absmax_f16 = d.absmax_f16;
    if (d.nested.defined()) tw.nested = reinterpret_cast<const float2*>(d.nested.data_ptr<float>());
    if (d.nested_code.defined()) tw.nested_code = d.nested_code.data_ptr<float>();
    std::memcpy(tw.codebook, weights.codebook.data(), sizeof(tw.codebook));
  } else {
    d.codes = codes;
    k::Q4FlatWeights& fw = d.fw;
    fw.codes = d.codes.data_ptr<uint8_t>();
    fw.N = N;
    fw.K = K;
    fw.blocksize = weights.block;
    std::memcpy(fw.codebook, weights.codebook.data(), sizeof(fw.codebook));
    if (affine) {
      d.scales = affine_words(on_device(weights.group_scale), on_device(weights.group_zero)).view({-1});
      fw.mode = d.mode = k::Q4ScaleMode::kAffine;
      fw.affine = reinterpret_cast<const uint32_t*>(d.scales.data_ptr<int32_t>());
    } else {
      d.scales = on_device(weights.resolved_absmax());
      fw.mode = d.mode = k::Q4ScaleMode::kAbsmaxF32;
      fw.absmax = d.scales.data_ptr<float>();
    }
  }
#else
  fail(ErrorKind::kUnsupported, "{}: this build has no CUDA; cannot place the layer on {}", format_,
       options.device.str());
#endif
}

std::string Q4Linear::layout() const {
#ifdef QB_HAVE_CUDA
  if (device_) return device_->tiles ? "tiles" : "flat";
#endif
  return "cpu";
}

Q4Weights Q4Linear::canonical(bool on_device) const {
  if (!device_) return cpu_;
#ifdef QB_HAVE_CUDA
  const Device& d = *device_;
  Q4Weights w = cpu_;
  const int64_t N = w.out_features, K = w.in_features;
  w.codes = d.tiles ? codes_from_tiles(d.codes, N, K) : d.codes;
  if (d.mode == kernels::Q4ScaleMode::kAffine) {
    const int64_t groups = K / w.block;
    const at::Tensor words = d.tiles ? untile_scales(d.scales, N, groups) : d.scales.view({N, groups});
    std::tie(w.group_scale, w.group_zero) = affine_unwords(words.contiguous());
  } else if (!d.tiles) {  // flat: resolved fp32 absmax per block
    w.scales = Q4Scales::kBlockAbsmax;
    w.absmax = d.scales;
  } else {
    const int64_t units = K / d.unit;
    at::Tensor per = untile_scales(d.scales, N, units).reshape({-1});
    if (d.mode == kernels::Q4ScaleMode::kAbsmax16) per = per.to(at::kFloat);  // exact: 16 bits held each value
    if (d.mode == kernels::Q4ScaleMode::kAbsmaxNested) {
      w.absmax = per;
      w.nested_absmax = d.nested.select(1, 0).contiguous();
      w.nested_offset = d.nested.select(1, 1).contiguous();
      w.nested_code = d.nested_code;
    } else {  // the (row, unit) holding each block's first element
      w.scales = Q4Scales::kBlockAbsmax;
      const at::Tensor first = at::arange(w.blocks(), per.options().dtype(at::kLong)).mul(w.block);
      w.absmax = per.index_select(0, first.div(K, "floor").mul(units) + first.remainder(K).div(d.unit, "floor"));
    }
  }
  if (!on_device) {
    for (at::Tensor* t : {&w.codes, &w.absmax, &w.nested_absmax, &w.nested_offset, &w.nested_code, &w.group_scale,
                          &w.group_zero})
      if (t->defined()) *t = cpu_bytes(*t);
  } else {
    for (at::Tensor* t : {&w.codes, &w.absmax, &w.nested_absmax, &w.nested_offset, &w.nested_code, &w.group_scale,
                          &w.group_zero})
      if (t->defined()) *t = t->contiguous();
  }
  return w;
#else
  return cpu_;
#endif
}

at::Tensor Q4Linear::dequantize() const { return canonical().dequantize(); }

int64_t Q4Linear::weight_bytes() const {
  int64_t total = bias_.has_value() ? static_cast<int64_t>(bias_->nbytes()) : 0;
  if (device_) {
#ifdef QB_HAVE_CUDA
    const Device& d = *device_;
    total += nbytes_or_zero(d.codes) + nbytes_or_zero(d.scales) + nbytes_or_zero(d.nested) +
             nbytes_or_zero(d.nested_code);
#endif
    return total;
  }
  for (const at::Tensor* t : {&cpu_.codes, &cpu_.absmax, &cpu_.nested_absmax, &cpu_.nested_offset, &cpu_.nested_code,
                              &cpu_.group_scale, &cpu_.group_zero})
    total += nbytes_or_zero(*t);
  return total;
}

at::Tensor Q4Linear::forward(const at::Tensor& x) const {
  const int64_t N = out_features(), K = in_features();
  QB_CHECK(x.size(-1) == K, kInvalidInput, "{} linear: input has {} features, weight expects {}", format_, x.size(-1),
           K);
  std::vector<int64_t> out_shape(x.sizes().begin(), x.sizes().end());
  out_shape.back() = N;
  if (!device_) {
    // CPU: dequantize (the reference values), then at::linear in fp32; the result in x's dtype.
    const at::Tensor w = cpu_.dequantize();
    const at::Tensor y = bias_.has_value() ? at::linear(x.to(at::kFloat), w, bias_->to(at::kFloat))
                                           : at::linear(x.to(at::kFloat), w);
    return y.to(x.scalar_type());
  }
#ifdef QB_HAVE_CUDA
  namespace k = qb::kernels;
  const Device& d = *device_;
  const auto st = x.scalar_type();
  QB_CHECK(st == at::kHalf || st == at::kBFloat16 || st == at::kFloat, kInvalidInput,
           "{} linear: activations must be fp16, bf16 or fp32 on CUDA, got {}", format_, c10::toString(st));
  QB_CHECK(x.is_cuda(), kInvalidInput, "{} linear: weights are on {}, input on {}", format_,
           d.codes.device().str(), x.device().str());
  const k::DType dtype = st == at::kHalf ? k::DType::kF16 : st == at::kBFloat16 ? k::DType::kBF16 : k::DType::kF32;
  at::Tensor x2 = x.reshape({-1, K}).contiguous();
  const int64_t M = x2.size(0);
  at::Tensor y = at::empty({M, N}, x2.options());
  if (M == 0) return y.reshape(out_shape);
  at::Tensor bias;
  if (bias_.has_value()) bias = bias_->scalar_type() == st ? *bias_ : bias_->to(st);
  const void* bias_ptr = bias.defined() ? bias.data_ptr() : nullptr;
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  k::Q4WgmmaForm form{};
  int splits = 1;
  if (d.tiles && dtype != k::DType::kF32 && M <= k::kQ4GemvMaxM) {
    if (!k::q4_tile_gemm_supported(dtype, x2.data_ptr(), K, M)) x2 = x2.clone();  // an unaligned view
    const at::Tensor scratch = x_fragment_scratch(x2, M, N, K);
    k::q4_tile_gemm(dtype, d.tw, x2.data_ptr(), K, bias_ptr, y.data_ptr(), N, M, stream, {}, {},
                    scratch.defined() ? scratch.data_ptr() : nullptr);
  } else if (d.tiles && k::q4_prefill_fused_form(d.tw, M, &form, &splits) &&
             k::q4_tile_gemm_wgmma_supported(dtype, d.tw, x2.data_ptr(), K, y.data_ptr(), N, M, form)) {
    const size_t bytes = k::q4_tile_gemm_wgmma_workspace_bytes(M, N, form, splits);
    at::Tensor workspace;  // split-K's fp32 partial tiles (from the caching allocator: no sync, graph-safe)
    if (bytes > 0) workspace = at::empty({static_cast<int64_t>(bytes)}, x2.options().dtype(at::kByte));
    k::q4_tile_gemm_wgmma(dtype, d.tw, x2.data_ptr(), K, bias_ptr, y.data_ptr(), N, M, stream, form, splits,
                          bytes > 0 ? workspace.data_ptr() : nullptr, bytes);
  } else if (const at::Tensor w16 = d.tiles && prepared_ ? prepared_->take(M, st, stream) : at::Tensor();
             w16.defined()) {
    // prepare(M) dequantized W on another stream (the one-chunk plan it checked): the GEMM alone. w16 is this
    // stream's memory, reused in its order (after the GEMM).
    k::dequantized_matmul(at::cuda::getCurrentCUDABlasHandle(), dtype, w16.data_ptr(), K, N, K, x2.data_ptr(), K,
                          bias_ptr, y.data_ptr(), N, M, stream);
  } else if (d.tiles) {
    const k::Q4PrefillPlan plan = k::q4_default_prefill_plan(M, N, K);
    at::Tensor scratch = at::empty({k::q4_prefill_scratch_bytes(plan, dtype, N, K)}, x2.options().dtype(at::kByte));
    const int64_t accum_bytes = k::q4_prefill_accum_bytes(plan, M, N);
    at::Tensor accum;
    if (accum_bytes > 0) accum = at::empty({accum_bytes / 4}, x2.options().dtype(at::kFloat));
    k::q4_tile_matmul_cublas(at::cuda::getCurrentCUDABlasHandle(), dtype, d.tw, plan, x2.data_ptr(), K, bias_ptr,
                             y.data_ptr(), N, M, scratch.data_ptr(),
                             accum.defined() ? accum.data_ptr<float>() : nullptr, stream);
  } else {
    at::Tensor scratch = at::empty({N, K}, x2.options());
    k::q4_flat_matmul_cublas(at::cuda::getCurrentCUDABlasHandle(), dtype, d.fw, x2.data_ptr(), K, bias_ptr,
                             y.data_ptr(), N, M, scratch.data_ptr(), stream);
  }
  return y.reshape(out_shape);
#else
  fail(ErrorKind::kInternal, "{}: CUDA layer in a CPU-only build", format_);
#endif
}

int64_t Q4Linear::prepared_rows() const { return prepared_ ? prepared_->rows() : 0; }

void Q4Linear::prepare(int64_t rows) const {
#ifdef QB_HAVE_CUDA
  namespace k = qb::kernels;
  const at::ScalarType st = options_.activation_dtype;
  if (!device_ || !device_->tiles || rows <= k::kQ4GemvMaxM || (st != at::kHalf && st != at::kBFloat16)) return;
  const Device& d = *device_;
  const int64_t N = out_features(), K = in_features();
  k::Q4WgmmaForm form{};
  int splits = 1;
  if (k::q4_prefill_fused_form(d.tw, rows, &form, &splits)) return;  // one fused kernel: nothing to do ahead
  const k::Q4PrefillPlan plan = k::q4_default_prefill_plan(rows, N, K);
  if (plan.split != k::Q4PrefillSplit::kRows || plan.chunk < N) return;  // chunked plans reuse one chunk's scratch
  if (!prepared_) prepared_ = std::make_unique<PreparedWeight>();
  const k::DType dtype = st == at::kHalf ? k::DType::kF16 : k::DType::kBF16;
  prepared_->start(rows, N, K, st, d.codes.device(), [&](cudaStream_t side, void* w16) {
    k::q4_tile_dequant(dtype, d.tw, 0, N, 0, K, w16, K, side, plan.l2_hints);
  });
#else
  (void)rows;
#endif
}

at::Tensor Q4Linear::forward_gated(const at::Tensor& x, GateActivation act) const {
#ifdef QB_HAVE_CUDA
  namespace k = qb::kernels;
  const int64_t N = out_features(), K = in_features();
  if (!device_ || !device_->tiles || !x.is_cuda() || x.size(-1) != K || !k::gated_epilogue_fits(N)) return {};
  const auto st = x.scalar_type();
  if (st != at::kHalf && st != at::kBFloat16) return {};
  at::Tensor x2 = x.reshape({-1, K}).contiguous();
  const int64_t M = x2.size(0);
  const k::DType dtype = st == at::kHalf ? k::DType::kF16 : k::DType::kBF16;
  // Batch 16 measured slower gated (Qwen2-7B nf4 4416 vs 4588 tok/s, awq 4411 vs 4560): above kQ4GemvGatedMaxM
  // rows the separate activation kernel stays.
  if (M < 1 || M > k::kQ4GemvGatedMaxM) return {};
  if (!k::q4_tile_gemm_supported(dtype, x2.data_ptr(), K, M)) x2 = x2.clone();  // an unaligned view
  at::Tensor bias;
  if (bias_.has_value()) bias = bias_->scalar_type() == st ? *bias_ : bias_->to(st);
  at::Tensor y = at::empty({M, N / 2}, x2.options());
  const at::Tensor scratch = x_fragment_scratch(x2, M, N, K);
  k::q4_tile_gemm(dtype, device_->tw, x2.data_ptr(), K, bias.defined() ? bias.data_ptr() : nullptr, y.data_ptr(),
                  N / 2, M, at::cuda::getCurrentCUDAStream(), {}, gated_epilogue(act),
                  scratch.defined() ? scratch.data_ptr() : nullptr);
  std::vector<int64_t> out_shape(x.sizes().begin(), x.sizes().end());
  out_shape.back() = N / 2;
  return y.reshape(out_shape);
#else
  (void)x, (void)act;
  return {};
#endif
}

}  // namespace qb::quant
