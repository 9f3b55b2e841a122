// The BPE model: one pre-tokenized word in, token ids out, as HuggingFace's models::bpe does it.
//
// A word starts as one symbol per character (with the continuing-subword prefix / end-of-word suffix where
// configured); characters missing from the vocab become <0xNN> byte tokens (byte_fallback) or the unk token
// (consecutive ones fused into one with fuse_unk; dropped when there is no unk token). Then the pair of
// adjacent symbols with the lowest merge rank is merged, leftmost first among equal ranks, until no pair
// has a merge: a doubly linked symbol list plus a min-heap of candidate merges, O(n log n) per word, with
// stale heap entries discarded when popped. With ignore_merges (Llama-3), a word that is itself in the
// vocab is one token. Results are cached per word.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace qb::tok {

struct BpeOptions {
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix;  // empty: none
  std::string end_of_word_suffix;         // empty: none
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

class BpeModel {
 public:
  using Vocab = std::unordered_map<std::string, int32_t>;
  using Merges = std::vector<std::pair<std::string, std::string>>;

  // Merges are in rank order (first = merged first). Throws kInvalidInput, naming `where`, when a merge
  // names a token (or produces one) that is not in the vocab.
  BpeModel(Vocab vocab, const Merges& merges, BpeOptions options, const std::string& where);

  // Appends the ids of `word` (non-empty, valid UTF-8) to `ids`.
  void tokenize(std::string_view word, std::vector<int32_t>& ids) const;

  std::optional<int32_t> token_to_id(const std::string& token) const;
  const std::string* id_to_token(int32_t id) const;
  int64_t vocab_size() const { return static_cast<int64_t>(vocab_.size()); }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  const Merge* find_merge(int32_t left, int32_t right) const;
  std::vector<int32_t> merge_word(std::string_view word) const;

  Vocab vocab_;
  std::unordered_map<int32_t, std::string> tokens_by_id_;
  std::unordered_map<uint64_t, Merge> merges_;
  BpeOptions options_;
  std::string where_;
  int32_t byte_token_ids_[256];  // id of "<0xNN>", or -1

  // word -> ids; words of kCacheMaxWordBytes or more are not cached (HF's MAX_LENGTH).
  static constexpr size_t kCacheMaxWordBytes = 256;
  static constexpr size_t kCacheMaxEntries = 1 << 17;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace qb::tok
