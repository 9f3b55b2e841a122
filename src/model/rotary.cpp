#include <ATen/ATen.h>

#include <cmath>

#include "quantbench/model/blocks.h"

namespace qb::model {
namespace {

// transformers' _compute_*_rope_parameters: inverse frequencies in fp32.
at::Tensor inverse_frequencies(const RopeConfig& rope, int64_t rotary_dim) {
  const at::Tensor exponents = at::arange(0, rotary_dim, 2, at::kLong).to(at::kFloat) / static_cast<double>(rotary_dim);
  at::Tensor inv_freq = 1.0 / at::pow(rope.theta, exponents);
  if (rope.type == "linear") return inv_freq / rope.factor;
  if (rope.type == "llama3") {
    const double low_freq_wavelen = rope.original_max_positions / rope.low_freq_factor;
    const double high_freq_wavelen = rope.original_max_positions / rope.high_freq_factor;
    const at::Tensor wavelen = 2 * M_PI / inv_freq;
    at::Tensor scaled = at::where(wavelen > low_freq_wavelen, inv_freq / rope.factor, inv_freq);
    const at::Tensor smooth = (rope.original_max_positions / wavelen - rope.low_freq_factor) /
                              (rope.high_freq_factor - rope.low_freq_factor);
    const at::Tensor smoothed = (1 - smooth) * scaled / rope.factor + smooth * scaled;
    const at::Tensor medium = at::logical_not(wavelen < high_freq_wavelen) & at::logical_not(wavelen > low_freq_wavelen);
    return at::where(medium, smoothed, scaled);
  }
  return inv_freq;
}

at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

}  // namespace

RotaryTable::RotaryTable(const ModelConfig& config, int64_t max_positions, c10::Device device)
    : rotary_dim_(config.rotary_dim()) {
  const at::Tensor inv_freq = inverse_frequencies(config.rope, rotary_dim_);
  const at::Tensor positions = at::arange(max_positions, at::kLong).to(at::kFloat);
  const at::Tensor freqs = at::outer(positions, inv_freq);  // [P, rotary_dim / 2], fp32
  cos_ = freqs.cos().to(device).contiguous();
  sin_ = freqs.sin().to(device).contiguous();
}

at::Tensor RotaryTable::apply(const at::Tensor& x, const StepPositions& where) const {
  // x [B, T, heads, D]; transformers casts cos/sin to x's dtype and rotates in that dtype.
  const int64_t tokens = x.size(1);
  at::Tensor cos_rows, sin_rows;
  if (where.decode) {
    cos_rows = cos_.index_select(0, where.position);
    sin_rows = sin_.index_select(0, where.position);
  } else {
    cos_rows = cos_.narrow(0, 0, tokens);
    sin_rows = sin_.narrow(0, 0, tokens);
  }
  const at::Tensor cos_full = at::cat({cos_rows, cos_rows}, -1).to(x.scalar_type()).unsqueeze(1);  // [T, 1, rd]
  const at::Tensor sin_full = at::cat({sin_rows, sin_rows}, -1).to(x.scalar_type()).unsqueeze(1);
  const at::Tensor rotated = x.narrow(-1, 0, rotary_dim_);
  const at::Tensor result = rotated * cos_full + rotate_half(rotated) * sin_full;
  if (rotary_dim_ == x.size(-1)) return result;
  return at::cat({result, x.narrow(-1, rotary_dim_, x.size(-1) - rotary_dim_)}, -1);
}

}  // namespace qb::model
