// Tables from result records: one row extractor, several printers (markdown, CSV). Columns are the
// seeds' (size, time, tokens/s, peak VRAM, speedup vs the model's fp16) plus ours (prefill, p99 step
// latency, fraction of the bandwidth floor, perplexity where measured).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace qb::report {

struct TableRow {
  std::string model, precision, device, weights, status;
  int64_t batch = 0, prompt_len = 0, gen_len = 0;
  double weight_mb = 0;
  double e2e_ms = 0;               // median whole request (prefill + decode)
  double decode_tokens_per_s = 0;  // median over repetitions
  double prefill_ms = 0;
  double p99_step_ms = 0;
  double peak_allocated_mb = 0;
  double device_peak_mb = 0;
  double fraction_of_floor = -1;   // -1: not measured
  double speedup_vs_fp16 = -1;     // decode tokens/s over the same model's fp16 row; -1: no fp16 row
  double perplexity = -1;          // -1: not measured
  std::string error;
};

std::vector<TableRow> table_rows(const std::vector<nlohmann::json>& results);
std::string render_markdown(const std::vector<TableRow>& rows);
std::string render_csv(const std::vector<TableRow>& rows);

}  // namespace qb::report
