#include "unicode_nfc.h"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <vector>

#include "utf8.h"

namespace qb::tok {
namespace {

#include "unicode_nfc_tables.inc"

// Hangul syllables decompose and compose arithmetically (Unicode 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
                   kSCount = kLCount * kNCount;

uint32_t combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  const auto* end = std::end(kCombiningClassRanges);
  const auto* it = std::upper_bound(std::begin(kCombiningClassRanges), end, cp,
                                    [](char32_t value, const uint32_t(&range)[3]) { return value < range[0]; });
  if (it == std::begin(kCombiningClassRanges)) return 0;
  --it;
  return cp <= (*it)[1] ? (*it)[2] : 0;
}

void decompose_into(char32_t cp, std::vector<char32_t>& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const char32_t s_index = cp - kSBase;
    out.push_back(kLBase + s_index / kNCount);
    out.push_back(kVBase + (s_index % kNCount) / kTCount);
    if (s_index % kTCount != 0) out.push_back(kTBase + s_index % kTCount);
    return;
  }
  const auto* end = std::end(kDecompositions);
  const auto* it = std::lower_bound(std::begin(kDecompositions), end, cp,
                                    [](const uint32_t(&entry)[3], char32_t value) { return entry[0] < value; });
  if (it == end || (*it)[0] != cp) {
    out.push_back(cp);
    return;
  }
  for (uint32_t k = 0; k < (*it)[2]; ++k) out.push_back(kDecompositionPool[(*it)[1] + k]);
}

// The primary composite of (first, second), or 0.
char32_t compose_pair(char32_t first, char32_t second) {
  if (first >= kLBase && first < kLBase + kLCount && second >= kVBase && second < kVBase + kVCount) {
    return kSBase + ((first - kLBase) * kVCount + (second - kVBase)) * kTCount;
  }
  if (first >= kSBase && first < kSBase + kSCount && (first - kSBase) % kTCount == 0 && second > kTBase &&
      second < kTBase + kTCount) {
    return first + (second - kTBase);
  }
  const auto* end = std::end(kCompositions);
  const auto* it = std::lower_bound(std::begin(kCompositions), end, std::make_pair(first, second),
                                    [](const uint32_t(&entry)[3], const std::pair<char32_t, char32_t>& key) {
                                      return entry[0] != key.first ? entry[0] < key.first : entry[1] < key.second;
                                    });
  if (it == end || (*it)[0] != first || (*it)[1] != second) return 0;
  return (*it)[2];
}

// Full canonical decomposition in canonical order: each run of non-starters stably sorted by class.
std::vector<char32_t> canonical_decomposition(std::string_view text) {
  std::vector<char32_t> cps;
  cps.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) decompose_into(next_code_point(text, pos), cps);
  size_t i = 0;
  while (i < cps.size()) {
    if (combining_class(cps[i]) == 0) {
      ++i;
      continue;
    }
    size_t run_end = i;
    while (run_end < cps.size() && combining_class(cps[run_end]) != 0) ++run_end;
    std::stable_sort(cps.begin() + i, cps.begin() + run_end,
                     [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
    i = run_end;
  }
  return cps;
}

// Canonical composition (UAX #15): a character joins the last starter unless a character between them has
// a class equal to or higher than its own (or is itself a starter).
void compose(std::vector<char32_t>& cps) {
  if (cps.empty()) return;
  size_t starter = 0;
  uint32_t last_class = combining_class(cps[0]) == 0 ? 0 : 256;
  size_t kept = 1;
  for (size_t i = 1; i < cps.size(); ++i) {
    const char32_t cp = cps[i];
    const uint32_t cp_class = combining_class(cp);
    const char32_t composite = last_class < cp_class || last_class == 0 ? compose_pair(cps[starter], cp) : 0;
    if (composite != 0) {
      cps[starter] = composite;
      continue;
    }
    if (cp_class == 0) starter = kept;
    last_class = cp_class;
    cps[kept++] = cp;
  }
  cps.resize(kept);
}

bool is_ascii(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

std::string encode(const std::vector<char32_t>& cps) {
  std::string out;
  out.reserve(cps.size() * 2);
  for (char32_t cp : cps) append_utf8(out, cp);
  return out;
}

}  // namespace

std::string to_nfd(std::string_view text) {
  if (is_ascii(text)) return std::string(text);
  return encode(canonical_decomposition(text));
}

std::string to_nfc(std::string_view text) {
  if (is_ascii(text)) return std::string(text);
  std::vector<char32_t> cps = canonical_decomposition(text);
  compose(cps);
  return encode(cps);
}

}  // namespace qb::tok
