// Prompts of an exact token length. With a tokenizer: the user's text (or a built-in English
// passage) encoded, repeated and cut to length, the same for every sequence of the batch. Without
// one (synthetic models): deterministic random ids in [0, vocab).
#pragma once

#include <ATen/Tensor.h>

#include <optional>
#include <string>

#include "quantbench/tokenizer/tokenizer.h"

namespace qb::engine {

const std::string& builtin_prompt_text();

// [batch, length] int64 on the CPU.
at::Tensor make_prompt(const tok::Tokenizer* tokenizer, const std::optional<std::string>& text, int64_t vocab_size,
                       int64_t batch, int64_t length, uint64_t seed);

}  // namespace qb::engine
