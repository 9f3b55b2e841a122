#include "split_behavior.h"

#include <algorithm>

#include "quantbench/core/error.h"

namespace qb::tok {

SplitBehavior parse_split_behavior(const std::string& name, const std::string& where) {
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  fail(ErrorKind::kUnsupported,
       "{}: split behavior '{}' is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous",
       where, name);
}

void split_at_spans(Piece&& piece, const std::vector<PatternSpan>& spans, SplitBehavior behavior,
                    std::vector<Piece>& out) {
  // (begin, end, drop) per output piece, built as NormalizedString::split does.
  struct Cut {
    size_t begin;
    size_t end;
    bool drop;
  };
  std::vector<Cut> cuts;
  cuts.reserve(spans.size());
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const PatternSpan& s : spans) cuts.push_back({s.begin, s.end, false});
      break;
    case SplitBehavior::kRemoved:
      for (const PatternSpan& s : spans) cuts.push_back({s.begin, s.end, s.is_match});
      break;
    case SplitBehavior::kContiguous: {
      bool previous_match = false;
      for (const PatternSpan& s : spans) {
        if (s.is_match == previous_match && !cuts.empty()) {
          cuts.back().end = s.end;
        } else {
          cuts.push_back({s.begin, s.end, false});
        }
        previous_match = s.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const PatternSpan& s : spans) {
        if (s.is_match && !previous_match && !cuts.empty()) {
          cuts.back().end = s.end;
        } else {
          cuts.push_back({s.begin, s.end, false});
        }
        previous_match = s.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      // Walks right to left: a match joins the piece that follows it.
      bool previous_match = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !cuts.empty()) {
          cuts.back().begin = it->begin;
        } else {
          cuts.push_back({it->begin, it->end, false});
        }
        previous_match = it->is_match;
      }
      std::reverse(cuts.begin(), cuts.end());
      break;
    }
  }
  for (const Cut& cut : cuts) {
    if (cut.drop || cut.begin == cut.end) continue;
    Piece part;
    part.text = piece.text.substr(cut.begin, cut.end - cut.begin);
    part.starts_at_origin = piece.starts_at_origin && cut.begin == 0;
    out.push_back(std::move(part));
  }
}

}  // namespace qb::tok
