#include "test_support.h"

#include <ATen/Context.h>

namespace qb::test {

bool cuda_available() { return at::hasCUDA() && at::globalContext().getNumGPUs() > 0; }

}  // namespace qb::test
