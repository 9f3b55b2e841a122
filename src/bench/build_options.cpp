#include "quantbench/bench/build_options.h"

#include "quantbench/io/model_config.h"

namespace qb::bench {

model::BuildOptions build_options(const io::ResolvedModel& resolved, const std::string& precision, c10::Device device,
                                  const std::string& compute_dtype, const quant::FormatOptions& format,
                                  bool quantize_lm_head) {
  model::BuildOptions options;
  options.precision = precision;
  options.device = device;
  options.compute_dtype =
      compute_dtype == "auto"
          ? model::default_compute_dtype(precision, parse_model_config(resolved.config, resolved.config_path), device)
          : parse_compute_dtype(compute_dtype);
  options.format = format;
  options.format.activation_dtype = options.compute_dtype;
  options.format.device = device;
  options.quantize_lm_head = quantize_lm_head;
  return options;
}

nlohmann::json format_options_json(const quant::FormatOptions& f, const std::string& precision) {
  nlohmann::json j = {{"activation_dtype", dtype_label(f.activation_dtype)}};
  if (precision == "nf4" || precision == "fp4") {
    j["blocksize"] = f.blocksize;
    j["double_quant"] = f.double_quant;
  }
  if (precision == "awq") j["group_size"] = f.group_size;
  if (precision == "int8") j["scales"] = f.int8_per_group ? "per_group" : "per_channel";
  if (precision == "int8" && f.int8_per_group) j["group_size"] = f.group_size;
  if (precision == "llm.int8") j["outlier_threshold"] = f.outlier_threshold;
  return j;
}

}  // namespace qb::bench
