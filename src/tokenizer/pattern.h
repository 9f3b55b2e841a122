// What Split, Replace and the Metaspace split look for in a text: a literal string or an Oniguruma regex.
// find_matches follows HuggingFace's Pattern::find_matches: the text is tiled into spans, each marked as a
// match or as the text between matches; an empty text is one empty non-match.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "onig_regex.h"

namespace qb::tok {

struct PatternSpan {
  size_t begin;
  size_t end;
  bool is_match;
};

class Pattern {
 public:
  static Pattern literal(std::string text);
  static Pattern regex(const std::string& pattern);  // throws kInvalidInput when it does not compile
  // tokenizer.json's {"String": "..."} or {"Regex": "..."}.
  static Pattern from_json(const nlohmann::json& pattern, const std::string& where);

  std::vector<PatternSpan> find_matches(std::string_view text) const;
  // Every match replaced by `content` (NormalizedString::replace and the Replace decoder).
  std::string replace_all(std::string_view text, std::string_view content) const;

 private:
  std::string literal_;
  std::shared_ptr<const OnigRegex> regex_;  // null: match literal_
};

}  // namespace qb::tok
