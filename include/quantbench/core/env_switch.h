// The QB_* environment switches (README, "Environment switches": A/B runs and diagnostics) parse through these, so
// that every switch reads its variable the same way. Callers read a switch once (a function-local static): a run's
// switches do not change while it runs. Header-only: the kernels' host code uses it too.
#pragma once

#include <climits>
#include <cstdlib>
#include <cstring>

namespace qb {

// Whether `name` is set to exactly `value`.
inline bool env_equals(const char* name, const char* value) {
  const char* v = std::getenv(name);
  return v != nullptr && std::strcmp(v, value) == 0;
}

// A switch that is on unless set to "0" (the default-on features' A/B: QB_PDL=0, QB_Q4_ABSMAX16=0, ...).
inline bool env_on_unless_zero(const char* name) { return !env_equals(name, "0"); }

// Whether `name` is unset or set to `value` (a policy switch's default: QB_Q4_WGMMA unset or "auto").
inline bool env_unset_or(const char* name, const char* value) {
  return std::getenv(name) == nullptr || env_equals(name, value);
}

// An integer switch: its value when set to a whole decimal number >= min_value, else `fallback`.
inline int env_int(const char* name, int fallback, int min_value = INT_MIN) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (*end != '\0' || n < min_value || n > INT_MAX) return fallback;
  return static_cast<int>(n);
}

}  // namespace qb
