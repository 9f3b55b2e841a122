#include "post_processor.h"

#include "json_fields.h"

namespace qb::tok {
namespace {

// Fixed ids before and after the sequence: what every supported single-sequence template reduces to.
class WrapProcessor final : public PostProcessor {
 public:
  WrapProcessor(std::vector<int32_t> before, std::vector<int32_t> after)
      : before_(std::move(before)), after_(std::move(after)) {}
  std::vector<int32_t> process(std::vector<int32_t> ids) const override {
    if (before_.empty() && after_.empty()) return ids;
    std::vector<int32_t> out;
    out.reserve(before_.size() + ids.size() + after_.size());
    out.insert(out.end(), before_.begin(), before_.end());
    out.insert(out.end(), ids.begin(), ids.end());
    out.insert(out.end(), after_.begin(), after_.end());
    return out;
  }
  std::optional<int32_t> leading_special_id() const override {
    if (before_.empty()) return std::nullopt;
    return before_.front();
  }
  std::optional<int32_t> trailing_special_id() const override {
    if (after_.empty()) return std::nullopt;
    return after_.back();
  }

 private:
  std::vector<int32_t> before_;
  std::vector<int32_t> after_;
};

class SequenceProcessor final : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> steps) : steps_(std::move(steps)) {}
  std::vector<int32_t> process(std::vector<int32_t> ids) const override {
    for (const auto& step : steps_) ids = step->process(std::move(ids));
    return ids;
  }
  std::optional<int32_t> leading_special_id() const override {
    for (const auto& step : steps_) {
      if (auto id = step->leading_special_id()) return id;
    }
    return std::nullopt;
  }
  std::optional<int32_t> trailing_special_id() const override {
    for (auto it = steps_.rbegin(); it != steps_.rend(); ++it) {
      if (auto id = (*it)->trailing_special_id()) return id;
    }
    return std::nullopt;
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

// {"single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}], "special_tokens": {"<s>":
// {"ids": [1]}}}: the special tokens' ids before and after the one sequence, A.
std::unique_ptr<PostProcessor> make_template(const Json& config, const std::string& at) {
  const Json& single = field(config, "single", at);
  QB_CHECK(single.is_array(), kInvalidInput, "{}: 'single' is not a list", at);
  const Json& specials = field(config, "special_tokens", at);
  std::vector<int32_t> before, after;
  bool seen_sequence = false;
  for (const Json& item : single) {
    if (item.is_object() && item.contains("Sequence")) {
      const std::string id = string_field(item.at("Sequence"), "id", at + ".single");
      QB_CHECK(id == "A", kInvalidInput, "{}: the single template uses sequence '{}' (only A exists)", at, id);
      QB_CHECK(!seen_sequence, kUnsupported, "{}: the single template repeats the sequence", at);
      seen_sequence = true;
      continue;
    }
    QB_CHECK(item.is_object() && item.contains("SpecialToken"), kInvalidInput,
             "{}: template item {} is neither Sequence nor SpecialToken", at, brief(item));
    const std::string name = string_field(item.at("SpecialToken"), "id", at + ".single");
    QB_CHECK(specials.is_object() && specials.contains(name), kInvalidInput,
             "{}: special token '{}' used by the template is not in special_tokens", at, name);
    const Json& ids = field(specials.at(name), "ids", at + ".special_tokens." + name);
    QB_CHECK(ids.is_array(), kInvalidInput, "{}: special_tokens.{}.ids is not a list", at, name);
    for (const Json& id : ids) {
      QB_CHECK(id.is_number_integer(), kInvalidInput, "{}: special_tokens.{}.ids holds {}", at, name, brief(id));
      (seen_sequence ? after : before).push_back(id.get<int32_t>());
    }
  }
  QB_CHECK(seen_sequence, kInvalidInput, "{}: the single template has no $A", at);
  return std::make_unique<WrapProcessor>(std::move(before), std::move(after));
}

// Roberta/Bert store ["<s>", 0]-style pairs for cls and sep.
int32_t token_pair_id(const Json& config, const char* key, const std::string& at) {
  const Json& pair = field(config, key, at);
  QB_CHECK(pair.is_array() && pair.size() == 2 && pair[1].is_number_integer(), kInvalidInput,
           "{}: '{}' must be [token, id], got {}", at, key, brief(pair));
  return pair[1].get<int32_t>();
}

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const Json& config, const std::string& where) {
  if (config.is_null()) return nullptr;
  const std::string at = where + ": post_processor";
  const std::string type = type_of(config, at);
  const std::string here = at + "." + type;
  if (type == "TemplateProcessing") return make_template(config, here);
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    return std::make_unique<WrapProcessor>(std::vector<int32_t>{token_pair_id(config, "cls", here)},
                                           std::vector<int32_t>{token_pair_id(config, "sep", here)});
  }
  if (type == "ByteLevel") return std::make_unique<WrapProcessor>(std::vector<int32_t>{}, std::vector<int32_t>{});
  if (type == "Sequence") {
    const Json& list = field(config, "processors", here);
    QB_CHECK(list.is_array(), kInvalidInput, "{}: 'processors' is not a list", here);
    std::vector<std::unique_ptr<PostProcessor>> steps;
    for (const Json& step : list) steps.push_back(make_post_processor(step, where));
    return std::make_unique<SequenceProcessor>(std::move(steps));
  }
  fail(ErrorKind::kUnsupported,
       "{}: post-processor type '{}' is not supported (TemplateProcessing, RobertaProcessing, BertProcessing, "
       "ByteLevel, Sequence)",
       where, type);
}

}  // namespace qb::tok
