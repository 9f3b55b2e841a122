// The one interface every linear layer goes through. The model calls forward(x) and never asks
// which format it holds; a format never knows which model it is in.
//
// Logical weight W is [out_features, in_features] (nn.Linear orientation); forward computes
// y = x W^T (+ bias) for x [..., in_features] in the activation dtype, on the layer's device,
// returning [..., out_features] in the same dtype. forward must be capturable in a CUDA graph:
// no host synchronisation, no data-dependent shapes.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qb::quant {

// The activation forward_gated applies (named here so that a format needs nothing of the model).
enum class GateActivation { kSilu, kGeluTanh, kGeluErf, kRelu };

class Linear {
 public:
  Linear(int64_t in_features, int64_t out_features) : in_features_(in_features), out_features_(out_features) {}
  virtual ~Linear() = default;
  Linear(const Linear&) = delete;
  Linear& operator=(const Linear&) = delete;

  virtual at::Tensor forward(const at::Tensor& x) const = 0;
  // For a layer whose outputs are [gate | up] (out_features = 2 * inter): act(x W_gate^T) * (x W_up^T) as
  // [..., inter], computed in the epilogue of the format's decode kernel, bit for bit what forward() followed by
  // the CUDA activation kernel gives (one launch instead of two). An undefined tensor where the format has no such
  // path for this x (the CPU, more rows than its decode kernel takes, a split off its tiles): the caller then runs
  // forward() and the activation itself.
  virtual at::Tensor forward_gated(const at::Tensor& x, GateActivation act) const { return {}; }
  // Starts work that a forward of `rows` rows of x needs and that does not depend on x (a quantized format's 16-bit
  // copy of its weight, where that many rows take its dequantize-then-GEMM path) on a second stream, after what the
  // current stream has queued so far, so that it overlaps what the caller queues next (the model: the next layer's
  // projections, asked as a prefill's down projection starts). The next forward() of exactly `rows` rows waits for it
  // and uses it; a forward of another size leaves it, and the next prepare() replaces it. Formats without such work,
  // and every format while the current stream is being captured into a graph, do nothing.
  virtual void prepare(int64_t rows) const { (void)rows; }
  // Whether this layer's decode kernel for `rows` rows of x in `dtype` issues every load of its weight before it waits
  // for x (programmatic dependent launch, kernels/pdl.cuh): the kernel before it may then let it start before its own
  // wait, so that the weight streams in beside that kernel's wait rather than its work. False where unknown.
  virtual bool decode_loads_weight_before_input(int64_t rows, at::ScalarType dtype) const {
    (void)rows, (void)dtype;
    return false;
  }
  // The weight this layer computes with, as float32 [out, in] on the CPU: the format's CPU
  // reference (quantized formats return their dequantized values, not the original weight).
  virtual at::Tensor dequantize() const = 0;
  // Bytes the layer holds on its device: packed weights, scales, zeros, codebooks, bias.
  virtual int64_t weight_bytes() const = 0;
  // Bytes one forward pass with a single token must read from memory (weights + metadata + bias);
  // the numerator of the decode bandwidth floor. Equal to weight_bytes() for every format so far.
  virtual int64_t bytes_read_per_token() const { return weight_bytes(); }
  virtual std::string format_name() const = 0;

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }

 private:
  int64_t in_features_;
  int64_t out_features_;
};

using LinearPtr = std::unique_ptr<Linear>;

// Runs several layers that share an input and concatenates their outputs along the last dim:
// the generic way to fuse q/k/v (or gate/up) when a format cannot merge its packed tensors.
class ConcatLinear final : public Linear {
 public:
  explicit ConcatLinear(std::vector<LinearPtr> parts);
  at::Tensor forward(const at::Tensor& x) const override;
  void prepare(int64_t rows) const override;  // each part's
  at::Tensor dequantize() const override;
  int64_t weight_bytes() const override;
  std::string format_name() const override;

 private:
  std::vector<LinearPtr> parts_;
};

}  // namespace qb::quant
