// Golden tests: every corpus string encoded and decoded by our tokenizer must give exactly what HuggingFace
// `tokenizers` 0.23 gave (scripts/gen_tokenizer_fixtures.py wrote the expectations). Covers the real GPT-2
// tokenizer (tokenizer.json and OpenAI's two files) and small trained tokenizers in each layout the supported
// models ship (tests/fixtures/tokenizer/<name>/tokenizer.json).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "quantbench/tokenizer/tokenizer.h"
#include "test_support.h"

namespace qb::tok {
namespace {

// stat() rather than std::filesystem, whose calls can bind to libtorch.so's copies of the symbols.
std::string tokenizer_fixtures() { return qb::test::fixtures_dir() + "/tokenizer"; }

nlohmann::json read_json(const std::string& path) {
  std::ifstream file(path);
  EXPECT_TRUE(file.good()) << "missing fixture " << path << " (run scripts/gen_tokenizer_fixtures.py)";
  return nlohmann::json::parse(file);
}

struct GoldenCase {
  std::string name;      // test name
  std::string expected;  // expected/<file>.json
  enum class Source { kFixture, kSharedGpt2Json, kSharedGpt2Files } source;
};

void PrintTo(const GoldenCase& c, std::ostream* os) { *os << c.name; }

Tokenizer load(const GoldenCase& c) {
  const std::string shared = qb::test::shared_data_dir();
  switch (c.source) {
    case GoldenCase::Source::kSharedGpt2Json:
      return Tokenizer::from_file(shared + "/models/gpt2-tiny-wikitext/tokenizer.json");
    case GoldenCase::Source::kSharedGpt2Files:
      return Tokenizer::from_gpt2_files(shared + "/gpt2-tokenizer/encoder.json", shared + "/gpt2-tokenizer/vocab.bpe");
    case GoldenCase::Source::kFixture:
      break;
  }
  return Tokenizer::from_file(tokenizer_fixtures() + "/" + c.name + "/tokenizer.json");
}

class TokenizerGolden : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(TokenizerGolden, MatchesHuggingFaceOnCorpus) {
  const GoldenCase& c = GetParam();
  const std::string shared = qb::test::shared_data_dir();
  const std::string needed = c.source == GoldenCase::Source::kSharedGpt2Json ? shared + "/models/gpt2-tiny-wikitext/tokenizer.json"
                             : c.source == GoldenCase::Source::kSharedGpt2Files ? shared + "/gpt2-tokenizer/encoder.json"
                                                                                 : std::string();
  if (!needed.empty() && !std::ifstream(needed).good()) GTEST_SKIP() << "shared data not found: " << needed;
  const Tokenizer tokenizer = load(c);
  const nlohmann::json corpus = read_json(tokenizer_fixtures() + "/corpus.json");
  const nlohmann::json expected = read_json(tokenizer_fixtures() + "/expected/" + c.expected + ".json");
  ASSERT_EQ(corpus.size(), expected["encode"].size());

  EXPECT_EQ(tokenizer.vocab_size(), expected["vocab_size"].get<int64_t>());
  for (const auto& [id_text, token] : expected["id_to_token"].items()) {
    const int32_t id = std::stoi(id_text);
    EXPECT_EQ(tokenizer.id_to_token(id), std::optional<std::string>(token.get<std::string>())) << "id " << id;
  }

