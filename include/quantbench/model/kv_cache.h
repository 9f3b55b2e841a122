// Preallocated key/value cache: per layer K and V of [batch, kv_heads, capacity, head_dim] in the
// compute dtype, sized once for prompt + generation so that decode never allocates and a captured
// graph sees fixed addresses.
#pragma once

#include <ATen/Tensor.h>

#include <vector>

#include "quantbench/io/model_config.h"

namespace qb::model {

class KvCache {
 public:
  KvCache(const ModelConfig& config, int64_t batch, int64_t capacity, at::ScalarType dtype, c10::Device device);
  at::Tensor& keys(int64_t layer) { return keys_[layer]; }
  at::Tensor& values(int64_t layer) { return values_[layer]; }
  int64_t batch() const { return batch_; }
  int64_t capacity() const { return capacity_; }
  int64_t bytes() const;
  // Bytes one decode step reads when attending over `length` cached positions (all layers, K and V).
  int64_t bytes_read_for_length(int64_t length) const;

 private:
  std::vector<at::Tensor> keys_;
  std::vector<at::Tensor> values_;
  int64_t batch_;
  int64_t capacity_;
  int64_t bytes_per_position_;  // all layers, K and V, the whole batch
};

}  // namespace qb::model
