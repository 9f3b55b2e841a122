#include "quantbench/core/error.h"

namespace qb {

const char* error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidInput: return "invalid_input";
    case ErrorKind::kNotFound: return "not_found";
    case ErrorKind::kUnsupported: return "unsupported";
    case ErrorKind::kOutOfMemory: return "out_of_memory";
    case ErrorKind::kDevice: return "device";
    case ErrorKind::kInternal: return "internal";
  }
  return "unknown";
}

}  // namespace qb
