#include "pretokenizer.h"

#include "byte_level.h"
#include "json_fields.h"
#include "pattern.h"
#include "split_behavior.h"
#include "utf8.h"

namespace qb::tok {
namespace {

// GPT-2's word pattern, as HuggingFace's ByteLevel pre-tokenizer compiles it.
const Pattern& gpt2_pattern() {
  static const Pattern pattern = Pattern::regex(
      R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)");
  return pattern;
}

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& step : steps_) step->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

// Optionally a leading space and GPT-2's regex split, then every byte replaced by its printable character.
class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, [&](Piece&& piece, std::vector<Piece>& out) {
      if (add_prefix_space_ && piece.text[0] != ' ') piece.text.insert(0, " ");
      if (!use_regex_) {
        piece.text = bytes_to_chars(piece.text);
        out.push_back(std::move(piece));
        return;
      }
      const std::vector<PatternSpan> spans = gpt2_pattern().find_matches(piece.text);
      for (const PatternSpan& span : spans) {
        Piece word;
        word.text = bytes_to_chars(std::string_view(piece.text).substr(span.begin, span.end - span.begin));
        word.starts_at_origin = piece.starts_at_origin && span.begin == 0;
        out.push_back(std::move(word));
      }
    });
  }

 private:
  bool add_prefix_space_;
  bool use_regex_;
};

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(Pattern pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, [&](Piece&& piece, std::vector<Piece>& out) {
      std::vector<PatternSpan> spans = pattern_.find_matches(piece.text);
      if (invert_) {
        for (PatternSpan& span : spans) span.is_match = !span.is_match;
      }
      split_at_spans(std::move(piece), spans, behavior_, out);
    });
  }

 private:
  Pattern pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

enum class PrependScheme { kFirst, kAlways, kNever };

// Spaces become the replacement ("▁"), which is also prepended per the scheme; with split, each "▁" starts
// a new word.
class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split),
        space_(Pattern::literal(" ")), replacement_pattern_(Pattern::literal(replacement_)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, [&](Piece&& piece, std::vector<Piece>& out) {
      piece.text = space_.replace_all(piece.text, replacement_);
      const bool has_prefix = piece.text.compare(0, replacement_.size(), replacement_) == 0;
      if (!has_prefix && (scheme_ == PrependScheme::kAlways ||
                          (scheme_ == PrependScheme::kFirst && piece.starts_at_origin))) {
        piece.text.insert(0, replacement_);
      }
      if (!split_) {
        out.push_back(std::move(piece));
        return;
      }
      const std::vector<PatternSpan> spans = replacement_pattern_.find_matches(piece.text);
      split_at_spans(std::move(piece), spans, SplitBehavior::kMergedWithNext, out);
    });
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
  Pattern space_;
  Pattern replacement_pattern_;
};

// Cuts at single characters a predicate picks (HF's `impl Pattern for Fn(char) -> bool`): each such
// character is its own match.
template <typename Predicate>
std::vector<PatternSpan> char_matches(std::string_view text, Predicate&& is_delimiter) {
  std::vector<PatternSpan> spans;
  if (text.empty()) {
    spans.push_back({0, 0, false});
    return spans;
  }
  size_t last = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t begin = pos;
    const char32_t cp = next_code_point(text, pos);
    if (!is_delimiter(cp)) continue;
    if (last < begin) spans.push_back({last, begin, false});
    spans.push_back({begin, pos, true});
    last = pos;
  }
  if (last < text.size()) spans.push_back({last, text.size(), false});
  return spans;
}

class WhitespaceSplitPreTokenizer final : public PreTokenizer {
 public:
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, [](Piece&& piece, std::vector<Piece>& out) {
      const auto spans = char_matches(piece.text, is_unicode_whitespace);
      split_at_spans(std::move(piece), spans, SplitBehavior::kRemoved, out);
    });
  }
};

class CharDelimiterPreTokenizer final : public PreTokenizer {
 public:
  explicit CharDelimiterPreTokenizer(char32_t delimiter) : delimiter_(delimiter) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, [&](Piece&& piece, std::vector<Piece>& out) {
      const auto spans = char_matches(piece.text, [&](char32_t cp) { return cp == delimiter_; });
      split_at_spans(std::move(piece), spans, SplitBehavior::kRemoved, out);
    });
  }

 private:
  char32_t delimiter_;
};

