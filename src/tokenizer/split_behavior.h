// How a piece is cut at pattern matches (HF SplitDelimiterBehavior), e.g. for matches of "-" in "a-b":
// Removed [a][b], Isolated [a][-][b], MergedWithPrevious [a-][b], MergedWithNext [a][-b], Contiguous like
// Isolated but runs of adjacent matches (or non-matches) fuse into one piece.
#pragma once

#include <string>
#include <vector>

#include "pattern.h"
#include "piece.h"

namespace qb::tok {

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Parses tokenizer.json's behaviour name ("Isolated", ...); `where` names the component for errors.
SplitBehavior parse_split_behavior(const std::string& name, const std::string& where);

// Appends the pieces `piece` is cut into at `spans` (which tile its text) under `behavior`. Empty pieces
// may be appended; split_pieces drops them.
void split_at_spans(Piece&& piece, const std::vector<PatternSpan>& spans, SplitBehavior behavior,
                    std::vector<Piece>& out);

}  // namespace qb::tok
