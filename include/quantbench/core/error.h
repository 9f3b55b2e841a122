// Errors carry context: the file, tensor, flag or layer at fault, and what is wrong with it.
// Library code throws qb::Error; the CLI prints what() as one line and exits non-zero; a sweep
// records it as the failed run's result and goes on.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace qb {

// What kind of failure, so that callers (the sweep, the benchmark loop) can react without
// parsing messages: an out-of-memory run is recorded and the next one starts.
enum class ErrorKind {
  kInvalidInput,   // malformed file, bad flag, shape a format cannot take
  kNotFound,       // model, file or tensor absent
  kUnsupported,    // architecture, dtype or format variant we do not implement
  kOutOfMemory,    // device allocation failed
  kDevice,         // CUDA / driver failure
  kInternal,       // broken invariant: a bug in quantbench
};

const char* error_kind_name(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

template <typename... Args>
[[noreturn]] void fail(ErrorKind kind, fmt::format_string<Args...> format, Args&&... args) {
  throw Error(kind, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace qb

// QB_CHECK(cond, kind, "fmt", args...): a precondition on input; the message must name the culprit.
#define QB_CHECK(cond, kind, ...)                  \
  do {                                             \
    if (!(cond)) ::qb::fail(::qb::ErrorKind::kind, __VA_ARGS__); \
  } while (0)
