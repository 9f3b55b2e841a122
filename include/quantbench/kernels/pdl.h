// Whether the decode kernels are launched with programmatic dependent launch (kernels/pdl.cuh): on a
// GPU of compute capability 9.0 or newer unless QB_PDL=0 is set. Read once per process; results record it.
#pragma once

namespace qb::kernels {

bool pdl_enabled();

}  // namespace qb::kernels
