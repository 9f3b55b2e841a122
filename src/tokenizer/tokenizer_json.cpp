// tokenizer.json -> TokenizerParts. Only the BPE model is implemented; truncation and padding settings in the
// file are ignored (transformers sets them per call; quantbench never asks for either).
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "json_fields.h"
#include "tokenizer_parts.h"

namespace qb::tok {
namespace {

BpeModel::Vocab parse_vocab(const Json& vocab, const std::string& where) {
  QB_CHECK(vocab.is_object(), kInvalidInput, "{}: model.vocab is not an object of token -> id", where);
  BpeModel::Vocab out;
  out.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    QB_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() <= INT32_MAX, kInvalidInput,
             "{}: model.vocab['{}'] is not a token id ({})", where, token, brief(id));
    out.emplace(token, id.get<int32_t>());
  }
  return out;
}

// Merges come as "a b" strings (older files) or [a, b] pairs (tokenizers >= 0.20).
BpeModel::Merges parse_merges(const Json& merges, const std::string& where) {
  QB_CHECK(merges.is_array(), kInvalidInput, "{}: model.merges is not a list", where);
  BpeModel::Merges out;
  out.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const Json& merge = merges[rank];
    if (merge.is_string()) {
      const std::string& line = merge.get_ref<const std::string&>();
      const size_t space = line.find(' ');
      QB_CHECK(space != std::string::npos && space > 0 && space + 1 < line.size(), kInvalidInput,
               "{}: merge {} '{}' is not two tokens separated by a space", where, rank, line);
      out.emplace_back(line.substr(0, space), line.substr(space + 1));
      continue;
    }
    QB_CHECK(merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string(), kInvalidInput,
             "{}: merge {} is neither \"a b\" nor [a, b]: {}", where, rank, brief(merge));
    out.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
  }
  return out;
}

std::unique_ptr<BpeModel> parse_model(const Json& model, const std::string& where) {
  const std::string at = where + ": model";
  QB_CHECK(model.is_object(), kInvalidInput, "{}: 'model' is not an object", where);
  // Very old files have no "type"; their fields tell the kind, and only BPE has merges.
  const std::string type = model.contains("type") ? string_field(model, "type", at)
                                                  : (model.contains("merges") ? "BPE" : "unknown");
  QB_CHECK(type == "BPE", kUnsupported, "{}: model type '{}' is not supported (only BPE: byte-level and "
           "SentencePiece-style)", where, type);
  const Json dropout = model.value("dropout", Json());
  QB_CHECK(dropout.is_null() || (dropout.is_number() && dropout.get<double>() == 0.0), kUnsupported,
           "{}: BPE dropout {} (random segmentation) is not supported", at, brief(dropout));
  BpeOptions options;
  if (model.contains("unk_token") && !model.at("unk_token").is_null()) {
    options.unk_token = string_field(model, "unk_token", at);
  }
  options.continuing_subword_prefix = string_field_or(model, "continuing_subword_prefix", "", at);
  options.end_of_word_suffix = string_field_or(model, "end_of_word_suffix", "", at);
  options.fuse_unk = bool_field_or(model, "fuse_unk", false, at);
  options.byte_fallback = bool_field_or(model, "byte_fallback", false, at);
  options.ignore_merges = bool_field_or(model, "ignore_merges", false, at);
  return std::make_unique<BpeModel>(parse_vocab(field(model, "vocab", at), where),
                                    parse_merges(field(model, "merges", at), where), std::move(options), where);
}

std::vector<AddedToken> parse_added_tokens(const Json& list, const std::string& where) {
  std::vector<AddedToken> tokens;
  if (list.is_null()) return tokens;
  QB_CHECK(list.is_array(), kInvalidInput, "{}: 'added_tokens' is not a list", where);
  for (const Json& entry : list) {
    const std::string at = where + ": added_tokens";
    AddedToken token;
    token.content = string_field(entry, "content", at);
    token.single_word = bool_field_or(entry, "single_word", false, at);
    token.lstrip = bool_field_or(entry, "lstrip", false, at);
    token.rstrip = bool_field_or(entry, "rstrip", false, at);
    token.special = bool_field_or(entry, "special", false, at);
    token.normalized = bool_field_or(entry, "normalized", !token.special, at);
    tokens.push_back(std::move(token));
  }
  return tokens;
}

