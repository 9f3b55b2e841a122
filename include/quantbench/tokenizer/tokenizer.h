// Text <-> token ids, exactly as HuggingFace `tokenizers` does it, read from a model's tokenizer.json (or GPT-2's
// encoder.json + vocab.bpe). No Python at run time.
//
// Covered: BPE models, byte-level (GPT-2, DialoGPT, OPT, Phi-2, Qwen2/2.5, Llama-3) and SentencePiece-style with
// byte fallback (Llama-2, TinyLlama, Mistral); the normalizers, pre-tokenizers, post-processors and decoders
// those files use; added/special tokens with lstrip/rstrip/single_word/normalized. Anything else (WordPiece,
// Unigram, an unknown component type) is refused with qb::Error kUnsupported when the file is loaded, so a
// tokenizer that loads is one we reproduce.
//
// A Tokenizer is immutable after loading except for an internal word cache, which is locked: encode and decode
// may be called from several threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qb::tok {

class Tokenizer {
 public:
  // Throws qb::Error: kNotFound (no file), kInvalidInput (bad JSON or inconsistent vocab/merges),
  // kUnsupported (a model or component type we do not implement); the message names the file.
  static Tokenizer from_file(const std::string& tokenizer_json_path);
  // OpenAI's GPT-2 files; behaves like transformers' GPT2Tokenizer built from them (<|endoftext|> special).
  static Tokenizer from_gpt2_files(const std::string& encoder_json, const std::string& vocab_bpe);

  // `text` must be valid UTF-8 (else kInvalidInput). add_special_tokens applies the post-processor
  // (BOS/EOS templates), as transformers' encode does by default.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // Ids the tokenizer does not know are skipped, as HuggingFace does. skip_special_tokens drops the
  // tokens marked special in the file.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;

  int64_t vocab_size() const;  // including added tokens (HF get_vocab_size(with_added_tokens=True))
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(int32_t id) const;
  // From tokenizer_config.json beside tokenizer.json when it names them, else the post-processor's
  // template, else well-known special token names among the added tokens.
  std::optional<int32_t> bos_token_id() const;
  std::optional<int32_t> eos_token_id() const;

  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qb::tok
