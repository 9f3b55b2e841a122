// Pre-tokenizers: cut normalized pieces into the words the model tokenizes one by one (HF pre_tokenizers).
// Supported: ByteLevel (GPT-2's regex, add_prefix_space, use_regex), Split (String/Regex pattern, the five
// delimiter behaviours, invert), Metaspace (prepend_scheme first/always/never, split), Sequence, Digits,
// WhitespaceSplit, Whitespace, CharDelimiterSplit. Others are refused at load time with kUnsupported.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <vector>

#include "piece.h"

namespace qb::tok {

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Rewrites `pieces` in place; pieces holding an added token pass through untouched.
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

// `config` is tokenizer.json's "pre_tokenizer" value; null gives nullptr.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& config, const std::string& where);

// The pre-tokenizer GPT-2 ships: ByteLevel(add_prefix_space=false, use_regex=true).
std::unique_ptr<PreTokenizer> make_gpt2_pre_tokenizer();

}  // namespace qb::tok
