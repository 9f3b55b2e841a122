// Tables from result records: one row extractor, several printers (markdown, CSV, HTML). Columns are
// the seeds' (size, time, tokens/s, peak VRAM, speedup vs the model's fp16) plus ours (prefill, p99
// step latency, fraction of the bandwidth floor, perplexity where measured). Records of peers (e.g.
// scripts/peers/hf_generate.py: HuggingFace transformers' generate) carry a "runner" and stay rows of
// their own: the speedup of a row is over the fp16 row of the same model *and runner*, and rows are
// grouped by model (first appearance) so quantbench's and a peer's rows of one model sit together.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace qb::report {

struct TableRow {
  std::string model, runner, precision, device, weights, status;  // runner: "quantbench" or the record's
  int64_t batch = 0, prompt_len = 0, gen_len = 0;
  double weight_mb = 0;
  double e2e_ms = 0;               // median whole request (prefill + decode)
  double decode_tokens_per_s = 0;  // median over repetitions
  double prefill_ms = 0;
  double p99_step_ms = 0;
  double peak_allocated_mb = -1;  // -1: not measured (a CPU run)
  double device_peak_mb = -1;     // -1: not measured (peers sample no device-level use)
  double fraction_of_floor = -1;   // -1: not measured
  double speedup_vs_fp16 = -1;     // decode tokens/s over the same model's and runner's fp16 row; -1: none
  double perplexity = -1;          // -1: not measured (quality records count for quantbench rows only)
  std::string error;
};

constexpr const char* kOwnRunner = "quantbench";

std::vector<TableRow> table_rows(const std::vector<nlohmann::json>& results);

// The human-readable cells (markdown and HTML print the same ones): rounded figures, "-" where not
// measured, an error row's message in the status column. `numeric` says which columns align right.
struct DisplayColumn {
  std::string header;
  bool numeric = false;
};
const std::vector<DisplayColumn>& display_columns();
std::vector<std::string> display_cells(const TableRow& row);

std::string render_markdown(const std::vector<TableRow>& rows);
std::string render_csv(const std::vector<TableRow>& rows);  // raw figures; runner is the last column
// A self-contained page (inline style, no scripts or external files) holding the table.
std::string render_html(const std::vector<TableRow>& rows, const std::string& title = "quantbench results");

}  // namespace qb::report
