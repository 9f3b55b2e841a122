// Sweep definitions: strict parsing, the cartesian product, model choice (fallback to a synthetic
// preset), and the resume state read back from results.jsonl. Running them is sweep_run.cpp.
#include "quantbench/bench/sweep.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "quantbench/core/error.h"
#include "quantbench/io/model_config.h"
#include "quantbench/io/model_resolver.h"
#include "quantbench/quant/format.h"

namespace qb::bench {
namespace fs = std::filesystem;
namespace {

using nlohmann::json;

const std::set<std::string> kTopKeys = {"description", "defaults", "entries"};
const std::set<std::string> kEntryOnlyKeys = {"name", "models", "fallback"};
const std::set<std::string> kSharedKeys = {"precisions", "batches", "prompt_lens", "gen_lens", "warmup",
                                           "repetitions", "compute_dtype", "cuda_graph", "perplexity", "format"};
const std::set<std::string> kPerplexityKeys = {"text", "ctx", "stride", "max_tokens", "baseline"};
const std::set<std::string> kFormatKeys = {"blocksize", "double_quant", "group_size", "int8_per_group",
                                           "outlier_threshold"};

std::string joined(const std::set<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// `where` is "FILE: entries[3] (name)" or "FILE: defaults": every message starts with it.
std::vector<std::string> string_list(const json& value, const std::string& where, const char* key) {
  QB_CHECK(value.is_array(), kInvalidInput, "{}: '{}' must be a list of strings", where, key);
  QB_CHECK(!value.empty(), kInvalidInput, "{}: '{}' is an empty list", where, key);
  std::vector<std::string> out;
  for (const auto& item : value) {
    QB_CHECK(item.is_string() && !item.get<std::string>().empty(), kInvalidInput,
             "{}: '{}' must hold non-empty strings, found {}", where, key, item.dump());
    const std::string text = item.get<std::string>();
    QB_CHECK(std::find(out.begin(), out.end(), text) == out.end(), kInvalidInput, "{}: '{}' lists '{}' twice", where,
             key, text);
    out.push_back(text);
  }
  return out;
}

int64_t positive_int(const json& value, const std::string& where, const std::string& key, int64_t minimum) {
  // is_number_integer is false for 1.5 and for true/false, which is the point.
  QB_CHECK(value.is_number_integer() && value.get<int64_t>() >= minimum, kInvalidInput,
           "{}: '{}' must be an integer >= {}, found {}", where, key, minimum, value.dump());
  return value.get<int64_t>();
}

std::vector<int64_t> int_list(const json& value, const std::string& where, const char* key) {
  QB_CHECK(value.is_array(), kInvalidInput, "{}: '{}' must be a list of positive integers", where, key);
  QB_CHECK(!value.empty(), kInvalidInput, "{}: '{}' is an empty list", where, key);
  std::vector<int64_t> out;
  for (const auto& item : value) {
    const int64_t n = positive_int(item, where, key, 1);
    QB_CHECK(std::find(out.begin(), out.end(), n) == out.end(), kInvalidInput, "{}: '{}' lists {} twice", where, key, n);
    out.push_back(n);
  }
  return out;
}

std::string string_value(const json& value, const std::string& where, const char* key) {
  QB_CHECK(value.is_string() && !value.get<std::string>().empty(), kInvalidInput,
           "{}: '{}' must be a non-empty string, found {}", where, key, value.dump());
  return value.get<std::string>();
}

void check_precision(const std::string& name, const std::string& where, const char* key) {
  const auto known = quant::format_names();
  if (std::find(known.begin(), known.end(), name) != known.end()) return;
  fail(ErrorKind::kInvalidInput, "{}: '{}' names unknown precision '{}' (known: {})", where, key, name,
       joined(std::set<std::string>(known.begin(), known.end())));
}

PerplexitySpec parse_perplexity(const json& value, const std::string& where) {
  const std::string here = where + ": perplexity";
  QB_CHECK(value.is_object(), kInvalidInput, "{} must be an object", here);
  PerplexitySpec spec;
  for (const auto& [key, item] : value.items()) {
    if (key == "text") spec.text = string_value(item, here, "text");
    else if (key == "ctx") spec.ctx = positive_int(item, here, key, 2);
    else if (key == "stride") spec.stride = positive_int(item, here, key, 1);
    else if (key == "max_tokens") spec.max_tokens = positive_int(item, here, key, 2);
    else if (key == "baseline") {
      spec.baseline = string_value(item, here, "baseline");
      if (spec.baseline != "none") check_precision(spec.baseline, here, "baseline");
    } else {
      fail(ErrorKind::kInvalidInput, "{}: unknown key '{}' (known: {})", here, key, joined(kPerplexityKeys));
    }
  }
  QB_CHECK(!spec.text.empty(), kInvalidInput, "{}: 'text' is required", here);
  QB_CHECK(spec.ctx == 0 || spec.stride <= spec.ctx, kInvalidInput, "{}: stride {} exceeds ctx {}", here, spec.stride,
           spec.ctx);
  return spec;
}

// "format": the weight-format options of every run and perplexity of the entry (quant::FormatOptions), each key
// optional; keys given in defaults and in the entry merge, the entry's winning.
void parse_format(const json& value, const std::string& where, quant::FormatOptions& format) {
  const std::string here = where + ": format";
  QB_CHECK(value.is_object(), kInvalidInput, "{} must be an object", here);
  for (const auto& [key, item] : value.items()) {
    if (key == "blocksize") format.blocksize = positive_int(item, here, key, 16);
    else if (key == "group_size") format.group_size = positive_int(item, here, key, 2);
    else if (key == "double_quant" || key == "int8_per_group") {
      QB_CHECK(item.is_boolean(), kInvalidInput, "{}: '{}' must be true or false, found {}", here, key, item.dump());
      (key == "double_quant" ? format.double_quant : format.int8_per_group) = item.get<bool>();
    } else if (key == "outlier_threshold") {
      QB_CHECK(item.is_number() && !item.is_boolean() && item.get<double>() > 0, kInvalidInput,
               "{}: 'outlier_threshold' must be a number > 0, found {}", here, item.dump());
      format.outlier_threshold = item.get<double>();
    } else {
      fail(ErrorKind::kInvalidInput, "{}: unknown key '{}' (known: {})", here, key, joined(kFormatKeys));
    }
  }
}

// Sets one key of an entry; entry-only keys are accepted only when `allow_entry_keys`.
void apply_key(SweepEntry& entry, const std::string& key, const json& value, const std::string& where,
               bool allow_entry_keys) {
  if (kEntryOnlyKeys.count(key) != 0 && !allow_entry_keys) {
    fail(ErrorKind::kInvalidInput, "{}: '{}' belongs in an entry, not in defaults", where, key);
  }
  if (key == "name") entry.name = string_value(value, where, "name");
  else if (key == "models") entry.models = string_list(value, where, "models");
  else if (key == "fallback") {
    entry.fallback = string_value(value, where, "fallback");
    QB_CHECK(entry.fallback->rfind("synthetic:", 0) == 0 && entry.fallback->size() > 10, kInvalidInput,
             "{}: 'fallback' must be synthetic:PRESET, not '{}'", where, *entry.fallback);
  } else if (key == "precisions") {
    entry.precisions = string_list(value, where, "precisions");
    for (const auto& p : entry.precisions) check_precision(p, where, "precisions");
  } else if (key == "batches") entry.batches = int_list(value, where, "batches");
  else if (key == "prompt_lens") entry.prompt_lens = int_list(value, where, "prompt_lens");
  else if (key == "gen_lens") entry.gen_lens = int_list(value, where, "gen_lens");
  else if (key == "warmup") entry.warmup = static_cast<int>(positive_int(value, where, key, 0));
  else if (key == "repetitions") entry.repetitions = static_cast<int>(positive_int(value, where, key, 1));
  else if (key == "compute_dtype") {
    entry.compute_dtype = string_value(value, where, "compute_dtype");
    QB_CHECK(entry.compute_dtype == "auto" || entry.compute_dtype == "fp32" || entry.compute_dtype == "fp16" ||
                 entry.compute_dtype == "bf16",
             kInvalidInput, "{}: 'compute_dtype' must be auto, fp32, fp16 or bf16, not '{}'", where, entry.compute_dtype);
  } else if (key == "cuda_graph") {
    QB_CHECK(value.is_boolean(), kInvalidInput, "{}: 'cuda_graph' must be true or false, found {}", where, value.dump());
    entry.cuda_graph = value.get<bool>();
  } else if (key == "perplexity") {
    entry.perplexity = parse_perplexity(value, where);
  } else if (key == "format") {
    parse_format(value, where, entry.format);
  } else {
    std::set<std::string> known = kSharedKeys;
    if (allow_entry_keys) known.insert(kEntryOnlyKeys.begin(), kEntryOnlyKeys.end());
    fail(ErrorKind::kInvalidInput, "{}: unknown key '{}' (known: {})", where, key, joined(known));
  }
}

}  // namespace

SweepDefinition parse_sweep(const json& document, const std::string& path) {
  QB_CHECK(document.is_object(), kInvalidInput, "{}: a sweep is a JSON object with an 'entries' list", path);
  for (const auto& [key, value] : document.items()) {
    QB_CHECK(kTopKeys.count(key) != 0, kInvalidInput, "{}: unknown top-level key '{}' (known: {})", path, key,
             joined(kTopKeys));
  }
  SweepDefinition sweep;
  sweep.path = path;
  if (document.contains("description")) sweep.description = string_value(document["description"], path, "description");
  SweepEntry base;
  if (document.contains("defaults")) {
    const std::string where = path + ": defaults";
    QB_CHECK(document["defaults"].is_object(), kInvalidInput, "{} must be an object", where);
    for (const auto& [key, value] : document["defaults"].items()) apply_key(base, key, value, where, false);
  }
  QB_CHECK(document.contains("entries"), kInvalidInput, "{}: 'entries' is missing", path);
  const json& entries = document["entries"];
  QB_CHECK(entries.is_array() && !entries.empty(), kInvalidInput, "{}: 'entries' must be a non-empty list", path);
  std::set<std::string> names;
  for (size_t i = 0; i < entries.size(); ++i) {
    std::string where = fmt::format("{}: entries[{}]", path, i);
    const json& item = entries[i];
    QB_CHECK(item.is_object(), kInvalidInput, "{} must be an object", where);
    if (item.contains("name") && item["name"].is_string()) where += " (" + item["name"].get<std::string>() + ")";
    SweepEntry entry = base;
    for (const auto& [key, value] : item.items()) apply_key(entry, key, value, where, true);
    QB_CHECK(!entry.models.empty(), kInvalidInput, "{}: 'models' is required", where);
    QB_CHECK(!entry.precisions.empty(), kInvalidInput, "{}: 'precisions' is required (in the entry or defaults)", where);
    QB_CHECK(!entry.fallback || entry.models.size() == 1, kInvalidInput,
             "{}: 'fallback' stands in for one model, but 'models' lists {}", where, entry.models.size());
    if (entry.name.empty()) entry.name = entry.models.front();
    QB_CHECK(names.insert(entry.name).second, kInvalidInput, "{}: name '{}' is used by an earlier entry", where,
             entry.name);
    sweep.entries.push_back(std::move(entry));
  }
  return sweep;
}

SweepDefinition load_sweep(const std::string& path) {
  std::ifstream in(path);
  QB_CHECK(in.good(), kNotFound, "{}: cannot open sweep file", path);
  json document;
  try {
    document = json::parse(in);
  } catch (const json::parse_error& e) {
    fail(ErrorKind::kInvalidInput, "{}: not valid JSON: {}", path, e.what());
  }
  return parse_sweep(document, path);
}

std::vector<PlannedRun> expand_runs(const SweepDefinition& sweep) {
  std::vector<PlannedRun> runs;
  for (size_t e = 0; e < sweep.entries.size(); ++e) {
    const SweepEntry& entry = sweep.entries[e];
    for (const auto& model : entry.models)
      for (int64_t gen_len : entry.gen_lens)
        for (const auto& precision : entry.precisions)
          for (int64_t batch : entry.batches)
            for (int64_t prompt_len : entry.prompt_lens) runs.push_back({e, model, precision, batch, prompt_len, gen_len});
  }
  return runs;
}

std::string expand_spec(const std::string& spec, const std::string& sweep_path) {
  std::string out;
  for (size_t pos = 0; pos < spec.size();) {
    const size_t open = spec.find("${", pos);
    if (open == std::string::npos) {
      out += spec.substr(pos);
      break;
    }
    const size_t close = spec.find('}', open);
    QB_CHECK(close != std::string::npos, kInvalidInput, "{}: '{}' has an unclosed ${{", sweep_path, spec);
    const std::string name = spec.substr(open + 2, close - open - 2);
    const char* value = std::getenv(name.c_str());
    std::string replacement = value != nullptr ? value : "";
    // The shared data beside the checkout, where the tests look for it too.
    if (replacement.empty() && name == "QB_SHARED_DATA") {
      replacement = (fs::path(QB_SOURCE_DIR).parent_path() / "shared" / "data").string();
    }
    QB_CHECK(!replacement.empty(), kInvalidInput, "{}: '{}' uses ${{{}}}, which is not set", sweep_path, spec, name);
    out += spec.substr(pos, open - pos) + replacement;
    pos = close + 1;
  }
  if (out.rfind("./", 0) == 0 || out.rfind("../", 0) == 0) {
    out = (fs::absolute(sweep_path).parent_path() / out).lexically_normal().string();
  }
  return out;
}

ModelChoice choose_model(const std::string& spec, const std::optional<std::string>& fallback,
                         const std::string& sweep_path) {
  ModelChoice choice{spec, expand_spec(spec, sweep_path), false, ""};
  if (!fallback) return choice;  // a miss becomes the session's error records
  try {
    io::resolve_model(choice.run_spec);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::kNotFound) return choice;
    return {*fallback, expand_spec(*fallback, sweep_path), true, e.what()};
  }
  return choice;
}

std::string quality_key(const std::string& model, const std::string& precision, const std::string& device,
                        const std::string& text) {
  return fmt::format("{}|{}|{}|ppl|{}", model, precision, device, text);
}

RecordedRuns prepare_resume(const std::string& results_path, const std::set<std::string>& planned_keys) {
  RecordedRuns recorded;
  std::ifstream in(results_path);
  if (!in.good()) return recorded;  // nothing recorded yet
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  in.close();
  std::vector<std::string> lines;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) {
    if (line.find_first_not_of(" \t\r") != std::string::npos) lines.push_back(line);
  }
  // A last record without its newline would swallow the next append: rewrite the file whole.
  const bool unterminated = !text.empty() && text.back() != '\n';
  std::vector<std::string> kept;
  for (size_t i = 0; i < lines.size(); ++i) {
    json record;
    try {
      record = json::parse(lines[i]);
    } catch (const json::parse_error& e) {
      // Only the last line can be cut short by a kill in the middle of an append.
      QB_CHECK(i + 1 == lines.size(), kInvalidInput, "{}: record {} is not JSON ({}); only a truncated last line "
               "is repaired on --resume", results_path, i + 1, e.what());
      spdlog::warn("{}: dropping a truncated last line (the previous sweep was killed mid-write)", results_path);
      recorded.truncated_line_dropped = true;
      continue;
    }
    std::string key;
    if (record.value("schema", "") == report::kQualitySchema && record.contains("key")) {
      const json& k = record["key"];
      key = quality_key(k.value("model", ""), k.value("precision", ""), k.value("device", ""), k.value("text", ""));
    } else {
      key = report::key_of(record).str();
    }
    if (record.value("status", "") == "ok") {
      recorded.ok_keys.insert(key);
    } else if (planned_keys.count(key) != 0) {
      ++recorded.dropped_error_records;
      continue;
    }
    kept.push_back(lines[i]);
  }
  if (unterminated || recorded.truncated_line_dropped || recorded.dropped_error_records > 0) {
    // Write beside, then rename: a kill now leaves either the old file or the new one.
    const std::string temporary = results_path + ".resume-tmp";
    {
      std::ofstream out(temporary, std::ios::trunc);
      QB_CHECK(out.good(), kInvalidInput, "{}: cannot write", temporary);
      for (const auto& line : kept) out << line << "\n";
    }
    QB_CHECK(std::rename(temporary.c_str(), results_path.c_str()) == 0, kInvalidInput, "{}: cannot replace with {}",
             results_path, temporary);
  }
  return recorded;
}

}  // namespace qb::bench
