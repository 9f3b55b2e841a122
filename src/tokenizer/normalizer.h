// Normalizers: rewrite the text of each piece before pre-tokenization (HF normalizers). Supported: Sequence,
// Prepend, Replace, NFC, NFD, Strip, ByteLevel. Others (NFKC, Lowercase, BertNormalizer, Precompiled, ...)
// are refused at load time with kUnsupported.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>

namespace qb::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

// `config` is tokenizer.json's "normalizer" value; null gives nullptr. `where` names the file for errors.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& config, const std::string& where);

}  // namespace qb::tok
