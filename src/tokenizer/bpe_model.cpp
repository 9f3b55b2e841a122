#include "bpe_model.h"

#include <fmt/format.h>

#include <queue>

#include "quantbench/core/error.h"
#include "utf8.h"

namespace qb::tok {
namespace {

// One symbol of a word being merged; `bytes == 0` marks a symbol merged into its left neighbour.
struct Symbol {
  int32_t id;
  int32_t prev;  // index, -1 at the start
  int32_t next;  // index, -1 at the end
  uint32_t bytes;
};

struct Candidate {
  int32_t rank;
  int32_t position;  // index of the left symbol
  int32_t new_id;
};

// priority_queue keeps the "largest" on top: lower rank, then lower position, counts as larger.
struct CandidateOrder {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.rank != b.rank ? a.rank > b.rank : a.position > b.position;
  }
};

void append_symbol(std::vector<Symbol>& symbols, int32_t id, uint32_t bytes) {
  const auto index = static_cast<int32_t>(symbols.size());
  if (!symbols.empty()) symbols.back().next = index;
  symbols.push_back({id, index - 1, -1, bytes});
}

}  // namespace

BpeModel::BpeModel(Vocab vocab, const Merges& merges, BpeOptions options, const std::string& where)
    : vocab_(std::move(vocab)), options_(std::move(options)), where_(where) {
  tokens_by_id_.reserve(vocab_.size());
  for (const auto& [token, id] : vocab_) tokens_by_id_.emplace(id, token);
  for (int byte = 0; byte < 256; ++byte) {
    const auto it = vocab_.find(fmt::format("<0x{:02X}>", byte));
    byte_token_ids_[byte] = it == vocab_.end() ? -1 : it->second;
  }
  const std::string& prefix = options_.continuing_subword_prefix;
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const auto left_it = vocab_.find(left);
    const auto right_it = vocab_.find(right);
    QB_CHECK(left_it != vocab_.end(), kInvalidInput, "{}: merge {} ('{} {}'): '{}' is not in the vocab", where,
             rank, left, right, left);
    QB_CHECK(right_it != vocab_.end(), kInvalidInput, "{}: merge {} ('{} {}'): '{}' is not in the vocab", where,
             rank, left, right, right);
    // With a continuing-subword prefix the right part carries it and the merged token does not repeat it.
    const bool strip_prefix = !prefix.empty() && right.compare(0, prefix.size(), prefix) == 0;
    const std::string merged = left + (strip_prefix ? right.substr(prefix.size()) : right);
    const auto merged_it = vocab_.find(merged);
    QB_CHECK(merged_it != vocab_.end(), kInvalidInput, "{}: merge {} ('{} {}'): result '{}' is not in the vocab",
             where, rank, left, right, merged);
    // A repeated pair keeps its last rank, as HF's map build does.
    merges_[pair_key(left_it->second, right_it->second)] = {static_cast<int32_t>(rank), merged_it->second};
  }
}

std::optional<int32_t> BpeModel::token_to_id(const std::string& token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  const auto it = tokens_by_id_.find(id);
  return it == tokens_by_id_.end() ? nullptr : &it->second;
}

const BpeModel::Merge* BpeModel::find_merge(int32_t left, int32_t right) const {
  const auto it = merges_.find(pair_key(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  if (options_.ignore_merges) {
    const auto it = vocab_.find(std::string(word));
    if (it != vocab_.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() < kCacheMaxWordBytes;
  std::string key;
  if (cacheable) {
    key.assign(word);
    std::lock_guard<std::mutex> lock(cache_mutex_);
    const auto it = cache_.find(key);
    if (it != cache_.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> word_ids = merge_word(word);
  ids.insert(ids.end(), word_ids.begin(), word_ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() < kCacheMaxEntries) cache_.emplace(std::move(key), std::move(word_ids));
  }
}

std::vector<int32_t> BpeModel::merge_word(std::string_view word) const {
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  // An unk not yet appended (fuse_unk grows it): id (-1 when none) and the bytes it covers.
  int32_t pending_unk_id = -1;
  uint32_t pending_unk_bytes = 0;
  std::optional<int32_t> unk_id;
  std::string key;
  size_t pos = 0;
  while (pos < word.size()) {
    const size_t begin = pos;
    const size_t length = utf8_sequence_length(static_cast<unsigned char>(word[pos]));
    pos += length;
    key.assign(word.substr(begin, length));
    if (begin != 0 && !options_.continuing_subword_prefix.empty()) key.insert(0, options_.continuing_subword_prefix);
    if (pos == word.size()) key += options_.end_of_word_suffix;

    const auto it = vocab_.find(key);
    if (it != vocab_.end()) {
      if (pending_unk_id >= 0) append_symbol(symbols, pending_unk_id, pending_unk_bytes);
      pending_unk_id = -1;
      append_symbol(symbols, it->second, static_cast<uint32_t>(length));
      continue;
    }
    if (options_.byte_fallback) {
      bool all_bytes_known = true;
      for (char c : key) all_bytes_known = all_bytes_known && byte_token_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all_bytes_known) {
        // HF appends these before a pending unk (which only comes later); kept for exactness.
        for (char c : key) append_symbol(symbols, byte_token_ids_[static_cast<unsigned char>(c)], 1);
        continue;
      }
    }
    if (!options_.unk_token) continue;  // no unk token: the character is dropped, as in HF
    if (!unk_id) {
      unk_id = token_to_id(*options_.unk_token);
      QB_CHECK(unk_id.has_value(), kInvalidInput, "{}: unk_token '{}' is not in the vocab", where_,
               *options_.unk_token);
    }
    if (pending_unk_id >= 0 && options_.fuse_unk) {
      pending_unk_bytes += static_cast<uint32_t>(length);
    } else {
      if (pending_unk_id >= 0) append_symbol(symbols, pending_unk_id, pending_unk_bytes);
      pending_unk_id = *unk_id;
      pending_unk_bytes = static_cast<uint32_t>(length);
    }
  }
  if (pending_unk_id >= 0) append_symbol(symbols, pending_unk_id, pending_unk_bytes);

  std::priority_queue<Candidate, std::vector<Candidate>, CandidateOrder> queue;
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const Merge* m = find_merge(symbols[i].id, symbols[i + 1].id)) {
      queue.push({m->rank, static_cast<int32_t>(i), m->new_id});
    }
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.position];
    if (left.bytes == 0 || left.next < 0) continue;
    const int32_t right_index = left.next;
    const Symbol right = symbols[right_index];
    const Merge* current = find_merge(left.id, right.id);
    if (current == nullptr || current->new_id != top.new_id) continue;  // stale: a neighbour changed

    left.id = top.new_id;
    left.bytes += right.bytes;
    left.next = right.next;
    symbols[right_index].bytes = 0;
    if (right.next >= 0) symbols[right.next].prev = top.position;
    if (left.prev >= 0) {
      if (const Merge* m = find_merge(symbols[left.prev].id, left.id)) queue.push({m->rank, left.prev, m->new_id});
    }
    if (left.next >= 0) {
      if (const Merge* m = find_merge(left.id, symbols[left.next].id)) {
        queue.push({m->rank, top.position, m->new_id});
      }
    }
  }
  std::vector<int32_t> ids;
  ids.reserve(symbols.size());
  for (const Symbol& s : symbols) {
    if (s.bytes != 0) ids.push_back(s.id);
  }
  return ids;
}

}  // namespace qb::tok
