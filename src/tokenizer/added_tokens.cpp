#include "added_tokens.h"

#include <algorithm>

#include "onig_regex.h"
#include "utf8.h"

namespace qb::tok {
namespace {

// Rust regex's \w (what single_word tests): Alphabetic, marks, decimal digits, connector punctuation,
// join controls.
bool is_word_character(std::string_view one_character) {
  static const OnigRegex word(R"(\A[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}])");
  ByteSpan match{};
  return word.search(one_character, 0, match);
}

bool starts_with_word(std::string_view text) {
  if (text.empty()) return false;
  return is_word_character(text.substr(0, utf8_sequence_length(static_cast<unsigned char>(text[0]))));
}

size_t last_character_start(std::string_view text) {
  size_t start = text.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  return start;
}

bool ends_with_word(std::string_view text) {
  if (text.empty()) return false;
  return is_word_character(text.substr(last_character_start(text)));
}

// Start of the whitespace run that ends `text` (text.size() when there is none).
size_t trailing_space_start(std::string_view text) {
  size_t end = text.size();
  while (end > 0) {
    const size_t start = last_character_start(text.substr(0, end));
    size_t probe = start;
    if (!is_unicode_whitespace(next_code_point(text, probe))) break;
    end = start;
  }
  return end;
}

// Length of the whitespace run that starts `text`.
size_t leading_space_length(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t next = pos;
    if (!is_unicode_whitespace(next_code_point(text, next))) break;
    pos = next;
  }
  return pos;
}

}  // namespace

void AddedVocabulary::Matcher::insert(const std::string& pattern, int32_t id) {
  if (pattern.empty()) return;
  may_start[static_cast<unsigned char>(pattern[0])] = true;
  int32_t node = 0;
  for (char c : pattern) {
    const auto byte = static_cast<unsigned char>(c);
    auto& children = nodes[node].children;
    const auto it = std::find_if(children.begin(), children.end(), [&](const auto& e) { return e.first == byte; });
    if (it != children.end()) {
      node = it->second;
      continue;
    }
    const auto child = static_cast<int32_t>(nodes.size());
    children.emplace_back(byte, child);
    nodes.emplace_back();
    node = child;
  }
  // Of two ids with the same pattern the lower keeps it.
  if (nodes[node].token_id < 0) nodes[node].token_id = id;
}

AddedVocabulary::AddedVocabulary(const std::vector<AddedToken>& tokens, const BpeModel& model,
                                 const Normalizer* normalizer) {
  int32_t largest_added_id = -1;
  for (const AddedToken& token : tokens) {
    if (token.content.empty()) continue;
    int32_t id;
    if (const auto added = ids_by_content_.find(token.content); added != ids_by_content_.end()) {
      id = added->second;
    } else if (const auto in_model = model.token_to_id(token.content)) {
      id = *in_model;
    } else {
      const auto model_size = static_cast<int32_t>(model.vocab_size());
      id = largest_added_id >= model_size || model_size == 0 ? largest_added_id + 1 : model_size;
      ++count_outside_model_;
    }
    ids_by_content_[token.content] = id;
    largest_added_id = std::max(largest_added_id, id);
    tokens_by_id_[id] = token;  // a later definition of the same content replaces the earlier one
    if (token.special) special_contents_.insert(token.content);
  }
  // One pattern per id, from the token's final definition (HF builds its tries from the id -> token map).
  std::vector<int32_t> ids;
  for (const auto& entry : tokens_by_id_) ids.push_back(entry.first);
  std::sort(ids.begin(), ids.end());
  for (int32_t id : ids) {
    const AddedToken& token = tokens_by_id_.at(id);
    if (!token.normalized) {
      raw_matcher_.insert(token.content, id);
      strings_by_id_[id] = token.content;
    } else {
      std::string pattern = token.content;
      if (normalizer != nullptr) normalizer->normalize(pattern);
      normalized_matcher_.insert(pattern, id);
      strings_by_id_[id] = pattern;
    }
  }
}

std::optional<int32_t> AddedVocabulary::token_to_id(const std::string& content) const {
  const auto it = ids_by_content_.find(content);
  if (it == ids_by_content_.end()) return std::nullopt;
  return it->second;
}

const std::string* AddedVocabulary::id_to_token(int32_t id) const {
  const auto it = strings_by_id_.find(id);
  return it == strings_by_id_.end() ? nullptr : &it->second;
}

std::vector<AddedVocabulary::Match> AddedVocabulary::find_matches(std::string_view text,
                                                                  const Matcher& matcher) const {
  std::vector<Match> matches;
  size_t start_offset = 0;  // end of the previous accepted match
  size_t pos = 0;
  while (pos < text.size()) {
    if (!matcher.may_start[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    // Longest token starting at pos.
    int32_t node = 0;
    int32_t found_id = -1;
    size_t found_end = 0;
    for (size_t k = pos; k < text.size(); ++k) {
      const auto byte = static_cast<unsigned char>(text[k]);
      const auto& children = matcher.nodes[node].children;
      const auto it = std::find_if(children.begin(), children.end(), [&](const auto& e) { return e.first == byte; });
      if (it == children.end()) break;
      node = it->second;
      if (matcher.nodes[node].token_id >= 0) {
        found_id = matcher.nodes[node].token_id;
        found_end = k + 1;
      }
    }
    if (found_id < 0) {
      ++pos;
      continue;
    }
    size_t begin = pos;
    size_t end = found_end;
    pos = found_end;  // the automaton resumes after the match, accepted or not
    const AddedToken& token = tokens_by_id_.at(found_id);
    if (token.single_word) {
      const bool space_before = begin == 0 || !ends_with_word(text.substr(0, begin));
      const bool space_after = end == text.size() || !starts_with_word(text.substr(end));
      if (!space_before || !space_after) continue;
    }
    if (token.lstrip) begin = std::max(trailing_space_start(text.substr(0, begin)), start_offset);
    if (token.rstrip) end += leading_space_length(text.substr(end));
    matches.push_back({begin, end, found_id});
    start_offset = end;
  }
  return matches;
}

void AddedVocabulary::split_piece(Piece&& piece, const Matcher& matcher, std::vector<Piece>& out) const {
  if (matcher.empty()) {
    out.push_back(std::move(piece));
    return;
  }
  const std::string& text = piece.text;
  const std::vector<Match> matches = find_matches(text, matcher);
  if (matches.empty()) {
    out.push_back(std::move(piece));
    return;
  }
  size_t previous = 0;
  auto emit = [&](size_t begin, size_t end, int32_t id) {
    Piece part;
    part.text = text.substr(begin, end - begin);
    part.starts_at_origin = piece.starts_at_origin && begin == 0;
    part.added_token_id = id;
    out.push_back(std::move(part));
  };
  for (const Match& m : matches) {
    if (previous < m.begin) emit(previous, m.begin, -1);
    emit(m.begin, m.end, m.id);
    previous = m.end;
  }
  if (previous != text.size()) emit(previous, text.size(), -1);
}

std::vector<Piece> AddedVocabulary::extract_and_normalize(std::string_view text, const Normalizer* normalizer) const {
  std::vector<Piece> pieces;
  pieces.push_back(Piece{std::string(text), true, -1});
  split_pieces(pieces, [&](Piece&& piece, std::vector<Piece>& out) { split_piece(std::move(piece), raw_matcher_, out); });
  split_pieces(pieces, [&](Piece&& piece, std::vector<Piece>& out) {
    if (normalizer != nullptr) normalizer->normalize(piece.text);
    split_piece(std::move(piece), normalized_matcher_, out);
  });
  return pieces;
}

}  // namespace qb::tok
