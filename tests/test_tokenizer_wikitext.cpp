// The whole WikiText-2 test split (~1.3 MB) encoded by GPT-2 as one string must give HuggingFace's ids:
// checked by count, FNV-1a 64 of all ids and the first/last 1000 ids (tests/fixtures/tokenizer/
// wikitext2_test_gpt2.json). Prints the encode time (fresh tokenizer, cold word cache, one thread); does not
// assert on it.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "quantbench/tokenizer/tokenizer.h"
#include "test_support.h"

namespace qb::tok {
namespace {

// stat() rather than std::filesystem, whose calls can bind to libtorch.so's copies of the symbols.
// FNV-1a 64 over each id as 4 little-endian bytes (the script's fnv1a64).
std::string fnv1a64_hex(const std::vector<int32_t>& ids) {
  uint64_t hash = 0xCBF29CE484222325ull;
  for (int32_t id : ids) {
    const auto value = static_cast<uint32_t>(id);
    for (int shift = 0; shift < 32; shift += 8) {
      hash ^= (value >> shift) & 0xFF;
      hash *= 0x100000001B3ull;
    }
  }
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

void expect_matches_fixture(const std::vector<int32_t>& ids, const nlohmann::json& expected) {
  ASSERT_EQ(ids.size(), expected["count"].get<size_t>());
  const auto first = expected["first"].get<std::vector<int32_t>>();
  const auto last = expected["last"].get<std::vector<int32_t>>();
  EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.begin() + first.size()), first);
  EXPECT_EQ(std::vector<int32_t>(ids.end() - last.size(), ids.end()), last);
  EXPECT_EQ(fnv1a64_hex(ids), expected["fnv1a64"].get<std::string>());
}

TEST(TokenizerWikitext, Gpt2EncodesWholeTestSplitLikeHuggingFace) {
  const std::string shared = qb::test::shared_data_dir();
  if (!std::ifstream(shared + "/wikitext-2/test.txt").good() ||
      !std::ifstream(shared + "/models/gpt2-tiny-wikitext/tokenizer.json").good() ||
      !std::ifstream(shared + "/gpt2-tokenizer/encoder.json").good()) {
    GTEST_SKIP() << "shared data (wikitext-2, gpt2-tiny-wikitext tokenizer, gpt2-tokenizer) not found under " << shared;
  }
  std::ifstream fixture(qb::test::fixtures_dir() + "/tokenizer/wikitext2_test_gpt2.json");
  ASSERT_TRUE(fixture.good());
  const nlohmann::json expected = nlohmann::json::parse(fixture);
  std::ifstream file(shared + "/wikitext-2/test.txt", std::ios::binary);
  ASSERT_TRUE(file.good());
  std::ostringstream buffer;
  buffer << file.rdbuf();
  const std::string text = buffer.str();
  ASSERT_EQ(text.size(), expected["bytes"].get<size_t>());

  const Tokenizer tokenizer = Tokenizer::from_file(shared + "/models/gpt2-tiny-wikitext/tokenizer.json");
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = tokenizer.encode(text, /*add_special_tokens=*/false);
  const double encode_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ wikitext-2 test.txt ] %zu bytes -> %zu ids in %.1f ms (GPT-2 tokenizer.json, cold cache, 1 thread)\n",
              text.size(), ids.size(), encode_ms);
  expect_matches_fixture(ids, expected);

  const Tokenizer from_files =
      Tokenizer::from_gpt2_files(shared + "/gpt2-tokenizer/encoder.json", shared + "/gpt2-tokenizer/vocab.bpe");
  expect_matches_fixture(from_files.encode(text, false), expected);
  EXPECT_EQ(tokenizer.decode(ids), text);
}

}  // namespace
}  // namespace qb::tok
