// The stages of one loaded tokenizer, in pipeline order, and the loaders that build them from files.
// Tokenizer (tokenizer.cpp) runs them; tokenizer_json.cpp and gpt2_files.cpp fill them.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "added_tokens.h"
#include "bpe_model.h"
#include "decoder.h"
#include "normalizer.h"
#include "post_processor.h"
#include "pretokenizer.h"

namespace qb::tok {

struct TokenizerParts {
  std::string source;  // the file(s) it came from, for messages
  std::unique_ptr<BpeModel> model;
  std::unique_ptr<Normalizer> normalizer;        // may be null
  std::unique_ptr<PreTokenizer> pre_tokenizer;   // may be null
  std::unique_ptr<PostProcessor> post_processor; // may be null
  std::unique_ptr<Decoder> decoder;              // may be null
  std::unique_ptr<AddedVocabulary> added_tokens;
  std::optional<int32_t> bos_token_id;
  std::optional<int32_t> eos_token_id;
};

TokenizerParts load_tokenizer_json(const std::string& path);
TokenizerParts load_gpt2_files(const std::string& encoder_json, const std::string& vocab_bpe);

bool is_regular_file(const std::string& path);
// The whole file; kNotFound naming `path` when it cannot be opened.
std::string read_file_text(const std::string& path);
// Parses `text` from `path`; kInvalidInput with the parser's message when it is not JSON.
nlohmann::json parse_json_text(const std::string& text, const std::string& path);

}  // namespace qb::tok
