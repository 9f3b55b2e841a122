// Malformed input for every tokenizer parser and for encode: each gives a qb::Error of the right kind that
// names the file or the problem, never a crash.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "quantbench/core/error.h"
#include "quantbench/tokenizer/tokenizer.h"
#include "test_support.h"

namespace qb::tok {
namespace {

using nlohmann::json;

// Runs `action`, which must throw qb::Error of `kind` whose message contains `needle`.
void expect_error(const std::function<void()>& action, ErrorKind kind, const std::string& needle) {
  try {
    action();
    ADD_FAILURE() << "no error; expected " << error_kind_name(kind) << " mentioning '" << needle << "'";
  } catch (const Error& error) {
    EXPECT_EQ(error.kind(), kind) << error.what();
    EXPECT_NE(std::string(error.what()).find(needle), std::string::npos)
        << "message '" << error.what() << "' does not mention '" << needle << "'";
  }
}

// A valid minimal byte-level BPE tokenizer.json: vocab {a, b, ab}, one merge.
json minimal_tokenizer() {
  return json{{"version", "1.0"},
              {"added_tokens", json::array()},
              {"normalizer", nullptr},
              {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
              {"post_processor", nullptr},
              {"decoder", {{"type", "ByteLevel"}}},
              {"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", {"a b"}}}}};
}

// A temp directory for written fixtures. Not qb::test::TempDir: its std::filesystem::remove_all binds to
// libtorch.so's copy of the symbol and crashes there; plain POSIX calls do not.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = "/tmp/quantbench-tokenizer-XXXXXX";
    if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~ScratchDir() {
    for (const std::string& file : files_) ::unlink(file.c_str());
    if (!path_.empty()) ::rmdir(path_.c_str());
  }
  std::string write(const std::string& name, const std::string& content) {
    const std::string file = path_ + "/" + name;
    std::ofstream(file, std::ios::binary) << content;
    files_.push_back(file);
    return file;
  }

 private:
  std::string path_;
  std::vector<std::string> files_;
};

std::string write(ScratchDir& dir, const std::string& name, const std::string& content) {
  return dir.write(name, content);
}

TEST(TokenizerErrors, MinimalTokenizerLoads) {
  ScratchDir dir;
  const Tokenizer tokenizer = Tokenizer::from_file(write(dir, "tokenizer.json", minimal_tokenizer().dump()));
  EXPECT_EQ(tokenizer.encode("abab"), (std::vector<int32_t>{2, 2}));
  EXPECT_EQ(tokenizer.decode({2, 0, 1}), "abab");
}

TEST(TokenizerErrors, MissingFilesAreNotFound) {
  expect_error([] { Tokenizer::from_file("/nonexistent/dir/tokenizer.json"); }, ErrorKind::kNotFound,
               "/nonexistent/dir/tokenizer.json");
  expect_error([] { Tokenizer::from_gpt2_files("/nonexistent/encoder.json", "/nonexistent/vocab.bpe"); },
               ErrorKind::kNotFound, "/nonexistent/encoder.json");
}

TEST(TokenizerErrors, InvalidJsonIsInvalidInput) {
  ScratchDir dir;
  const std::string path = write(dir, "tokenizer.json", "{\"model\": {\"type\": \"BPE\", ");
  expect_error([&] { Tokenizer::from_file(path); }, ErrorKind::kInvalidInput, path);
  const std::string array = write(dir, "array.json", "[1, 2]");
  expect_error([&] { Tokenizer::from_file(array); }, ErrorKind::kInvalidInput, "object");
}

TEST(TokenizerErrors, OtherModelTypesAreUnsupported) {
  ScratchDir dir;
  for (const char* type : {"WordPiece", "Unigram", "WordLevel"}) {
    json config = minimal_tokenizer();
    config["model"] = {{"type", type}, {"vocab", json::object()}};
    const std::string path = write(dir, std::string(type) + ".json", config.dump());
    expect_error([&] { Tokenizer::from_file(path); }, ErrorKind::kUnsupported, type);
  }
}

TEST(TokenizerErrors, UnknownComponentTypesAreUnsupported) {
  ScratchDir dir;
  const std::pair<const char*, const char*> components[] = {
      {"normalizer", "Lowercase"}, {"normalizer", "NFKC"}, {"pre_tokenizer", "BertPreTokenizer"},
      {"decoder", "WordPiece"}, {"post_processor", "NoSuchProcessor"}};
  for (const auto& [slot, type] : components) {
    json config = minimal_tokenizer();
    config[slot] = {{"type", type}};
    const std::string path = write(dir, std::string(slot) + "_" + type + ".json", config.dump());
    expect_error([&] { Tokenizer::from_file(path); }, ErrorKind::kUnsupported, type);
  }
  json nested = minimal_tokenizer();
  nested["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Punctuation"}}}}};
  const std::string path = write(dir, "nested.json", nested.dump());
  expect_error([&] { Tokenizer::from_file(path); }, ErrorKind::kUnsupported, "Punctuation");
}

