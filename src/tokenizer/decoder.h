// Decoders: token strings back to text (HF decoders). Each stage maps a list of strings to a list of strings
// (decode_chain); the results are concatenated. Supported: ByteLevel, Replace, ByteFallback, Fuse, Strip,
// Metaspace, Sequence. Others (WordPiece, BPEDecoder, CTC) are refused at load time with kUnsupported.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <vector>

namespace qb::tok {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// `config` is tokenizer.json's "decoder" value; null gives nullptr (tokens are then joined with spaces).
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& config, const std::string& where);

// GPT-2's ByteLevel decoder.
std::unique_ptr<Decoder> make_byte_level_decoder();

}  // namespace qb::tok
