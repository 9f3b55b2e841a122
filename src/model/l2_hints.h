// Which constant bytes a decode step asks L2 for ahead of use, and when (kernels/l2_hint.h says why). The model
// names layers, never formats: a layer's bytes are whatever its Linear::weight_tensors() lists.
//
// QB_L2_HINT, a comma list (unset or "0": no hints):
//   o       the layer's attention output projection, asked for before the layer's attention norm: its bytes
//           arrive while the norm, the qkv GEMV and decode attention run (DRAM mostly idle in the last two);
//   qkv     the layer's qkv projection, same fork;
//   gate    the first QB_L2_HINT_MB MiB of the MLP input projection, asked for before the MLP norm;
//   nextqkv the next layer's qkv projection, asked for before this layer's MLP norm.
// QB_L2_HINT_MB (default 32) caps one fork's bytes, so a hint never asks for more than L2 (50 MB on the H100) holds.
#pragma once

#include <cstdint>
#include <memory>

#include "quantbench/model/causal_lm.h"

namespace qb::kernels {
class L2Prefetcher;
}

namespace qb::model {

class DecodeL2Hints {
 public:
  DecodeL2Hints();
  ~DecodeL2Hints();
  bool enabled() const { return mask_ != 0; }
  void before_attention(const DecoderLayer& layer);
  void before_mlp(const DecoderLayer& layer, const DecoderLayer* next);
  // Joins the side branch into the current stream: once per forward pass, before a captured graph ends.
  void join();

 private:
  void fork(std::initializer_list<const quant::Linear*> linears);
  unsigned mask_ = 0;
  int64_t max_bytes_ = 0;
  std::unique_ptr<kernels::L2Prefetcher> prefetcher_;
};

}  // namespace qb::model
