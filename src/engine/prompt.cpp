#include "quantbench/engine/prompt.h"

#include <ATen/ATen.h>

#include "quantbench/core/error.h"
#include "quantbench/model/weight_source.h"

namespace qb::engine {

const std::string& builtin_prompt_text() {
  // Plain English prose written for quantbench, so prompts from real tokenizers are ordinary text.
  static const std::string text =
      "The lighthouse keeper climbed the narrow stairs each evening, counting the steps as his father had "
      "taught him. From the lamp room he could see the fishing boats returning to the harbour, their wakes "
      "drawing pale lines across the darkening water. He trimmed the wick, polished the great lens, and wrote "
      "the weather in the log: wind from the south-west, a long swell, clouds building over the hills. When "
      "the light began to turn, he sat by the window with a cup of tea and watched the beam sweep over the "
      "rocks where, many years ago, a ship had been lost in a winter storm.";
  return text;
}

at::Tensor make_prompt(const tok::Tokenizer* tokenizer, const std::optional<std::string>& text, int64_t vocab_size,
                       int64_t batch, int64_t length, uint64_t seed) {
  QB_CHECK(batch > 0 && length > 0, kInvalidInput, "batch ({}) and prompt length ({}) must be positive", batch, length);
  if (tokenizer == nullptr) {
    QB_CHECK(!text.has_value(), kInvalidInput, "--prompt needs a model with a tokenizer.json; synthetic models take random ids");
    at::Generator generator = model::make_private_generator(c10::Device(c10::kCPU));
    generator.set_current_seed(seed);
    return at::randint(0, vocab_size, {batch, length}, generator, at::kLong);
  }
  const std::vector<int32_t> ids = tokenizer->encode(text.value_or(builtin_prompt_text()), true);
  QB_CHECK(!ids.empty(), kInvalidInput, "the prompt encodes to no tokens");
  at::Tensor row = at::empty({length}, at::kLong);
  auto* out = row.data_ptr<int64_t>();
  for (int64_t i = 0; i < length; ++i) out[i] = ids[static_cast<size_t>(i) % ids.size()];
  return row.unsqueeze(0).repeat({batch, 1});
}

}  // namespace qb::engine
