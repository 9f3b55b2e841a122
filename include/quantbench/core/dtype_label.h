// The names the CLI and the records use for compute dtypes, one definition for the builder, the
// benchmark and the perplexity records.
#pragma once

#include <c10/core/ScalarType.h>

#include <string>

namespace qb {

at::ScalarType parse_compute_dtype(const std::string& name);  // fp32 | fp16 | bf16, else kInvalidInput
const char* dtype_label(at::ScalarType type);                  // "fp32" | "fp16" | "bf16" | "other"

}  // namespace qb
