#include "quantbench/report/quality_table.h"

#include <fmt/format.h>

#include "quantbench/report/cell_text.h"
#include "quantbench/report/result.h"

namespace qb::report {
namespace {

// "blocksize=64 double_quant=false": the options that shaped the weights, compactly.
std::string options_text(const nlohmann::json& record) {
  if (!record.contains("format_options") || !record["format_options"].is_object()) return "";
  std::string out;
  for (const auto& [key, value] : record["format_options"].items()) {
    if (key == "activation_dtype") continue;
    out += (out.empty() ? "" : " ") + key + "=" + (value.is_string() ? value.get<std::string>() : value.dump());
  }
  return out;
}

}  // namespace

std::vector<QualityRow> quality_rows(const std::vector<nlohmann::json>& results) {
  std::vector<QualityRow> rows;
  for (const auto& r : results) {
    if (r.value("schema", "") != kQualitySchema) continue;
    QualityRow row;
    const nlohmann::json key = r.value("key", nlohmann::json::object());
    row.model = key.value("model", "");
    row.precision = key.value("precision", "");
    row.device = key.value("device", "");
    row.text = key.value("text", "");
    row.status = r.value("status", "");
    row.format_options = options_text(r);
    if (row.status != "ok") {
      if (r.contains("error")) row.error = r["error"].value("kind", "") + ": " + r["error"].value("message", "");
      rows.push_back(row);
      continue;
    }
    const nlohmann::json& q = r["quality"];
    row.weights = q.value("weights", "");
    row.ctx = q.value("ctx", int64_t{0});
    row.stride = q.value("stride", int64_t{0});
    row.scored_tokens = q.value("scored_tokens", int64_t{0});
    row.perplexity = q.value("perplexity", -1.0);
    if (q.contains("kl_mean")) {
      row.baseline = q.value("baseline", "");
      row.kl_mean = q.value("kl_mean", -1.0);
      row.kl_p99 = q.value("kl_p99", -1.0);
      row.top1_agreement = q.value("top1_agreement", -1.0);
    }
    rows.push_back(row);
  }
  return rows;
}

std::string render_quality_markdown(const std::vector<QualityRow>& rows) {
  std::string out =
      "| model | precision | device | format options | ctx / stride | scored tokens | perplexity | baseline | KL mean "
      "| KL p99 | top-1 agreement | status |\n|---|---|---|---|---:|---:|---:|---|---:|---:|---:|---|\n";
  for (const auto& r : rows) {
    if (r.status != "ok") {
      out += fmt::format("| {} | {} | {} | {} | - | - | - | - | - | - | - | {} |\n", markdown_cell(r.model), r.precision,
                         r.device, markdown_cell(r.format_options), markdown_cell(r.error));
      continue;
    }
    out += fmt::format("| {} | {} | {} | {} | {} / {} | {} | {:.4f} | {} | {} | {} | {} | ok |\n", markdown_cell(r.model),
                       r.precision, r.device, markdown_cell(r.format_options), r.ctx, r.stride, r.scored_tokens, r.perplexity,
                       r.baseline.empty() ? "-" : r.baseline, number_or_dash(r.kl_mean, "{:.5f}"),
                       number_or_dash(r.kl_p99, "{:.5f}"), number_or_dash(r.top1_agreement, "{:.4f}"));
  }
  return out;
}

std::string render_quality_csv(const std::vector<QualityRow>& rows) {
  std::string out =
      "model,precision,device,text,weights,format_options,ctx,stride,scored_tokens,perplexity,baseline,kl_mean,kl_p99,"
      "top1_agreement,status,error\n";
  auto opt = [](double v) { return number_or_blank(v, "{:.8g}"); };
  for (const auto& r : rows) {
    out += fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n", csv_cell(r.model), r.precision, r.device,
                       csv_cell(r.text), r.weights, csv_cell(r.format_options), r.ctx, r.stride, r.scored_tokens,
                       opt(r.perplexity), r.baseline, opt(r.kl_mean), opt(r.kl_p99), opt(r.top1_agreement), r.status,
                       csv_cell(r.error));
  }
  return out;
}

}  // namespace qb::report
