// The tokenizer's building blocks checked against Python: lossy UTF-8 decoding (bytes.decode("utf-8",
// "replace") agrees with Rust's from_utf8_lossy), NFC/NFD (tests/fixtures/tokenizer/nfc_cases.json from
// unicodedata), the GPT-2 byte map, and the regex wrapper's iteration rule for empty matches.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <string>

#include "quantbench/core/error.h"
#include "../src/tokenizer/byte_level.h"
#include "../src/tokenizer/onig_regex.h"
#include "../src/tokenizer/unicode_nfc.h"
#include "../src/tokenizer/utf8.h"
#include "test_support.h"

namespace qb::tok {
namespace {

TEST(TokenizerInternals, LossyUtf8ReplacesMaximalSubparts) {
  // Expected strings from Python: bytes.decode("utf-8", "replace").
  EXPECT_EQ(utf8_lossy("plain \xE4\xBD\xA0"), "plain \xE4\xBD\xA0");
  EXPECT_EQ(utf8_lossy(std::string("\xE4\xBD", 2)), "\xEF\xBF\xBD");            // one truncated sequence
  EXPECT_EQ(utf8_lossy(std::string("\xE4\xBD" "a", 3)), "\xEF\xBF\xBD" "a");
  EXPECT_EQ(utf8_lossy(std::string("\x80\x80", 2)), "\xEF\xBF\xBD\xEF\xBF\xBD");  // each stray continuation
  EXPECT_EQ(utf8_lossy(std::string("\xC0\xAF", 2)), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong: C0 starts nothing
  EXPECT_EQ(utf8_lossy(std::string("\xED\xA0\x80", 3)), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(utf8_lossy(std::string("\xF0\x9F\x98", 3)), "\xEF\xBF\xBD");
  EXPECT_EQ(utf8_lossy(std::string("\xF0\x9F\x98\x80", 4)), "\xF0\x9F\x98\x80");
  EXPECT_EQ(find_invalid_utf8("ok \xF0\x9F\x98\x80"), std::string::npos);
  EXPECT_EQ(find_invalid_utf8(std::string("ok\xFF", 3)), 2u);
}

TEST(TokenizerInternals, NfcAndNfdMatchPython) {
  std::ifstream file(qb::test::fixtures_dir() + "/tokenizer/nfc_cases.json");
  ASSERT_TRUE(file.good());
  const nlohmann::json cases = nlohmann::json::parse(file);
  ASSERT_GT(cases.size(), 100u);
  for (const auto& c : cases) {
    const std::string input = c["input"].get<std::string>();
    EXPECT_EQ(to_nfc(input), c["nfc"].get<std::string>()) << nlohmann::json(input).dump();
    EXPECT_EQ(to_nfd(input), c["nfd"].get<std::string>()) << nlohmann::json(input).dump();
  }
  EXPECT_EQ(to_nfc("e\xCC\x81"), "\xC3\xA9");                  // e + combining acute -> é
  EXPECT_EQ(to_nfc("\xE2\x84\xAB"), "\xC3\x85");               // Angstrom sign -> Å
  EXPECT_EQ(to_nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"), "\xEA\xB0\x81");  // jamo -> 각
}

TEST(TokenizerInternals, ByteMapIsGpt2s) {
  const auto& map = byte_to_char_utf8();
  EXPECT_EQ(map[' '], "\xC4\xA0");   // Ġ
  EXPECT_EQ(map['\n'], "\xC4\x8A");  // Ċ
  EXPECT_EQ(map['A'], "A");
  EXPECT_EQ(map[0xAD], "\xC5\x83");  // the last remapped byte, U+0143
  for (int byte = 0; byte < 256; ++byte) {
    size_t pos = 0;
    const char32_t cp = next_code_point(map[byte], pos);
    ASSERT_EQ(char_to_byte(cp), static_cast<uint8_t>(byte));
  }
  EXPECT_FALSE(char_to_byte(0x144).has_value());
  EXPECT_FALSE(char_to_byte(' ').has_value());
}

TEST(TokenizerInternals, RegexSkipsEmptyMatchAfterPrevious) {
  // The onig crate's find_iter on "a" with a?: "a" at 0..1, then the empty match at 1 is dropped.
  const OnigRegex optional_a("a?");
  const auto matches = optional_a.find_all("ab");
  ASSERT_EQ(matches.size(), 2u);
  EXPECT_EQ(matches[0].begin, 0u);
  EXPECT_EQ(matches[0].end, 1u);
  EXPECT_EQ(matches[1].begin, 2u);  // the empty match at 2 (after 'b'), not one at 1
  EXPECT_EQ(matches[1].end, 2u);
  EXPECT_EQ(escape_regex("a.b(c)"), "a\\.b\\(c\\)");
  EXPECT_THROW(OnigRegex("(unclosed"), qb::Error);
}

}  // namespace
}  // namespace qb::tok