std::unique_ptr<PreTokenizer> make_metaspace(const Json& config, const std::string& at) {
  const std::string replacement = string_field(config, "replacement", at);
  size_t pos = 0;
  QB_CHECK(!replacement.empty() && (next_code_point(replacement, pos), pos == replacement.size()), kInvalidInput,
           "{}: replacement '{}' must be one character", at, replacement);
  // Files from before prepend_scheme carry add_prefix_space instead; HF accepts add_prefix_space false only
  // with prepend_scheme never (which an absent prepend_scheme, meaning always, is not).
  PrependScheme scheme = PrependScheme::kAlways;
  const std::string scheme_name = string_field_or(config, "prepend_scheme", "always", at);
  if (scheme_name == "first") {
    scheme = PrependScheme::kFirst;
  } else if (scheme_name == "never") {
    scheme = PrependScheme::kNever;
  } else {
    QB_CHECK(scheme_name == "always", kInvalidInput, "{}: prepend_scheme '{}' is not first, always or never", at,
             scheme_name);
  }
  QB_CHECK(bool_field_or(config, "add_prefix_space", true, at) || scheme == PrependScheme::kNever, kInvalidInput,
           "{}: add_prefix_space false contradicts prepend_scheme '{}'", at, scheme_name);
  return std::make_unique<MetaspacePreTokenizer>(replacement, scheme, bool_field_or(config, "split", true, at));
}

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const Json& config, const std::string& where) {
  if (config.is_null()) return nullptr;
  const std::string at = where + ": pre_tokenizer";
  const std::string type = type_of(config, at);
  const std::string here = at + "." + type;
  if (type == "Sequence") {
    const Json& list = field(config, "pretokenizers", here);
    QB_CHECK(list.is_array(), kInvalidInput, "{}: 'pretokenizers' is not a list", here);
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const Json& step : list) steps.push_back(make_pre_tokenizer(step, where));
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPreTokenizer>(bool_field_or(config, "add_prefix_space", true, here),
                                                   bool_field_or(config, "use_regex", true, here));
  }
  if (type == "Split") {
    return std::make_unique<SplitPreTokenizer>(Pattern::from_json(field(config, "pattern", here), here),
                                               parse_split_behavior(string_field(config, "behavior", here), here),
                                               bool_field_or(config, "invert", false, here));
  }
  if (type == "Metaspace") return make_metaspace(config, here);
  if (type == "Digits") {
    const bool individual = bool_field_or(config, "individual_digits", false, here);
    return std::make_unique<SplitPreTokenizer>(Pattern::regex(R"(\p{N})"),
                                               individual ? SplitBehavior::kIsolated : SplitBehavior::kContiguous,
                                               false);
  }
  if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplitPreTokenizer>();
  if (type == "Whitespace") {
    // HF compiles \w+|[^\w\s]+ with Rust's regex crate, whose \w is spelled out here for Oniguruma.
    return std::make_unique<SplitPreTokenizer>(
        Pattern::regex(R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]+)"
                       R"(|[^\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}\p{White_Space}]+)"),
        SplitBehavior::kRemoved, true);
  }
  if (type == "CharDelimiterSplit") {
    const std::string delimiter = string_field(config, "delimiter", here);
    size_t pos = 0;
    QB_CHECK(!delimiter.empty(), kInvalidInput, "{}: empty delimiter", here);
    const char32_t cp = next_code_point(delimiter, pos);
    QB_CHECK(pos == delimiter.size(), kInvalidInput, "{}: delimiter '{}' must be one character", here, delimiter);
    return std::make_unique<CharDelimiterPreTokenizer>(cp);
  }
  fail(ErrorKind::kUnsupported,
       "{}: pre-tokenizer type '{}' is not supported (ByteLevel, Split, Metaspace, Sequence, Digits, "
       "WhitespaceSplit, Whitespace, CharDelimiterSplit)",
       where, type);
}

std::unique_ptr<PreTokenizer> make_gpt2_pre_tokenizer() {
  return std::make_unique<ByteLevelPreTokenizer>(false, true);
}

}  // namespace qb::tok
