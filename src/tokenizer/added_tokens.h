// Added tokens (special or not) and how HuggingFace finds them in text (tokenizer/added_vocabulary.rs).
//
// Ids: a token whose content is already in the model vocab takes that id; any other takes the next id after
// the largest added id (or the model's vocab size), in file order. The ids written in tokenizer.json are
// not read, exactly as HF does.
// A content defined twice keeps one id and its last definition's flags.
// Extraction, before pre-tokenization: (1) tokens with normalized=false are cut out of the raw text; (2) each
// remaining piece is normalized and tokens with normalized=true (matched in their normalized form) are cut
// out of it. Matching is leftmost-longest, non-overlapping. single_word keeps a match only when no word
// character touches it; lstrip/rstrip widen the match over the whitespace on that side, so the spaces
// disappear into the token.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "bpe_model.h"
#include "normalizer.h"
#include "piece.h"

namespace qb::tok {

struct AddedToken {
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

class AddedVocabulary {
 public:
  AddedVocabulary(const std::vector<AddedToken>& tokens, const BpeModel& model, const Normalizer* normalizer);

  // The input cut into pieces (added tokens marked), every other piece normalized.
  std::vector<Piece> extract_and_normalize(std::string_view text, const Normalizer* normalizer) const;

  std::optional<int32_t> token_to_id(const std::string& content) const;
  // The string an added id decodes as: its content, normalized when the token is normalized=true (HF 0.23
  // returns that form from id_to_token and feeds it to the decoder).
  const std::string* id_to_token(int32_t id) const;
  // By string, as HF's decode checks skip_special_tokens: true for the content of any special token.
  bool is_special(const std::string& token) const { return special_contents_.count(token) != 0; }
  // Added tokens whose content the model vocab does not hold (they extend the vocab).
  int64_t count_outside_model() const { return count_outside_model_; }

 private:
  // Byte trie over the contents of one pass's tokens.
  struct TrieNode {
    std::vector<std::pair<unsigned char, int32_t>> children;
    int32_t token_id = -1;  // >= 0: a token ends here
  };
  struct Matcher {
    std::vector<TrieNode> nodes{TrieNode{}};
    bool may_start[256] = {};
    bool empty() const { return nodes.size() == 1; }
    void insert(const std::string& pattern, int32_t id);
  };
  struct Match {
    size_t begin;
    size_t end;
    int32_t id;
  };
  std::vector<Match> find_matches(std::string_view text, const Matcher& matcher) const;
  void split_piece(Piece&& piece, const Matcher& matcher, std::vector<Piece>& out) const;

  std::unordered_map<std::string, int32_t> ids_by_content_;
  std::unordered_map<int32_t, AddedToken> tokens_by_id_;
  std::unordered_map<int32_t, std::string> strings_by_id_;
  std::unordered_set<std::string> special_contents_;
  Matcher raw_matcher_;         // normalized == false: matched on the input as given
  Matcher normalized_matcher_;  // normalized == true: matched on normalized pieces
  int64_t count_outside_model_ = 0;
};

}  // namespace qb::tok
