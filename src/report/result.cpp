#include "quantbench/report/result.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "quantbench/core/error.h"

namespace qb::report {
namespace {

void require_field(const nlohmann::json& object, const std::string& where, const char* key,
                   nlohmann::json::value_t type, std::vector<std::string>& problems) {
  if (!object.is_object() || !object.contains(key)) {
    problems.push_back(where + key + " missing");
    return;
  }
  const auto actual = object[key].type();
  const bool numeric_ok = (type == nlohmann::json::value_t::number_float && object[key].is_number()) ||
                          (type == nlohmann::json::value_t::number_integer && object[key].is_number_integer());
  if (actual != type && !numeric_ok) problems.push_back(where + key + " has the wrong type");
}

}  // namespace

std::string RunKey::str() const {
  return fmt::format("{}|{}|{}|b{}|p{}|g{}", model, precision, device, batch, prompt_len, gen_len);
}

nlohmann::json key_to_json(const RunKey& key) {
  return {{"model", key.model},   {"precision", key.precision},   {"device", key.device},
          {"batch", key.batch},   {"prompt_len", key.prompt_len}, {"gen_len", key.gen_len}};
}

RunKey key_of(const nlohmann::json& result) {
  QB_CHECK(result.contains("key") && result["key"].is_object(), kInvalidInput, "result has no 'key' object");
  const auto& k = result["key"];
  try {
    return {k.at("model").get<std::string>(), k.at("precision").get<std::string>(), k.at("device").get<std::string>(),
            k.at("batch").get<int64_t>(),     k.at("prompt_len").get<int64_t>(),    k.at("gen_len").get<int64_t>()};
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::kInvalidInput, "result key is incomplete: {}", e.what());
  }
}

void validate_result(const nlohmann::json& r) {
  using T = nlohmann::json::value_t;
  std::vector<std::string> problems;
  if (!r.is_object()) fail(ErrorKind::kInvalidInput, "a result must be a JSON object");
  if (r.value("schema", "") != kResultSchema) problems.push_back(std::string("schema is not ") + kResultSchema);
  require_field(r, "", "key", T::object, problems);
  require_field(r, "", "status", T::string, problems);
  require_field(r, "", "environment", T::object, problems);
  if (r.contains("key")) {
    for (const char* field : {"model", "precision", "device"}) require_field(r["key"], "key.", field, T::string, problems);
    for (const char* field : {"batch", "prompt_len", "gen_len"}) require_field(r["key"], "key.", field, T::number_integer, problems);
  }
  const std::string status = r.value("status", "");
  if (status == "ok") {
    require_field(r, "", "timing", T::object, problems);
    require_field(r, "", "memory", T::object, problems);
    require_field(r, "", "floor", T::object, problems);
    if (r.contains("timing")) {
      for (const char* field : {"prefill_ms", "decode_step_ms", "decode_tokens_per_s", "prefill_tokens_per_s", "e2e_ms"}) {
        require_field(r["timing"], "timing.", field, T::object, problems);
      }
    }
    if (r.contains("memory")) require_field(r["memory"], "memory.", "weight_bytes", T::number_integer, problems);
  } else if (status == "error") {
    require_field(r, "", "error", T::object, problems);
  } else {
    problems.push_back("status must be 'ok' or 'error'");
  }
  if (!problems.empty()) {
    std::string joined;
    for (const auto& p : problems) joined += (joined.empty() ? "" : "; ") + p;
    fail(ErrorKind::kInvalidInput, "invalid result record: {}", joined);
  }
}

nlohmann::json make_error_result(const RunKey& key, const std::string& kind, const std::string& message,
                                 const nlohmann::json& environment) {
  return {{"schema", kResultSchema},
          {"key", key_to_json(key)},
          {"status", "error"},
          {"error", {{"kind", kind}, {"message", message}}},
          {"environment", environment.is_object() ? environment : nlohmann::json::object()}};
}

std::vector<nlohmann::json> read_results(const std::string& path) {
  std::ifstream in(path);
  QB_CHECK(in.good(), kNotFound, "{}: cannot open results file", path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  std::vector<nlohmann::json> results;
  try {
    const nlohmann::json whole = nlohmann::json::parse(text);
    if (whole.is_array()) {
      for (const auto& r : whole) results.push_back(r);
    } else if (whole.is_object() && whole.contains("results")) {
      for (const auto& r : whole["results"]) results.push_back(r);
    } else {
      results.push_back(whole);
    }
    return results;
  } catch (const nlohmann::json::parse_error&) {
    // Not one JSON document: JSON Lines, one record per non-empty line.
  }
  std::istringstream lines(text);
  std::string line;
  int number = 0;
  while (std::getline(lines, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      results.push_back(nlohmann::json::parse(line));
    } catch (const nlohmann::json::parse_error& e) {
      fail(ErrorKind::kInvalidInput, "{}:{}: not a JSON record: {}", path, number, e.what());
    }
  }
  return results;
}

void write_results_json(const std::string& path, const std::vector<nlohmann::json>& results) {
  std::ofstream out(path, std::ios::trunc);
  QB_CHECK(out.good(), kInvalidInput, "{}: cannot write results", path);
  out << nlohmann::json(results).dump(2) << "\n";
}

void append_result_line(const std::string& path, const nlohmann::json& result) {
  std::ofstream out(path, std::ios::app);
  QB_CHECK(out.good(), kInvalidInput, "{}: cannot append results", path);
  out << result.dump() << "\n";
  out.flush();
}

}  // namespace qb::report
