#include "quantbench/core/dtype_label.h"

#include "quantbench/core/error.h"

namespace qb {

at::ScalarType parse_compute_dtype(const std::string& name) {
  if (name == "fp32") return at::kFloat;
  if (name == "fp16") return at::kHalf;
  if (name == "bf16") return at::kBFloat16;
  fail(ErrorKind::kInvalidInput, "--compute-dtype '{}' is not one of auto, fp32, fp16, bf16", name);
}

const char* dtype_label(at::ScalarType type) {
  return type == at::kFloat ? "fp32" : type == at::kHalf ? "fp16" : type == at::kBFloat16 ? "bf16" : "other";
}

}  // namespace qb
