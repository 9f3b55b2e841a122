#include "byte_level.h"

#include "utf8.h"

namespace qb::tok {
namespace {

bool maps_to_itself(int byte) {
  return (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) || (byte >= 0xAE && byte <= 0xFF);
}

// The image of the map is U+0000..U+0143 (256 + 68 code points), so the inverse is a small array.
constexpr char32_t kCodePointLimit = 256 + 68;

struct ByteTables {
  std::array<std::string, 256> utf8_of_byte;
  std::array<int16_t, kCodePointLimit> byte_of_code_point{};  // -1: no byte maps there
  ByteTables() {
    byte_of_code_point.fill(-1);
    char32_t next_free = 256;
    for (int byte = 0; byte < 256; ++byte) {
      const char32_t cp = maps_to_itself(byte) ? static_cast<char32_t>(byte) : next_free++;
      append_utf8(utf8_of_byte[byte], cp);
      byte_of_code_point[cp] = static_cast<int16_t>(byte);
    }
  }
};

const ByteTables& tables() {
  static const ByteTables instance;
  return instance;
}

}  // namespace

const std::array<std::string, 256>& byte_to_char_utf8() { return tables().utf8_of_byte; }

std::optional<uint8_t> char_to_byte(char32_t cp) {
  if (cp >= kCodePointLimit) return std::nullopt;
  const int16_t byte = tables().byte_of_code_point[cp];
  if (byte < 0) return std::nullopt;
  return static_cast<uint8_t>(byte);
}

std::string bytes_to_chars(std::string_view bytes) {
  const auto& utf8_of_byte = tables().utf8_of_byte;
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out.append(utf8_of_byte[static_cast<unsigned char>(c)]);
  return out;
}

}  // namespace qb::tok
