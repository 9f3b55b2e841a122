#include "l2_hints.h"

#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "quantbench/core/env_switch.h"
#include "quantbench/core/error.h"

#ifdef QB_HAVE_CUDA
#include "kernel_bridge.h"
#include "quantbench/kernels/l2_hint.h"
#endif

namespace qb::model {
namespace {

enum HintBit : unsigned { kOut = 1, kQkv = 2, kGate = 4, kNextQkv = 8 };

unsigned hint_mask_from_env() {
  const char* value = std::getenv("QB_L2_HINT");
  if (value == nullptr || std::string(value).empty() || std::string(value) == "0") return 0;
  unsigned mask = 0;
  std::stringstream list(value);
  std::string name;
  while (std::getline(list, name, ',')) {
    if (name == "o") mask |= kOut;
    else if (name == "qkv") mask |= kQkv;
    else if (name == "gate") mask |= kGate;
    else if (name == "nextqkv") mask |= kNextQkv;
    else fail(ErrorKind::kInvalidInput, "QB_L2_HINT: unknown hint '{}' (o, qkv, gate, nextqkv)", name);
  }
  return mask;
}

}  // namespace

DecodeL2Hints::DecodeL2Hints() {
#ifdef QB_HAVE_CUDA
  mask_ = hint_mask_from_env();
  max_bytes_ = int64_t{env_int("QB_L2_HINT_MB", 32, 1)} << 20;
  if (mask_ != 0) prefetcher_ = std::make_unique<kernels::L2Prefetcher>();
#endif
}

DecodeL2Hints::~DecodeL2Hints() = default;

void DecodeL2Hints::fork(std::initializer_list<const quant::Linear*> linears) {
#ifdef QB_HAVE_CUDA
  std::vector<kernels::ByteRange> ranges;
  for (const quant::Linear* linear : linears) {
    if (linear == nullptr) continue;
    for (const at::Tensor& t : linear->weight_tensors()) {
      if (t.defined() && t.is_cuda()) ranges.push_back({t.data_ptr(), static_cast<int64_t>(t.nbytes())});
    }
  }
  if (!ranges.empty()) prefetcher_->fork(current_stream(), ranges, max_bytes_);
#else
  (void)linears;
#endif
}

void DecodeL2Hints::before_attention(const DecoderLayer& layer) {
  if ((mask_ & (kOut | kQkv)) == 0) return;
  fork({(mask_ & kQkv) ? &layer.attention->qkv() : nullptr, (mask_ & kOut) ? &layer.attention->out() : nullptr});
}

void DecodeL2Hints::before_mlp(const DecoderLayer& layer, const DecoderLayer* next) {
  if ((mask_ & (kGate | kNextQkv)) == 0) return;
  if (mask_ & kGate) fork({&layer.mlp->in()});
  if ((mask_ & kNextQkv) && next != nullptr) fork({&next->attention->qkv()});
}

void DecodeL2Hints::join() {
#ifdef QB_HAVE_CUDA
  if (prefetcher_ != nullptr) prefetcher_->join(current_stream());
#endif
}

}  // namespace qb::model
