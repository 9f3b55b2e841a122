// The encode/decode pipeline over the loaded stages, as HuggingFace's TokenizerImpl runs it:
// encode: added tokens cut out (+ normalizer) -> pre-tokenizer -> BPE per word -> post-processor;
// decode: ids -> token strings (added tokens first) -> decoder chain -> concatenation.
#include "quantbench/tokenizer/tokenizer.h"

#include "quantbench/core/error.h"
#include "tokenizer_parts.h"
#include "utf8.h"

namespace qb::tok {

struct Tokenizer::Impl {
  TokenizerParts parts;
};

namespace {

// A template so that it need not name the private Tokenizer::Impl.
template <typename ImplPointer>
const TokenizerParts& parts_of(const ImplPointer& impl) {
  QB_CHECK(impl != nullptr, kInternal, "use of a moved-from Tokenizer");
  return impl->parts;
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::from_file(const std::string& tokenizer_json_path) {
  return Tokenizer(std::make_unique<Impl>(Impl{load_tokenizer_json(tokenizer_json_path)}));
}

Tokenizer Tokenizer::from_gpt2_files(const std::string& encoder_json, const std::string& vocab_bpe) {
  return Tokenizer(std::make_unique<Impl>(Impl{load_gpt2_files(encoder_json, vocab_bpe)}));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const TokenizerParts& parts = parts_of(impl_);
  const size_t bad = find_invalid_utf8(text);
  QB_CHECK(bad == std::string_view::npos, kInvalidInput,
           "tokenizer {}: the text to encode is not valid UTF-8 (byte 0x{:02X} at offset {})", parts.source,
           bad == std::string_view::npos ? 0 : static_cast<unsigned char>(text[bad]), bad);
  std::vector<Piece> pieces = parts.added_tokens->extract_and_normalize(text, parts.normalizer.get());
  if (parts.pre_tokenizer) parts.pre_tokenizer->pre_tokenize(pieces);
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 8);
  for (const Piece& piece : pieces) {
    if (piece.added_token_id >= 0) {
      ids.push_back(piece.added_token_id);
    } else {
      parts.model->tokenize(piece.text, ids);
    }
  }
  if (add_special_tokens && parts.post_processor) ids = parts.post_processor->process(std::move(ids));
  return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  const TokenizerParts& parts = parts_of(impl_);
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    const std::string* token = parts.added_tokens->id_to_token(id);
    if (token == nullptr) token = parts.model->id_to_token(id);
    if (token == nullptr) continue;  // unknown ids vanish, as in HF
    if (skip_special_tokens && parts.added_tokens->is_special(*token)) continue;
    tokens.push_back(*token);
  }
  if (!parts.decoder) {
    std::string joined;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) joined += ' ';
      joined += tokens[i];
    }
    return joined;
  }
  parts.decoder->decode_chain(tokens);
  std::string text;
  for (const std::string& piece : tokens) text += piece;
  return text;
}

int64_t Tokenizer::vocab_size() const {
  const TokenizerParts& parts = parts_of(impl_);
  return parts.model->vocab_size() + parts.added_tokens->count_outside_model();
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  const TokenizerParts& parts = parts_of(impl_);
  const std::string key(token);
  if (auto id = parts.added_tokens->token_to_id(key)) return id;
  return parts.model->token_to_id(key);
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  const TokenizerParts& parts = parts_of(impl_);
  if (const std::string* token = parts.added_tokens->id_to_token(id)) return *token;
  if (const std::string* token = parts.model->id_to_token(id)) return *token;
  return std::nullopt;
}

std::optional<int32_t> Tokenizer::bos_token_id() const { return parts_of(impl_).bos_token_id; }
std::optional<int32_t> Tokenizer::eos_token_id() const { return parts_of(impl_).eos_token_id; }

}  // namespace qb::tok
