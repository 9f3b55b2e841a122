#include "test_support.h"

#include <ATen/Context.h>

namespace qb::test {

// True only when the CUDA hooks load and at least one device is present.
bool cuda_available() { return at::hasCUDA(); }

}  // namespace qb::test
