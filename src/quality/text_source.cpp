#include "quantbench/quality/text_source.h"

#include <fstream>
#include <sstream>

#include "quantbench/core/error.h"

namespace qb::quality {

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  QB_CHECK(in.good(), kNotFound, "{}: cannot open text file", path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string first_code_points(const std::string& text, int64_t count) {
  if (count < 0) return text;
  size_t offset = 0;
  for (int64_t seen = 0; seen < count && offset < text.size(); ++seen) {
    const unsigned char lead = static_cast<unsigned char>(text[offset]);
    offset += lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
  }
  return text.substr(0, std::min(offset, text.size()));
}

tok::Tokenizer tokenizer_for_model_dir(const std::string& dir) {
  QB_CHECK(!dir.empty(), kInvalidInput,
           "perplexity needs the model's tokenizer.json; synthetic models have none (their weights are random, so "
           "their perplexity would mean nothing)");
  return tok::Tokenizer::from_file(dir + "/tokenizer.json");
}

}  // namespace qb::quality