// tokenizer_config.json names a token as a string, as {"content": ...}, or null (no such token).
std::optional<std::optional<std::string>> configured_token(const Json& config, const char* key) {
  if (!config.is_object() || !config.contains(key)) return std::nullopt;
  const Json& value = config.at(key);
  if (value.is_string()) return std::optional<std::string>(value.get<std::string>());
  if (value.is_object() && value.contains("content") && value.at("content").is_string()) {
    return std::optional<std::string>(value.at("content").get<std::string>());
  }
  return std::optional<std::string>();
}

std::optional<int32_t> id_of(const TokenizerParts& parts, const std::string& token) {
  if (auto id = parts.added_tokens->token_to_id(token)) return id;
  return parts.model->token_to_id(token);
}

std::optional<int32_t> first_known(const TokenizerParts& parts, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (auto id = id_of(parts, name)) return id;
  }
  return std::nullopt;
}

// tokenizer_config.json beside the file first (it is what transformers reads), then the post-processor's
// template, then the usual names.
void resolve_bos_eos(TokenizerParts& parts, const std::string& path) {
  Json config;
  const size_t slash = path.find_last_of('/');
  const std::string config_path =
      (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) + "tokenizer_config.json";
  if (is_regular_file(config_path)) config = parse_json_text(read_file_text(config_path), config_path);
  const auto bos_entry = configured_token(config, "bos_token");
  const auto eos_entry = configured_token(config, "eos_token");
  if (bos_entry) {
    parts.bos_token_id = *bos_entry ? id_of(parts, **bos_entry) : std::nullopt;
  } else if (parts.post_processor && parts.post_processor->leading_special_id()) {
    parts.bos_token_id = parts.post_processor->leading_special_id();
  } else {
    parts.bos_token_id = first_known(parts, {"<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>", "<|endoftext|>"});
  }
  if (eos_entry) {
    parts.eos_token_id = *eos_entry ? id_of(parts, **eos_entry) : std::nullopt;
  } else if (parts.post_processor && parts.post_processor->trailing_special_id()) {
    parts.eos_token_id = parts.post_processor->trailing_special_id();
  } else {
    parts.eos_token_id = first_known(parts, {"</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>"});
  }
}

}  // namespace

// stat() rather than std::filesystem: libtorch.so exports its own std::filesystem symbols, and calls can
// land in them (remove_all crashes there).
bool is_regular_file(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

std::string read_file_text(const std::string& path) {
  QB_CHECK(is_regular_file(path), kNotFound, "tokenizer file not found: {}", path);
  std::ifstream file(path, std::ios::binary);
  QB_CHECK(file.good(), kNotFound, "tokenizer file cannot be opened: {}", path);
  std::ostringstream buffer;
  buffer << file.rdbuf();
  return buffer.str();
}

Json parse_json_text(const std::string& text, const std::string& path) {
  try {
    return Json::parse(text);
  } catch (const Json::exception& error) {
    fail(ErrorKind::kInvalidInput, "{}: invalid JSON: {}", path, error.what());
  }
}

TokenizerParts load_tokenizer_json(const std::string& path) {
  const Json root = parse_json_text(read_file_text(path), path);
  QB_CHECK(root.is_object(), kInvalidInput, "{}: expected a JSON object at the top", path);
  TokenizerParts parts;
  parts.source = path;
  parts.model = parse_model(field(root, "model", path), path);
  parts.normalizer = make_normalizer(root.value("normalizer", Json()), path);
  parts.pre_tokenizer = make_pre_tokenizer(root.value("pre_tokenizer", Json()), path);
  parts.post_processor = make_post_processor(root.value("post_processor", Json()), path);
  parts.decoder = make_decoder(root.value("decoder", Json()), path);
  parts.added_tokens = std::make_unique<AddedVocabulary>(parse_added_tokens(root.value("added_tokens", Json()), path),
                                                         *parts.model, parts.normalizer.get());
  resolve_bos_eos(parts, path);
  return parts;
}

}  // namespace qb::tok