  size_t compared = 0, round_trips = 0, mismatches = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const std::string text = corpus[i].get<std::string>();
    const auto want = expected["encode"][i].get<std::vector<int32_t>>();
    const auto want_plain = expected["encode_plain"][i].get<std::vector<int32_t>>();
    const std::vector<int32_t> ids = tokenizer.encode(text, /*add_special_tokens=*/true);
    const std::vector<int32_t> plain = tokenizer.encode(text, /*add_special_tokens=*/false);
    const bool ok = ids == want && plain == want_plain;
    EXPECT_EQ(ids, want) << "string " << i << ": " << nlohmann::json(text).dump();
    EXPECT_EQ(plain, want_plain) << "string " << i << " (no special tokens): " << nlohmann::json(text).dump();
    EXPECT_EQ(tokenizer.decode(want, false), expected["decode"][i].get<std::string>()) << "decode of string " << i;
    EXPECT_EQ(tokenizer.decode(want, true), expected["decode_skip"][i].get<std::string>())
        << "decode(skip_special_tokens) of string " << i;
    if (expected["roundtrip"][i].get<bool>()) {
      EXPECT_EQ(tokenizer.decode(plain, false), text) << "decode(encode(x)) != x for string " << i;
      ++round_trips;
    }
    mismatches += ok ? 0 : 1;
    ++compared;
    if (mismatches > 10) break;  // the first failures say enough
  }
  std::printf("[ %s ] %zu corpus strings compared with tokenizers 0.23 (%zu also round-tripped)\n", c.name.c_str(),
              compared, round_trips);
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, TokenizerGolden,
    ::testing::Values(GoldenCase{"gpt2_tokenizer_json", "gpt2", GoldenCase::Source::kSharedGpt2Json},
                      GoldenCase{"gpt2_openai_files", "gpt2", GoldenCase::Source::kSharedGpt2Files},
                      GoldenCase{"sp_llama2_legacy", "sp_llama2_legacy", GoldenCase::Source::kFixture},
                      GoldenCase{"sp_metaspace_first", "sp_metaspace_first", GoldenCase::Source::kFixture},
                      GoldenCase{"sp_metaspace_always", "sp_metaspace_always", GoldenCase::Source::kFixture},
                      GoldenCase{"bl_llama3", "bl_llama3", GoldenCase::Source::kFixture},
                      GoldenCase{"bl_qwen2", "bl_qwen2", GoldenCase::Source::kFixture},
                      GoldenCase{"bl_roberta", "bl_roberta", GoldenCase::Source::kFixture}),
    [](const ::testing::TestParamInfo<GoldenCase>& info) { return info.param.name; });

TEST(TokenizerSpecialIds, ComeFromConfigTemplateOrNames) {
  const std::string shared = qb::test::shared_data_dir();
  if (std::ifstream(shared + "/models/gpt2-tiny-wikitext/tokenizer.json").good() &&
      std::ifstream(shared + "/gpt2-tokenizer/encoder.json").good()) {
    const Tokenizer gpt2 = Tokenizer::from_file(shared + "/models/gpt2-tiny-wikitext/tokenizer.json");
    EXPECT_EQ(gpt2.bos_token_id(), 50256);  // tokenizer_config.json
    EXPECT_EQ(gpt2.eos_token_id(), 50256);
    const Tokenizer files =
        Tokenizer::from_gpt2_files(shared + "/gpt2-tokenizer/encoder.json", shared + "/gpt2-tokenizer/vocab.bpe");
    EXPECT_EQ(files.bos_token_id(), 50256);
    EXPECT_EQ(files.eos_token_id(), 50256);
    EXPECT_EQ(files.encode("Hello world"), (std::vector<int32_t>{15496, 995}));
  }
  const Tokenizer llama2 = Tokenizer::from_file(tokenizer_fixtures() + "/sp_llama2_legacy/tokenizer.json");
  EXPECT_EQ(llama2.bos_token_id(), 1);  // the template's <s>
  EXPECT_EQ(llama2.eos_token_id(), 2);  // by name, </s>
  EXPECT_EQ(llama2.token_to_id("<0x0A>"), 3 + 0x0A);
  const Tokenizer llama3 = Tokenizer::from_file(tokenizer_fixtures() + "/bl_llama3/tokenizer.json");
  EXPECT_EQ(llama3.bos_token_id(), llama3.token_to_id("<|begin_of_text|>"));
  EXPECT_EQ(llama3.eos_token_id(), llama3.token_to_id("<|end_of_text|>"));
  const Tokenizer roberta = Tokenizer::from_file(tokenizer_fixtures() + "/bl_roberta/tokenizer.json");
  EXPECT_EQ(roberta.bos_token_id(), roberta.token_to_id("<s>"));  // RobertaProcessing cls / sep
  EXPECT_EQ(roberta.eos_token_id(), roberta.token_to_id("</s>"));
  EXPECT_FALSE(roberta.token_to_id("no such token").has_value());
  EXPECT_FALSE(roberta.id_to_token(1 << 30).has_value());
}

// encode/decode are const and share a word cache: threads encoding at once must agree with one thread.
TEST(TokenizerThreads, ConcurrentEncodesAgree) {
  const Tokenizer tokenizer = Tokenizer::from_file(tokenizer_fixtures() + "/bl_llama3/tokenizer.json");
  const nlohmann::json corpus = read_json(tokenizer_fixtures() + "/corpus.json");
  std::vector<std::vector<int32_t>> reference;
  {
    const Tokenizer fresh = Tokenizer::from_file(tokenizer_fixtures() + "/bl_llama3/tokenizer.json");
    for (const auto& text : corpus) reference.push_back(fresh.encode(text.get<std::string>()));
  }
  constexpr int kThreads = 4;
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 3; ++round) {
        for (size_t i = 0; i < corpus.size(); ++i) {
          const size_t k = (i * 7 + t * 13 + round) % corpus.size();
          const std::vector<int32_t> ids = tokenizer.encode(corpus[k].get<std::string>());
          if (ids != reference[k] || tokenizer.decode(ids).size() > 100000) ++mismatches[t];
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

}  // namespace
}  // namespace qb::tok
