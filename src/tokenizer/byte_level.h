// GPT-2's reversible byte <-> character map. Byte-level BPE works on characters, not bytes, so every byte
// gets a printable character: the bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF map to the code point of the same
// value; the other 68 bytes (controls, space, 0x7F..0xA0, 0xAD) map to U+0100, U+0101, ... in byte order.
// So ' ' becomes 'Ġ' (U+0120) and '\n' becomes 'Ċ' (U+010A).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace qb::tok {

// UTF-8 of the character each byte maps to.
const std::array<std::string, 256>& byte_to_char_utf8();
// The byte a character stands for, or nothing when the character is not one of the 256.
std::optional<uint8_t> char_to_byte(char32_t code_point);
// Every byte of `bytes` replaced by its character (the ByteLevel pre-tokenizer / normalizer step).
std::string bytes_to_chars(std::string_view bytes);

}  // namespace qb::tok
