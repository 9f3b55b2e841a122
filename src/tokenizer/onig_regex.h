// A compiled Oniguruma regex (the engine HuggingFace tokenizers uses, through the `onig` crate), owned RAII.
// Compiled as the crate's Regex::new does: UTF-8 encoding, ONIG_OPTION_NONE, ONIG_SYNTAX_DEFAULT (Oniguruma
// syntax: \p{L}, (?i:...), lookahead). Matching a shared regex from several threads is safe; each call has
// its own region.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

typedef struct re_pattern_buffer OnigRegexType;

namespace qb::tok {

struct ByteSpan {
  size_t begin;
  size_t end;
};

class OnigRegex {
 public:
  // Throws qb::Error kInvalidInput naming `pattern` and Oniguruma's message when it does not compile.
  explicit OnigRegex(const std::string& pattern);
  ~OnigRegex();
  OnigRegex(OnigRegex&& other) noexcept : regex_(std::exchange(other.regex_, nullptr)) {}
  OnigRegex& operator=(OnigRegex&& other) noexcept;
  OnigRegex(const OnigRegex&) = delete;
  OnigRegex& operator=(const OnigRegex&) = delete;

  // All matches left to right, as the onig crate's find_iter yields them: each search starts where the
  // previous match ended, and an empty match right at that end is skipped by moving one character on.
  std::vector<ByteSpan> find_all(std::string_view text) const;
  // The first match at or after byte `from`, or false.
  bool search(std::string_view text, size_t from, ByteSpan& match) const;

 private:
  OnigRegexType* regex_ = nullptr;
};

// `literal` with each regex meta character backslash-escaped (Rust regex::escape), so it compiles to itself
// (the Split/Replace String patterns, which HuggingFace escapes the same way before compiling).
std::string escape_regex(std::string_view literal);

}  // namespace qb::tok
