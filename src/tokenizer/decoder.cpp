#include "decoder.h"

#include "byte_level.h"
#include "json_fields.h"
#include "pattern.h"
#include "utf8.h"

namespace qb::tok {
namespace {

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& step : steps_) step->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

// Characters back to bytes; a token holding any character outside the byte map contributes its own UTF-8
// bytes. All bytes are joined and read as UTF-8 with U+FFFD for ill-formed parts: one string out.
class ByteLevelDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    std::string token_bytes;
    for (const std::string& token : tokens) {
      token_bytes.clear();
      bool all_mapped = true;
      size_t pos = 0;
      while (pos < token.size()) {
        const auto byte = char_to_byte(next_code_point(token, pos));
        if (!byte) {
          all_mapped = false;
          break;
        }
        token_bytes.push_back(static_cast<char>(*byte));
      }
      bytes.append(all_mapped ? token_bytes : token);
    }
    tokens.assign(1, utf8_lossy(bytes));
  }
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(Pattern pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) token = pattern_.replace_all(token, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

// Runs of <0xNN> tokens become the text their bytes spell, or one U+FFFD per byte when they are not
// valid UTF-8.
class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string pending_bytes;
    auto flush = [&] {
      if (pending_bytes.empty()) return;
      if (find_invalid_utf8(pending_bytes) == std::string::npos) {
        out.push_back(pending_bytes);
      } else {
        for (size_t i = 0; i < pending_bytes.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
      }
      pending_bytes.clear();
    };
    for (std::string& token : tokens) {
      if (const int byte = byte_token_value(token); byte >= 0) {
        pending_bytes.push_back(static_cast<char>(byte));
        continue;
      }
      flush();
      out.push_back(std::move(token));
    }
    flush();
    tokens = std::move(out);
  }

 private:
  // "<0xNN>" (hex digits either case, as u8::from_str_radix takes them) -> NN, else -1.
  static int byte_token_value(const std::string& token) {
    if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return -1;
    int value = 0;
    for (int k = 3; k < 5; ++k) {
      const char c = token[k];
      int digit;
      if (c >= '0' && c <= '9') {
        digit = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        digit = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        digit = c - 'A' + 10;
      } else {
        return -1;
      }
      value = value * 16 + digit;
    }
    return value;
  }
};

class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string joined;
    for (const std::string& token : tokens) joined += token;
    tokens.assign(1, std::move(joined));
  }
};

// Removes up to `start` leading and `stop` trailing copies of one character from each token.
class StripDecoder final : public Decoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) {
      std::vector<size_t> starts;  // byte offset of each character
      for (size_t pos = 0; pos < token.size();) {
        starts.push_back(pos);
        next_code_point(token, pos);
      }
      auto char_at = [&](size_t i) {
        size_t pos = starts[i];
        return next_code_point(token, pos);
      };
      size_t first = 0;
      while (first < start_ && first < starts.size() && char_at(first) == content_) ++first;
      size_t last = starts.size();
      for (size_t i = 0; i < stop_ && last > 0 && char_at(last - 1) == content_; ++i) --last;
      if (last < first) last = first;  // HF slices [first, last); both cuts may claim the same character
      const size_t begin_byte = first < starts.size() ? starts[first] : token.size();
      const size_t end_byte = last < starts.size() ? starts[last] : token.size();
      token = token.substr(begin_byte, end_byte - begin_byte);
    }
  }

 private:
  char32_t content_;
  size_t start_;
  size_t stop_;
};

// The replacement character becomes a space, except in the first token, where it is dropped unless the
// prepend scheme is "never".
class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool drop_in_first) : replacement_(std::move(replacement)),
                                                                   drop_in_first_(drop_in_first) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      const std::string& token = tokens[i];
      std::string out;
      out.reserve(token.size());
      size_t pos = 0;
      while (pos < token.size()) {
        if (token.compare(pos, replacement_.size(), replacement_) == 0) {
          if (!(i == 0 && drop_in_first_)) out.push_back(' ');
          pos += replacement_.size();
          continue;
        }
        const size_t begin = pos;
        next_code_point(token, pos);
        out.append(token, begin, pos - begin);
      }
      tokens[i] = std::move(out);
    }
  }

 private:
  std::string replacement_;
  bool drop_in_first_;
};

char32_t single_character(const std::string& text, const std::string& at) {
  size_t pos = 0;
  QB_CHECK(!text.empty(), kInvalidInput, "{}: expected one character, got an empty string", at);
  const char32_t cp = next_code_point(text, pos);
  QB_CHECK(pos == text.size(), kInvalidInput, "{}: expected one character, got '{}'", at, text);
  return cp;
}

size_t count_field(const Json& config, const char* key, const std::string& at) {
  const int64_t value = int_field(config, key, at);
  QB_CHECK(value >= 0, kInvalidInput, "{}: '{}' is negative ({})", at, key, value);
  return static_cast<size_t>(value);
}

}  // namespace

std::unique_ptr<Decoder> make_decoder(const Json& config, const std::string& where) {
  if (config.is_null()) return nullptr;
  const std::string at = where + ": decoder";
  const std::string type = type_of(config, at);
  const std::string here = at + "." + type;
  if (type == "Sequence") {
    const Json& list = field(config, "decoders", here);
    QB_CHECK(list.is_array(), kInvalidInput, "{}: 'decoders' is not a list", here);
    std::vector<std::unique_ptr<Decoder>> steps;
    for (const Json& step : list) steps.push_back(make_decoder(step, where));
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Replace") {
    return std::make_unique<ReplaceDecoder>(Pattern::from_json(field(config, "pattern", here), here),
                                            string_field(config, "content", here));
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    return std::make_unique<StripDecoder>(single_character(string_field(config, "content", here), here),
                                          count_field(config, "start", here), count_field(config, "stop", here));
  }
  if (type == "Metaspace") {
    const std::string replacement = string_field(config, "replacement", here);
    single_character(replacement, here);
    // As the pre-tokenizer: prepend_scheme defaults to always; add_prefix_space false needs never.
    const std::string scheme = string_field_or(config, "prepend_scheme", "always", here);
    QB_CHECK(scheme == "first" || scheme == "always" || scheme == "never", kInvalidInput,
             "{}: prepend_scheme '{}' is not first, always or never", here, scheme);
    QB_CHECK(bool_field_or(config, "add_prefix_space", true, here) || scheme == "never", kInvalidInput,
             "{}: add_prefix_space false contradicts prepend_scheme '{}'", here, scheme);
    return std::make_unique<MetaspaceDecoder>(replacement, scheme != "never");
  }
  fail(ErrorKind::kUnsupported,
       "{}: decoder type '{}' is not supported (ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, "
       "Sequence)",
       where, type);
}

std::unique_ptr<Decoder> make_byte_level_decoder() { return std::make_unique<ByteLevelDecoder>(); }

}  // namespace qb::tok
