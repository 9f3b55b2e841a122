// Post-processors: the special tokens wrapped around an encoded sequence when add_special_tokens is true
// (HF processors). Supported: TemplateProcessing (the "single" template), RobertaProcessing and
// BertProcessing (cls A sep), ByteLevel (ids unchanged; it only adjusts offsets) and Sequence of these.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qb::tok {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual std::vector<int32_t> process(std::vector<int32_t> ids) const = 0;
  // The first id the template puts before the sequence / the last it puts after, when there is one.
  virtual std::optional<int32_t> leading_special_id() const { return std::nullopt; }
  virtual std::optional<int32_t> trailing_special_id() const { return std::nullopt; }
};

// `config` is tokenizer.json's "post_processor" value; null gives nullptr.
std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& config, const std::string& where);

}  // namespace qb::tok
