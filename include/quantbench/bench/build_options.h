// How every measuring command (run, sweep, ppl) turns "model + precision + flags" into the options the
// builder takes, and how it names them in its records: one place, so a run and a perplexity of the same
// precision build the same model and say so in the same words.
#pragma once

#include <ATen/core/ATen_fwd.h>
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include <string>

#include "quantbench/core/dtype_label.h"
#include "quantbench/io/model_resolver.h"
#include "quantbench/model/builder.h"
#include "quantbench/quant/format.h"

namespace qb::bench {

// compute_dtype "auto" takes the precision's default for this model and device (model::default_compute_dtype);
// the format options are `format` with the activation dtype and device filled in.
model::BuildOptions build_options(const io::ResolvedModel& resolved, const std::string& precision, c10::Device device,
                                  const std::string& compute_dtype, const quant::FormatOptions& format,
                                  bool quantize_lm_head);

// The options that matter for `precision` (block size and double quantization for nf4/fp4, group size for
// awq, ...), as the records' "format_options".
nlohmann::json format_options_json(const quant::FormatOptions& format, const std::string& precision);

}  // namespace qb::bench
