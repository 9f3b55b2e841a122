// UTF-8 helpers shared by the tokenizer stages. Text inside the pipeline is always valid UTF-8 (checked once
// at the encode boundary), so the decoders here trust their input; only find_invalid_utf8 and utf8_lossy look
// at untrusted bytes.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace qb::tok {

// Length of the sequence a valid lead byte starts (1..4).
inline size_t utf8_sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

// Decodes the code point at text[pos] of valid UTF-8 and moves pos past it.
char32_t next_code_point(std::string_view text, size_t& pos);
void append_utf8(std::string& out, char32_t code_point);

// Offset of the first byte that is not part of well-formed UTF-8 (overlongs, surrogates and values past
// U+10FFFF are ill-formed), or std::string_view::npos when all of `bytes` is valid.
size_t find_invalid_utf8(std::string_view bytes);

// Rust's String::from_utf8_lossy (what HuggingFace's decoders use): every maximal ill-formed subpart
// becomes one U+FFFD, the Unicode "substitution of maximal subparts" practice.
std::string utf8_lossy(std::string_view bytes);

// Rust's char::is_whitespace: the Unicode White_Space property.
bool is_unicode_whitespace(char32_t code_point);

}  // namespace qb::tok
