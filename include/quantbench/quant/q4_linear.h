// The Linear shared by the 4-bit formats (nf4, fp4, awq): a 4-bit code per weight, a 16-entry codebook and
// one of two scale schemes. The formats differ in how they quantize and load; once loaded they are this.
//
// Canonical form (Q4Weights, CPU tensors), the reference every device layout is derived from:
//   codes   uint8 [ceil(N*K/2)]: W [N, K] flattened row-major, two codes per byte, the earlier element in
//           the HIGH nibble (bitsandbytes' packed tensor exactly).
//   kBlockAbsmax       w[e] = codebook[code(e)] * absmax[e / block]      (e = n*K + k; blocks may straddle rows)
//   kBlockAbsmaxNested absmax[b] = fp32(fp32(nested_code[q[b]] * nested_absmax[b / 256]) + nested_offset[b / 256])
//                      (bitsandbytes' double quantization, rounded as it rounds; the offset is kept per nested
//                      block so that fusing layers with different offsets stays exact)
//   kGroupAffine       w[n, k] = (code - zero[n, k/g]) * scale[n, k/g], codebook 0..15, scale fp16 (AutoAWQ)
// On CUDA the layer holds the tile layout (kernels/q4_layout.h) when K % 64 == 0 and the block/group is a
// power of two >= 64, else the canonical codes (the "flat" layout, dequantize + cuBLAS for every M). The layout
// is built from the canonical tensors by tensor permutes on the device (the canonical tensors may already live
// there: the formats quantize on the GPU when the layer goes to one), so loading never loops over weights on the
// host. forward: M <= 64 runs the decode kernel (kernels/q4_gemv.cuh), larger M dequantize + cuBLAS.
// On the CPU it holds the canonical tensors and forward dequantizes, then calls at::linear.
#pragma once

#include <ATen/Tensor.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "quantbench/quant/format.h"
#include "quantbench/quant/linear.h"

namespace qb::quant {

enum class Q4Scales { kBlockAbsmax, kBlockAbsmaxNested, kGroupAffine };

struct Q4Weights {
  int64_t out_features = 0;
  int64_t in_features = 0;
  std::array<float, 16> codebook{};
  at::Tensor codes;  // uint8 [ceil(N*K/2)]
  Q4Scales scales = Q4Scales::kBlockAbsmax;
  int64_t block = 0;          // absmax: elements per block of the flattened weight; affine: group along K
  at::Tensor absmax;          // absmax: float32 [blocks]; nested: uint8 [blocks]
  at::Tensor nested_absmax;   // nested: float32 [ceil(blocks/256)]
  at::Tensor nested_offset;   // nested: float32 [ceil(blocks/256)]
  at::Tensor nested_code;     // nested: float32 [256]
  at::Tensor group_scale;     // affine: float16 [N, K/g]
  at::Tensor group_zero;      // affine: uint8 [N, K/g]

  int64_t numel() const { return out_features * in_features; }
  int64_t blocks() const { return (numel() + block - 1) / block; }
  // absmax per block as float32, the double-quantization chain resolved the way bitsandbytes resolves it.
  at::Tensor resolved_absmax() const;
  // float32 [N, K]: the exact values this layer computes with.
  at::Tensor dequantize() const;
  // Throws kInvalidInput naming what is inconsistent (sizes, dtypes).
  void validate(const std::string& what) const;
};

// Rows of several layers (same K, same scheme, same block) concatenated, exactly: needs each part's numel to
// be a multiple of the block (absmax) and, for nested absmax, each part's block count a multiple of 256 and
// one nested code map; returns nullopt otherwise.
std::optional<Q4Weights> q4_concat_rows(const std::vector<Q4Weights>& parts);

class Q4Linear;
class PreparedWeight;  // src/quant/prepared_weight.h
// Fuses Q4Linear parts (rows concatenated, biases concatenated with zeros for parts without one) when
// q4_concat_rows allows it; nullptr otherwise (the caller falls back to ConcatLinear). `parts` is left intact
// when nullptr is returned.
LinearPtr q4_fuse(std::vector<LinearPtr>& parts, const std::string& format_name);

class Q4Linear final : public Linear {
 public:
  // weights: canonical, on any device; bias [N] any dtype or undefined. Stored on options.device; bias in
  // options.activation_dtype.
  Q4Linear(const Q4Weights& weights, const std::optional<at::Tensor>& bias, const FormatOptions& options,
           std::string format_name);
  ~Q4Linear() override;

  at::Tensor forward(const at::Tensor& x) const override;
  // The decode kernel (tile layout) with its gated epilogue, up to 8 rows of x (where it measured faster).
  at::Tensor forward_gated(const at::Tensor& x, GateActivation act) const override;
  // The 16-bit weight of the dequantize-then-GEMM path (tile layout, fp16 / bf16, no fused kernel at `rows`).
  void prepare(int64_t rows) const override;
  // The rows a prepared weight waits for (0: none), for tests.
  int64_t prepared_rows() const;
  at::Tensor dequantize() const override;
  int64_t weight_bytes() const override;
  std::string format_name() const override { return format_; }

  // The canonical weights back (read back from the device layout on CUDA): on the CPU, or with on_device on the
  // layer's device (what fusing layers on the GPU uses).
  Q4Weights canonical(bool on_device = false) const;
  const std::optional<at::Tensor>& bias() const { return bias_; }
  // Which device layout holds the weights: "cpu", "tiles" or "flat".
  std::string layout() const;
  const FormatOptions& options() const { return options_; }

 private:
  struct Device;
  std::string format_;
  FormatOptions options_;
  Q4Weights cpu_;            // CPU layers: the weights; CUDA layers: metadata only (no tensors)
  std::optional<at::Tensor> bias_;
  std::unique_ptr<Device> device_;  // CUDA layers
  mutable std::unique_ptr<PreparedWeight> prepared_;  // prepare()'s weight (CUDA layers; src/quant/prepared_weight.h)
};

}  // namespace qb::quant
