// Text for quality measurements, read exactly as the file holds it (UTF-8), optionally cut to its
// first N characters (code points, as Python's str[:N]) and encoded with the model's tokenizer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "quantbench/tokenizer/tokenizer.h"

namespace qb::quality {

std::string read_text_file(const std::string& path);
std::string first_code_points(const std::string& text, int64_t count);
// The tokenizer.json beside a resolved model's checkpoint; throws kNotFound naming the directory.
tok::Tokenizer tokenizer_for_model_dir(const std::string& dir);

}  // namespace qb::quality
