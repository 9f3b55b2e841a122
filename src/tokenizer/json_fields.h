// Typed reads of tokenizer.json fields; a missing or mistyped field throws kInvalidInput naming `where`
// (the file and the component, e.g. "tokenizer.json: pre_tokenizer.Split").
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "quantbench/core/error.h"

namespace qb::tok {

using Json = nlohmann::json;

// A value as it appears in the file, cut short for error messages.
inline std::string brief(const Json& value) {
  std::string text = value.dump();
  if (text.size() <= 80) return text;
  size_t cut = 77;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // whole characters only
  return text.substr(0, cut) + "...";
}

inline const Json& field(const Json& object, const char* key, const std::string& where) {
  QB_CHECK(object.is_object() && object.contains(key), kInvalidInput, "{}: missing field '{}'", where, key);
  return object.at(key);
}

inline std::string string_field(const Json& object, const char* key, const std::string& where) {
  const Json& value = field(object, key, where);
  QB_CHECK(value.is_string(), kInvalidInput, "{}: field '{}' is not a string ({})", where, key, brief(value));
  return value.get<std::string>();
}

// Absent or null gives `fallback`.
inline bool bool_field_or(const Json& object, const char* key, bool fallback, const std::string& where) {
  if (!object.is_object() || !object.contains(key) || object.at(key).is_null()) return fallback;
  const Json& value = object.at(key);
  QB_CHECK(value.is_boolean(), kInvalidInput, "{}: field '{}' is not a boolean ({})", where, key, brief(value));
  return value.get<bool>();
}

inline std::string string_field_or(const Json& object, const char* key, const std::string& fallback,
                                   const std::string& where) {
  if (!object.is_object() || !object.contains(key) || object.at(key).is_null()) return fallback;
  return string_field(object, key, where);
}

inline int64_t int_field(const Json& object, const char* key, const std::string& where) {
  const Json& value = field(object, key, where);
  QB_CHECK(value.is_number_integer(), kInvalidInput, "{}: field '{}' is not an integer ({})", where, key,
           brief(value));
  return value.get<int64_t>();
}

// The component's "type" tag.
inline std::string type_of(const Json& component, const std::string& where) {
  QB_CHECK(component.is_object(), kInvalidInput, "{}: expected an object, got {}", where, brief(component));
  return string_field(component, "type", where);
}

}  // namespace qb::tok
