// The result record: one JSON object per run (JSON is the source of truth; tables, CSV, plots and
// `compare` all read it). Schema "quantbench.result/1", documented in README.md. A run is keyed by
// (model, precision, device, batch, prompt_len, gen_len); a failed run is a record too, with
// status "error" and the error's kind and message instead of figures.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace qb::report {

constexpr const char* kResultSchema = "quantbench.result/1";
// Records of `quantbench ppl`: key {model, precision, device, text}, section "quality".
constexpr const char* kQualitySchema = "quantbench.quality/1";

struct RunKey {
  std::string model;
  std::string precision;
  std::string device;
  int64_t batch = 0;
  int64_t prompt_len = 0;
  int64_t gen_len = 0;
  std::string str() const;  // "model|precision|device|b1|p128|g128"
  bool operator<(const RunKey& other) const { return str() < other.str(); }
  bool operator==(const RunKey& other) const { return str() == other.str(); }
};

nlohmann::json key_to_json(const RunKey& key);
RunKey key_of(const nlohmann::json& result);

// Throws kInvalidInput listing what is missing or mistyped (schema, key, status, and for status
// "ok" the timing/memory sections; for "error" the error object).
void validate_result(const nlohmann::json& result);

nlohmann::json make_error_result(const RunKey& key, const std::string& kind, const std::string& message,
                                 const nlohmann::json& environment);

// Reads a JSON array of records, an object {"results": [...]}, a single record, or JSON Lines.
std::vector<nlohmann::json> read_results(const std::string& path);
void write_results_json(const std::string& path, const std::vector<nlohmann::json>& results);
// Appends one record as one line and flushes (sweeps: a crash loses nothing written before it).
void append_result_line(const std::string& path, const nlohmann::json& result);

}  // namespace qb::report
