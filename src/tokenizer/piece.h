// The unit that moves through the encode pipeline: HuggingFace's `Split` of a PreTokenizedString, without the
// offset bookkeeping we do not need. Added-token extraction cuts the input into pieces; normalizers rewrite
// a piece's text; pre-tokenizers cut pieces further; the model turns each remaining piece into ids.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace qb::tok {

struct Piece {
  std::string text;
  // The piece begins at byte 0 of the input: Metaspace's prepend_scheme "first" prepends only there.
  bool starts_at_origin = false;
  // >= 0: an added token; later stages pass it through untouched.
  int32_t added_token_id = -1;
};

// Replaces each piece that holds no added token by what `split` makes of it, dropping empty results
// (PreTokenizedString::split). `split(Piece&&, std::vector<Piece>& out)` appends its pieces to `out`.
template <typename SplitFn>
void split_pieces(std::vector<Piece>& pieces, SplitFn&& split) {
  std::vector<Piece> result;
  result.reserve(pieces.size());
  std::vector<Piece> produced;
  for (Piece& piece : pieces) {
    if (piece.added_token_id >= 0) {
      result.push_back(std::move(piece));
      continue;
    }
    produced.clear();
    split(std::move(piece), produced);
    for (Piece& p : produced) {
      if (!p.text.empty()) result.push_back(std::move(p));
    }
  }
  pieces = std::move(result);
}

}  // namespace qb::tok
