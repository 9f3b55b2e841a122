#include "quantbench/report/table.h"

#include <fmt/format.h>

#include <map>

#include "quantbench/report/result.h"

namespace qb::report {
namespace {

double median_of(const nlohmann::json& r, const char* section, const char* figure) {
  if (!r.contains(section) || !r[section].contains(figure)) return 0;
  const auto& v = r[section][figure];
  return v.is_object() ? v.value("median", 0.0) : v.is_number() ? v.get<double>() : 0.0;
}

std::string csv_escape(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string number_or_dash(double value, const char* format) {
  return value < 0 ? std::string("-") : fmt::format(fmt::runtime(format), value);
}

}  // namespace

std::vector<TableRow> table_rows(const std::vector<nlohmann::json>& results) {
  std::vector<TableRow> rows;
  std::vector<RunKey> row_keys;
  std::map<std::string, double> fp16_decode;  // same run key but precision fp16
  std::map<std::string, double> perplexity;   // "model|precision|device" from quality records
  for (const auto& r : results) {
    if (r.value("schema", "") != kQualitySchema || r.value("status", "") != "ok") continue;
    const auto& k = r["key"];
    perplexity[k.value("model", "") + "|" + k.value("precision", "") + "|" + k.value("device", "")] =
        r["quality"].value("perplexity", -1.0);
  }
  auto baseline_key = [](const RunKey& k) {
    RunKey base = k;
    base.precision = "fp16";
    return base.str();
  };
  for (const auto& r : results) {
    if (r.value("schema", "") == kQualitySchema) continue;
    const RunKey key = key_of(r);
    row_keys.push_back(key);
    TableRow row;
    row.model = key.model;
    row.precision = key.precision;
    row.device = key.device;
    row.batch = key.batch;
    row.prompt_len = key.prompt_len;
    row.gen_len = key.gen_len;
    row.status = r.value("status", "");
    if (r.contains("model")) row.weights = r["model"].value("weights", "");
    if (row.status != "ok") {
      row.error = r.contains("error") ? r["error"].value("kind", "") + ": " + r["error"].value("message", "") : "";
      rows.push_back(row);
      continue;
    }
    row.weight_mb = r["memory"].value("weight_bytes", 0.0) / 1e6;
    row.peak_allocated_mb = r["memory"].value("peak_allocated_bytes", 0.0) / 1e6;
    row.device_peak_mb = r["memory"].value("device_peak_used_bytes", 0.0) / 1e6;
    row.e2e_ms = median_of(r, "timing", "e2e_ms");
    row.decode_tokens_per_s = median_of(r, "timing", "decode_tokens_per_s");
    row.prefill_ms = median_of(r, "timing", "prefill_ms");
    row.p99_step_ms = r["timing"].contains("decode_step_ms") ? r["timing"]["decode_step_ms"].value("p99", 0.0) : 0.0;
    if (r.contains("floor") && r["floor"].contains("fraction_of_floor")) row.fraction_of_floor = r["floor"]["fraction_of_floor"];
    if (r.contains("quality") && r["quality"].contains("perplexity")) row.perplexity = r["quality"]["perplexity"];
    const auto measured = perplexity.find(key.model + "|" + key.precision + "|" + key.device);
    if (row.perplexity < 0 && measured != perplexity.end()) row.perplexity = measured->second;
    if (key.precision == "fp16") fp16_decode[key.str()] = row.decode_tokens_per_s;
    rows.push_back(row);
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    const RunKey& key = row_keys[i];
    const auto it = fp16_decode.find(baseline_key(key));
    if (rows[i].status == "ok" && it != fp16_decode.end() && it->second > 0) {
      rows[i].speedup_vs_fp16 = rows[i].decode_tokens_per_s / it->second;
    }
  }
  return rows;
}

std::string render_markdown(const std::vector<TableRow>& rows) {
  std::string out =
      "| model | precision | device | weights | batch | prompt | gen | size MB | e2e ms | decode tok/s | speedup vs fp16 "
      "| prefill ms | p99 step ms | peak alloc MB | device peak MB | floor % | ppl | status |\n"
      "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
  for (const auto& r : rows) {
    if (r.status != "ok") {
      out += fmt::format("| {} | {} | {} | {} | {} | {} | {} | - | - | - | - | - | - | - | - | - | - | {} |\n", r.model,
                         r.precision, r.device, r.weights, r.batch, r.prompt_len, r.gen_len, r.error);
      continue;
    }
    out += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {:.1f} | {:.1f} | {:.1f} | {} | {:.2f} | {:.3f} | {:.1f} | {:.1f} | {} | {} | ok |\n",
                       r.model, r.precision, r.device, r.weights, r.batch, r.prompt_len, r.gen_len, r.weight_mb,
                       r.e2e_ms, r.decode_tokens_per_s, number_or_dash(r.speedup_vs_fp16, "{:.2f}x"), r.prefill_ms,
                       r.p99_step_ms, r.peak_allocated_mb, r.device_peak_mb,
                       number_or_dash(r.fraction_of_floor * 100, "{:.0f}%"), number_or_dash(r.perplexity, "{:.2f}"));
  }
  return out;
}

std::string render_csv(const std::vector<TableRow>& rows) {
  std::string out =
      "model,precision,device,weights,batch,prompt_len,gen_len,weight_mb,e2e_ms,decode_tokens_per_s,speedup_vs_fp16,"
      "prefill_ms,p99_step_ms,peak_allocated_mb,device_peak_mb,fraction_of_floor,perplexity,status,error\n";
  auto opt = [](double v) { return v < 0 ? std::string() : fmt::format("{:.6g}", v); };
  for (const auto& r : rows) {
    out += fmt::format("{},{},{},{},{},{},{},{:.6g},{:.6g},{:.6g},{},{:.6g},{:.6g},{:.6g},{:.6g},{},{},{},{}\n",
                       csv_escape(r.model), r.precision, r.device, r.weights, r.batch, r.prompt_len, r.gen_len,
                       r.weight_mb, r.e2e_ms, r.decode_tokens_per_s, opt(r.speedup_vs_fp16), r.prefill_ms,
                       r.p99_step_ms, r.peak_allocated_mb, r.device_peak_mb, opt(r.fraction_of_floor),
                       opt(r.perplexity), r.status, csv_escape(r.error));
  }
  return out;
}

}  // namespace qb::report
