#include "quantbench/report/table.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "quantbench/report/cell_text.h"
#include "quantbench/report/result.h"

namespace qb::report {
namespace {

double median_of(const nlohmann::json& r, const char* section, const char* figure) {
  if (!r.contains(section) || !r[section].contains(figure)) return 0;
  const auto& v = r[section][figure];
  return v.is_object() ? v.value("median", 0.0) : v.is_number() ? v.get<double>() : 0.0;
}

}  // namespace

std::vector<TableRow> table_rows(const std::vector<nlohmann::json>& results) {
  std::vector<TableRow> rows;
  std::map<std::string, double> fp16_decode;  // "runner|" + run key with precision fp16
  std::map<std::string, double> perplexity;   // "model|precision|device" from quality records
  for (const auto& r : results) {
    if (r.value("schema", "") != kQualitySchema || r.value("status", "") != "ok") continue;
    const auto& k = r["key"];
    perplexity[k.value("model", "") + "|" + k.value("precision", "") + "|" + k.value("device", "")] =
        r["quality"].value("perplexity", -1.0);
  }
  // The fp16 row a row is compared with: same runner, same key but precision, and the same decode mode (an
  // eager run and a CUDA-graph run of one key are different measurements of the same thing).
  auto baseline_key = [](const std::string& runner, RunKey k, const nlohmann::json& r) {
    k.precision = "fp16";
    const bool graph = !r.contains("run") || r["run"].value("cuda_graph", true);
    return runner + "|" + k.str() + (graph ? "" : "|eager");
  };
  std::vector<std::string> row_baselines;
  for (const auto& r : results) {
    if (r.value("schema", "") == kQualitySchema) continue;
    const RunKey key = key_of(r);
    TableRow row;
    row.model = key.model;
    row.runner = r.value("runner", std::string(kOwnRunner));
    row.precision = key.precision;
    row.device = key.device;
    row.batch = key.batch;
    row.prompt_len = key.prompt_len;
    row.gen_len = key.gen_len;
    row.status = r.value("status", "");
    row_baselines.push_back(baseline_key(row.runner, key, r));
    if (r.contains("model")) row.weights = r["model"].value("weights", "");
    if (row.status != "ok") {
      row.error = r.contains("error") ? r["error"].value("kind", "") + ": " + r["error"].value("message", "") : "";
      rows.push_back(row);
      continue;
    }
    row.weight_mb = r["memory"].value("weight_bytes", 0.0) / 1e6;
    // null or absent: not measured (a CPU run, a peer that does not sample the device).
    const nlohmann::json& memory = r["memory"];
    if (memory.contains("peak_allocated_bytes") && memory["peak_allocated_bytes"].is_number()) {
      row.peak_allocated_mb = memory["peak_allocated_bytes"].get<double>() / 1e6;
    }
    if (memory.contains("device_peak_used_bytes") && memory["device_peak_used_bytes"].is_number()) {
      row.device_peak_mb = memory["device_peak_used_bytes"].get<double>() / 1e6;
    }
    row.e2e_ms = median_of(r, "timing", "e2e_ms");
    row.decode_tokens_per_s = median_of(r, "timing", "decode_tokens_per_s");
    row.prefill_ms = median_of(r, "timing", "prefill_ms");
    row.p99_step_ms = r["timing"].contains("decode_step_ms") ? r["timing"]["decode_step_ms"].value("p99", 0.0) : 0.0;
    if (r.contains("floor") && r["floor"].contains("fraction_of_floor")) row.fraction_of_floor = r["floor"]["fraction_of_floor"];
    if (r.contains("quality") && r["quality"].contains("perplexity")) row.perplexity = r["quality"]["perplexity"];
    // A quality record measured quantbench's model; a peer's row of the same key did not run it.
    const auto measured = perplexity.find(key.model + "|" + key.precision + "|" + key.device);
    if (row.perplexity < 0 && row.runner == kOwnRunner && measured != perplexity.end()) row.perplexity = measured->second;
    if (key.precision == "fp16") fp16_decode[row_baselines.back()] = row.decode_tokens_per_s;
    rows.push_back(row);
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto it = fp16_decode.find(row_baselines[i]);
    if (rows[i].status == "ok" && it != fp16_decode.end() && it->second > 0) {
      rows[i].speedup_vs_fp16 = rows[i].decode_tokens_per_s / it->second;
    }
  }
  // Group by model in order of first appearance, keeping the files' order within a model.
  std::map<std::string, size_t> first_seen;
  for (const auto& row : rows) first_seen.emplace(row.model, first_seen.size());
  std::stable_sort(rows.begin(), rows.end(), [&](const TableRow& a, const TableRow& b) {
    return first_seen.at(a.model) < first_seen.at(b.model);
  });
  return rows;
}

const std::vector<DisplayColumn>& display_columns() {
  static const std::vector<DisplayColumn> columns = {
      {"model", false},        {"runner", false},         {"precision", false},     {"device", false},
      {"weights", false},      {"batch", true},           {"prompt", true},         {"gen", true},
      {"size MB", true},       {"e2e ms", true},          {"decode tok/s", true},   {"speedup vs fp16", true},
      {"prefill ms", true},    {"p99 step ms", true},     {"peak alloc MB", true},  {"device peak MB", true},
      {"floor %", true},       {"ppl", true},             {"status", false}};
  return columns;
}

std::vector<std::string> display_cells(const TableRow& r) {
  std::vector<std::string> cells = {r.model,
                                    r.runner,
                                    r.precision,
                                    r.device,
                                    r.weights,
                                    std::to_string(r.batch),
                                    std::to_string(r.prompt_len),
                                    std::to_string(r.gen_len)};
  if (r.status != "ok") {
    cells.resize(display_columns().size() - 1, "-");
    cells.push_back(r.error);
    return cells;
  }
  for (std::string cell : {fmt::format("{:.1f}", r.weight_mb), fmt::format("{:.1f}", r.e2e_ms),
                           fmt::format("{:.1f}", r.decode_tokens_per_s), number_or_dash(r.speedup_vs_fp16, "{:.2f}x"),
                           fmt::format("{:.2f}", r.prefill_ms), fmt::format("{:.3f}", r.p99_step_ms),
                           number_or_dash(r.peak_allocated_mb, "{:.1f}"), number_or_dash(r.device_peak_mb, "{:.1f}"),
                           number_or_dash(r.fraction_of_floor * 100, "{:.0f}%"), number_or_dash(r.perplexity, "{:.2f}"),
                           std::string("ok")}) {
    cells.push_back(std::move(cell));
  }
  return cells;
}

std::string render_markdown(const std::vector<TableRow>& rows) {
  std::string header = "|", rule = "|";
  for (const auto& column : display_columns()) {
    header += " " + column.header + " |";
    rule += column.numeric ? "---:|" : "---|";
  }
  std::string out = header + "\n" + rule + "\n";
  for (const auto& row : rows) {
    out += "|";
    for (const auto& cell : display_cells(row)) out += " " + markdown_cell(cell) + " |";
    out += "\n";
  }
  return out;
}

std::string render_csv(const std::vector<TableRow>& rows) {
  std::string out =
      "model,precision,device,weights,batch,prompt_len,gen_len,weight_mb,e2e_ms,decode_tokens_per_s,speedup_vs_fp16,"
      "prefill_ms,p99_step_ms,peak_allocated_mb,device_peak_mb,fraction_of_floor,perplexity,status,error,runner\n";
  auto opt = [](double v) { return number_or_blank(v, "{:.6g}"); };
  for (const auto& r : rows) {
    out += fmt::format("{},{},{},{},{},{},{},{:.6g},{:.6g},{:.6g},{},{:.6g},{:.6g},{},{},{},{},{},{},{}\n",
                       csv_cell(r.model), r.precision, r.device, r.weights, r.batch, r.prompt_len, r.gen_len,
                       r.weight_mb, r.e2e_ms, r.decode_tokens_per_s, opt(r.speedup_vs_fp16), r.prefill_ms,
                       r.p99_step_ms, opt(r.peak_allocated_mb), opt(r.device_peak_mb), opt(r.fraction_of_floor),
                       opt(r.perplexity), r.status, csv_cell(r.error), csv_cell(r.runner));
  }
  return out;
}

}  // namespace qb::report
