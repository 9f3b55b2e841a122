#include "pattern.h"

#include "json_fields.h"

namespace qb::tok {
namespace {

std::vector<PatternSpan> tile(std::string_view text, const std::vector<ByteSpan>& matches) {
  std::vector<PatternSpan> spans;
  if (text.empty()) {
    spans.push_back({0, 0, false});
    return spans;
  }
  spans.reserve(matches.size() * 2 + 1);
  size_t previous = 0;
  for (const ByteSpan& m : matches) {
    if (previous != m.begin) spans.push_back({previous, m.begin, false});
    spans.push_back({m.begin, m.end, true});
    previous = m.end;
  }
  if (previous != text.size()) spans.push_back({previous, text.size(), false});
  return spans;
}

}  // namespace

Pattern Pattern::literal(std::string text) {
  Pattern pattern;
  if (text.empty()) {
    // HF compiles the escaped literal; an empty one matches the empty string everywhere.
    pattern.regex_ = std::make_shared<const OnigRegex>(std::string());
  }
  pattern.literal_ = std::move(text);
  return pattern;
}

Pattern Pattern::regex(const std::string& source) {
  Pattern pattern;
  pattern.regex_ = std::make_shared<const OnigRegex>(source);
  return pattern;
}

Pattern Pattern::from_json(const Json& pattern, const std::string& where) {
  QB_CHECK(pattern.is_object() && pattern.size() == 1, kInvalidInput,
           "{}: pattern must be {{\"String\": ..}} or {{\"Regex\": ..}}, got {}", where, brief(pattern));
  if (pattern.contains("String")) return literal(string_field(pattern, "String", where));
  if (pattern.contains("Regex")) {
    try {
      return regex(string_field(pattern, "Regex", where));
    } catch (const Error& error) {
      throw Error(error.kind(), where + ": " + error.what());
    }
  }
  fail(ErrorKind::kUnsupported, "{}: pattern kind {} is not supported (String, Regex)", where, brief(pattern));
}

std::vector<PatternSpan> Pattern::find_matches(std::string_view text) const {
  if (regex_ != nullptr) return tile(text, regex_->find_all(text));
  std::vector<ByteSpan> matches;
  size_t from = 0;
  while (true) {
    const size_t at = text.find(literal_, from);
    if (at == std::string_view::npos) break;
    matches.push_back({at, at + literal_.size()});
    from = at + literal_.size();
  }
  return tile(text, matches);
}

std::string Pattern::replace_all(std::string_view text, std::string_view content) const {
  if (regex_ == nullptr && text.find(literal_) == std::string_view::npos) return std::string(text);
  std::string out;
  out.reserve(text.size());
  for (const PatternSpan& span : find_matches(text)) {
    if (span.is_match) {
      out.append(content);
    } else {
      out.append(text.substr(span.begin, span.end - span.begin));
    }
  }
  return out;
}

}  // namespace qb::tok
