// Unicode canonical normalization (NFD, NFC) for the NFC/NFD normalizers (Qwen2 ships NFC). Tables come from
// scripts/gen_tokenizer_fixtures.py --nfc-tables (Python's unicodedata); HuggingFace uses the Rust
// unicode-normalization crate, which may know a newer Unicode version: characters assigned after the table's
// version pass through unchanged.
#pragma once

#include <string>
#include <string_view>

namespace qb::tok {

std::string to_nfd(std::string_view text);  // canonical decomposition + canonical ordering
std::string to_nfc(std::string_view text);  // NFD, then canonical composition

}  // namespace qb::tok
