#include "onig_regex.h"

#include <oniguruma.h>

#include <mutex>

#include "quantbench/core/error.h"
#include "utf8.h"

namespace qb::tok {
namespace {

void initialize_oniguruma_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    OnigEncoding encodings[] = {ONIG_ENCODING_UTF8};
    onig_initialize(encodings, 1);
  });
}

const OnigUChar* bytes_of(std::string_view text) { return reinterpret_cast<const OnigUChar*>(text.data()); }

// Owns one match region for the duration of a call.
struct Region {
  OnigRegion* region = onig_region_new();
  ~Region() { onig_region_free(region, 1); }
};

}  // namespace

OnigRegex::OnigRegex(const std::string& pattern) {
  initialize_oniguruma_once();
  OnigErrorInfo error_info;
  const auto* begin = reinterpret_cast<const OnigUChar*>(pattern.data());
  const int status = onig_new(&regex_, begin, begin + pattern.size(), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8,
                              ONIG_SYNTAX_DEFAULT, &error_info);
  if (status != ONIG_NORMAL) {
    OnigUChar message[ONIG_MAX_ERROR_MESSAGE_LEN];
    onig_error_code_to_str(message, status, &error_info);
    regex_ = nullptr;
    fail(ErrorKind::kInvalidInput, "regex '{}' does not compile: {}", pattern, reinterpret_cast<char*>(message));
  }
}

OnigRegex::~OnigRegex() {
  if (regex_ != nullptr) onig_free(regex_);
}

OnigRegex& OnigRegex::operator=(OnigRegex&& other) noexcept {
  if (this != &other) {
    if (regex_ != nullptr) onig_free(regex_);
    regex_ = std::exchange(other.regex_, nullptr);
  }
  return *this;
}

bool OnigRegex::search(std::string_view text, size_t from, ByteSpan& match) const {
  Region region;
  const OnigUChar* str = bytes_of(text);
  const OnigUChar* end = str + text.size();
  const int found = onig_search(regex_, str, end, str + from, end, region.region, ONIG_OPTION_NONE);
  if (found < 0) {
    QB_CHECK(found == ONIG_MISMATCH, kInternal, "Oniguruma search failed with status {}", found);
    return false;
  }
  match = {static_cast<size_t>(region.region->beg[0]), static_cast<size_t>(region.region->end[0])};
  return true;
}

std::vector<ByteSpan> OnigRegex::find_all(std::string_view text) const {
  std::vector<ByteSpan> matches;
  Region region;
  const OnigUChar* str = bytes_of(text);
  const OnigUChar* end = str + text.size();
  size_t search_from = 0;
  bool have_previous = false;
  size_t previous_end = 0;
  while (search_from <= text.size()) {
    onig_region_clear(region.region);
    const int found = onig_search(regex_, str, end, str + search_from, end, region.region, ONIG_OPTION_NONE);
    if (found < 0) {
      QB_CHECK(found == ONIG_MISMATCH, kInternal, "Oniguruma search failed with status {}", found);
      break;
    }
    const auto begin_byte = static_cast<size_t>(region.region->beg[0]);
    const auto end_byte = static_cast<size_t>(region.region->end[0]);
    if (begin_byte == end_byte && have_previous && previous_end == end_byte) {
      // An empty match where the last one ended: step over one character, as the crate does.
      search_from += search_from < text.size() ? utf8_sequence_length(static_cast<unsigned char>(text[search_from]))
                                               : 1;
      continue;
    }
    matches.push_back({begin_byte, end_byte});
    search_from = end_byte;
    previous_end = end_byte;
    have_previous = true;
  }
  return matches;
}

std::string escape_regex(std::string_view literal) {
  // regex::escape's set of meta characters; other punctuation stays bare (in Oniguruma `\<` is not '<').
  static constexpr std::string_view kMeta = "\\.+*?()|[]{}^$#&-~";
  std::string escaped;
  escaped.reserve(literal.size() * 2);
  for (char c : literal) {
    if (kMeta.find(c) != std::string_view::npos) escaped.push_back('\\');
    escaped.push_back(c);
  }
  return escaped;
}

}  // namespace qb::tok
