#include "normalizer.h"

#include <vector>

#include "byte_level.h"
#include "json_fields.h"
#include "pattern.h"
#include "unicode_nfc.h"
#include "utf8.h"

namespace qb::tok {
namespace {

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  void normalize(std::string& text) const override {
    for (const auto& step : steps_) step->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

// Llama-2's "▁" before the text; an empty piece stays empty.
class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(Pattern pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(std::string& text) const override { text = pattern_.replace_all(text, content_); }

 private:
  Pattern pattern_;
  std::string content_;
};

class NfcNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text) const override { text = to_nfc(text); }
};

class NfdNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text) const override { text = to_nfd(text); }
};

// Removes Unicode whitespace from the left and/or right end.
class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override {
    size_t begin = 0;
    size_t end = text.size();
    if (left_) {
      while (begin < end) {
        size_t next = begin;
        if (!is_unicode_whitespace(next_code_point(text, next))) break;
        begin = next;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        size_t probe = start;
        if (!is_unicode_whitespace(next_code_point(text, probe))) break;
        end = start;
      }
    }
    text = text.substr(begin, end - begin);
  }

 private:
  bool left_;
  bool right_;
};

class ByteLevelNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text) const override { text = bytes_to_chars(text); }
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const Json& config, const std::string& where) {
  if (config.is_null()) return nullptr;
  const std::string at = where + ": normalizer";
  const std::string type = type_of(config, at);
  if (type == "Sequence") {
    const Json& list = field(config, "normalizers", at + ".Sequence");
    QB_CHECK(list.is_array(), kInvalidInput, "{}.Sequence: 'normalizers' is not a list", at);
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (const Json& step : list) steps.push_back(make_normalizer(step, where));
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(string_field(config, "prepend", at + ".Prepend"));
  if (type == "Replace") {
    return std::make_unique<ReplaceNormalizer>(Pattern::from_json(field(config, "pattern", at + ".Replace"),
                                                                   at + ".Replace"),
                                               string_field(config, "content", at + ".Replace"));
  }
  if (type == "NFC") return std::make_unique<NfcNormalizer>();
  if (type == "NFD") return std::make_unique<NfdNormalizer>();
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(bool_field_or(config, "strip_left", true, at + ".Strip"),
                                             bool_field_or(config, "strip_right", true, at + ".Strip"));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelNormalizer>();
  fail(ErrorKind::kUnsupported,
       "{}: normalizer type '{}' is not supported (Sequence, Prepend, Replace, NFC, NFD, Strip, ByteLevel)", where,
       type);
}

}  // namespace qb::tok
