// Host half of quantbench/kernels/row_norm.h (the device half is kernels/row_norm.cuh).
#include <cstdint>

#include "quantbench/kernels/row_norm.h"

namespace qb::kernels {

bool row_norm_supported(const RowNorm& norm) {
  const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  return norm.residual != nullptr && norm.weight != nullptr && norm.hidden > 0 && norm.hidden % 8 == 0 &&
         norm.hidden <= kRowNormMaxHidden && aligned(norm.residual) && aligned(norm.weight) &&
         (norm.delta == nullptr ||
          (aligned(norm.delta) && norm.residual_out != nullptr && aligned(norm.residual_out) &&
           norm.residual_out != norm.residual && norm.residual_out != norm.delta));
}

}  // namespace qb::kernels