TEST(TokenizerErrors, InconsistentModelIsInvalidInput) {
  ScratchDir dir;
  json bad_merge = minimal_tokenizer();
  bad_merge["model"]["merges"] = {"a c"};
  const std::string merge_path = write(dir, "merge.json", bad_merge.dump());
  expect_error([&] { Tokenizer::from_file(merge_path); }, ErrorKind::kInvalidInput, "'c' is not in the vocab");

  json bad_pair = minimal_tokenizer();
  bad_pair["model"]["merges"] = {{"a", "b", "c"}};
  const std::string pair_path = write(dir, "pair.json", bad_pair.dump());
  expect_error([&] { Tokenizer::from_file(pair_path); }, ErrorKind::kInvalidInput, "merge 0");

  json bad_id = minimal_tokenizer();
  bad_id["model"]["vocab"]["a"] = "zero";
  const std::string id_path = write(dir, "id.json", bad_id.dump());
  expect_error([&] { Tokenizer::from_file(id_path); }, ErrorKind::kInvalidInput, "model.vocab['a']");

  json no_model = minimal_tokenizer();
  no_model.erase("model");
  const std::string no_model_path = write(dir, "no_model.json", no_model.dump());
  expect_error([&] { Tokenizer::from_file(no_model_path); }, ErrorKind::kInvalidInput, "'model'");

  json bad_regex = minimal_tokenizer();
  bad_regex["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  const std::string regex_path = write(dir, "regex.json", bad_regex.dump());
  expect_error([&] { Tokenizer::from_file(regex_path); }, ErrorKind::kInvalidInput, "(unclosed");

  json bad_behavior = minimal_tokenizer();
  bad_behavior["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Sideways"}};
  const std::string behavior_path = write(dir, "behavior.json", bad_behavior.dump());
  expect_error([&] { Tokenizer::from_file(behavior_path); }, ErrorKind::kUnsupported, "Sideways");

  json bad_template = minimal_tokenizer();
  bad_template["post_processor"] = {{"type", "TemplateProcessing"},
                                    {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                                    {"special_tokens", json::object()}};
  const std::string template_path = write(dir, "template.json", bad_template.dump());
  expect_error([&] { Tokenizer::from_file(template_path); }, ErrorKind::kInvalidInput, "'<s>'");
}

TEST(TokenizerErrors, BadGpt2FilesAreInvalidInput) {
  ScratchDir dir;
  const std::string encoder = write(dir, "encoder.json", R"({"a": 0, "b": 1, "ab": 2, "<|endoftext|>": 3})");
  const std::string merges = write(dir, "vocab.bpe", "#version: 0.2\na b\nab\n");
  expect_error([&] { Tokenizer::from_gpt2_files(encoder, merges); }, ErrorKind::kInvalidInput, "line 3");
  const std::string good_merges = write(dir, "good.bpe", "#version: 0.2\na b\n");
  const Tokenizer tokenizer = Tokenizer::from_gpt2_files(encoder, good_merges);
  EXPECT_EQ(tokenizer.encode("ab<|endoftext|>a"), (std::vector<int32_t>{2, 3, 0}));
  const std::string bad_encoder = write(dir, "bad_encoder.json", R"({"a": -4})");
  expect_error([&] { Tokenizer::from_gpt2_files(bad_encoder, good_merges); }, ErrorKind::kInvalidInput,
               "bad_encoder.json");
}

TEST(TokenizerErrors, InvalidUtf8PromptIsInvalidInput) {
  ScratchDir dir;
  const Tokenizer tokenizer = Tokenizer::from_file(write(dir, "tokenizer.json", minimal_tokenizer().dump()));
  const std::string bad_inputs[] = {
      std::string("ab\x80", 3),          // lone continuation byte
      std::string("a\xE4\xBD", 3),       // truncated 3-byte sequence
      std::string("\xC0\xAF", 2),        // overlong '/'
      std::string("\xED\xA0\x80", 3),    // UTF-16 surrogate
      std::string("\xF4\x90\x80\x80", 4) // past U+10FFFF
  };
  for (const std::string& text : bad_inputs) {
    expect_error([&] { tokenizer.encode(text); }, ErrorKind::kInvalidInput, "not valid UTF-8");
  }
}

}  // namespace
}  // namespace qb::tok
