// OpenAI's GPT-2 release files -> TokenizerParts, set up as transformers' GPT2Tokenizer does: byte-level BPE,
// ByteLevel pre-tokenizer without a prefix space, ByteLevel decoder, no post-processing, and <|endoftext|>
// as a special token (BOS, EOS and UNK).
#include "json_fields.h"
#include "tokenizer_parts.h"

namespace qb::tok {
namespace {

BpeModel::Vocab parse_encoder(const std::string& path) {
  const Json encoder = parse_json_text(read_file_text(path), path);
  QB_CHECK(encoder.is_object(), kInvalidInput, "{}: expected an object of token -> id", path);
  BpeModel::Vocab vocab;
  vocab.reserve(encoder.size());
  for (const auto& [token, id] : encoder.items()) {
    QB_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() <= INT32_MAX, kInvalidInput,
             "{}: '{}' maps to {}, not a token id", path, token, brief(id));
    vocab.emplace(token, id.get<int32_t>());
  }
  return vocab;
}

// vocab.bpe: a "#version" line, then one "a b" merge per line in rank order.
BpeModel::Merges parse_vocab_bpe(const std::string& path) {
  const std::string text = read_file_text(path);
  BpeModel::Merges merges;
  size_t line_start = 0;
  size_t line_number = 0;
  while (line_start < text.size()) {
    size_t line_end = text.find('\n', line_start);
    if (line_end == std::string::npos) line_end = text.size();
    std::string line = text.substr(line_start, line_end - line_start);
    line_start = line_end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    const size_t space = line.find(' ');
    QB_CHECK(space != std::string::npos && space > 0 && line.find(' ', space + 1) == std::string::npos &&
                 space + 1 < line.size(),
             kInvalidInput, "{}: line {} '{}' is not two tokens separated by one space", path, line_number, line);
    merges.emplace_back(line.substr(0, space), line.substr(space + 1));
  }
  return merges;
}

}  // namespace

TokenizerParts load_gpt2_files(const std::string& encoder_json, const std::string& vocab_bpe) {
  TokenizerParts parts;
  parts.source = encoder_json + " + " + vocab_bpe;
  BpeModel::Vocab vocab = parse_encoder(encoder_json);  // first, so a missing encoder.json is the one named
  const BpeModel::Merges merges = parse_vocab_bpe(vocab_bpe);
  parts.model = std::make_unique<BpeModel>(std::move(vocab), merges, BpeOptions{}, parts.source);
  parts.pre_tokenizer = make_gpt2_pre_tokenizer();
  parts.decoder = make_byte_level_decoder();
  AddedToken end_of_text;
  end_of_text.content = "<|endoftext|>";
  end_of_text.special = true;
  end_of_text.normalized = false;
  parts.added_tokens = std::make_unique<AddedVocabulary>(std::vector<AddedToken>{end_of_text}, *parts.model, nullptr);
  parts.bos_token_id = parts.added_tokens->token_to_id(end_of_text.content);
  parts.eos_token_id = parts.bos_token_id;
  return parts;
}

}  // namespace qb::tok
