// Private to src/quant: the kernels' gated epilogue for a Linear::forward_gated activation.
#pragma once

#ifdef QB_HAVE_CUDA
#include "quantbench/kernels/gated_epilogue.h"
#include "quantbench/quant/linear.h"

namespace qb::quant {

inline kernels::GatedEpilogue gated_epilogue(GateActivation act) {
  kernels::GatedEpilogue e;
  e.on = true;
  switch (act) {
    case GateActivation::kSilu: e.act = kernels::ActType::kSilu; break;
    case GateActivation::kGeluTanh: e.act = kernels::ActType::kGeluTanh; break;
    case GateActivation::kGeluErf: e.act = kernels::ActType::kGeluErf; break;
    case GateActivation::kRelu: e.act = kernels::ActType::kRelu; break;
  }
  return e;
}

}  // namespace qb::quant
#endif
