#include "quantbench/model/kv_cache.h"

#include <ATen/ATen.h>

#include "quantbench/core/error.h"

namespace qb::model {

KvCache::KvCache(const ModelConfig& config, int64_t batch, int64_t capacity, at::ScalarType dtype, c10::Device device)
    : batch_(batch), capacity_(capacity) {
  QB_CHECK(batch > 0 && capacity > 0, kInvalidInput, "KV cache needs batch > 0 and capacity > 0 (got {} and {})",
           batch, capacity);
  if (config.sliding_window.has_value()) {
    QB_CHECK(capacity <= *config.sliding_window, kUnsupported,
             "{} positions exceed the model's sliding window of {}; sliding-window attention is not implemented",
             capacity, *config.sliding_window);
  }
  const auto options = at::TensorOptions().dtype(dtype).device(device);
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    keys_.push_back(at::zeros({batch, config.num_kv_heads, capacity, config.head_dim}, options));
    values_.push_back(at::zeros({batch, config.num_kv_heads, capacity, config.head_dim}, options));
  }
  bytes_per_position_ = 2 * config.num_layers * batch * config.num_kv_heads * config.head_dim *
                        static_cast<int64_t>(c10::elementSize(dtype));
}

int64_t KvCache::bytes() const { return bytes_per_position_ * capacity_; }
int64_t KvCache::bytes_read_for_length(int64_t length) const { return bytes_per_position_ * length; }

}  // namespace qb::model
