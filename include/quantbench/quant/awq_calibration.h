// Calibration data for the AWQ search: token blocks cut from a text file the way AutoAWQ cuts its dataset,
// and the input of every decoder linear on them, recorded during one float32 forward pass of the original model.
#pragma once

#include <ATen/Tensor.h>

#include <string>
#include <vector>

#include "quantbench/io/model_resolver.h"
#include "quantbench/quant/awq_search.h"
#include "quantbench/tokenizer/tokenizer.h"

namespace qb::quant {

// AutoAWQ's get_calib_dataset on a plain text: each non-empty line, stripped, is one sample, encoded with the
// tokenizer's special tokens; samples longer than block_tokens are skipped; the first `samples` are
// concatenated and cut into blocks of block_tokens, the remainder dropped. Returns int64 [blocks, block_tokens];
// kInvalidInput when the text does not fill one block.
at::Tensor calibration_blocks(const tok::Tokenizer& tokenizer, const std::string& text, int64_t samples,
                              int64_t block_tokens);

// Builds the model in float32 on the CPU with every linear in `linears` wrapped so that its input is recorded,
// runs `blocks` through it (`blocks_per_forward` at a time) and returns the inputs by prefix, float32
// [blocks, tokens, in]. Linears the builder fuses (q/k/v, gate/up) share one recorded tensor.
LinearInputs capture_linear_inputs(const io::ResolvedModel& model, const std::vector<std::string>& linears,
                                   const at::Tensor& blocks, int64_t blocks_per_forward = 4);

}  // namespace qb::quant
