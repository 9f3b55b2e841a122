#include "quantbench/io/model_resolver.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "quantbench/core/error.h"
#include "quantbench/io/model_config.h"

namespace qb::io {
namespace fs = std::filesystem;

namespace {

std::string env_or_empty(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::string(value) : std::string();
}

std::string executable_dir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.parent_path().string();
}

std::string read_first_line(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r' || line.back() == ' ')) line.pop_back();
  return line;
}

// models--ORG--NAME/snapshots/<rev>, the revision from refs/main, or the only snapshot there is.
bool find_in_hub_cache(const std::string& id, ResolvedModel& out, std::string& looked_at) {
  std::string folder = "models--" + id;
  for (size_t pos = 0; (pos = folder.find('/', pos)) != std::string::npos;) folder.replace(pos, 1, "--");
  const fs::path repo = fs::path(hub_cache_dir()) / folder;
  looked_at = repo.string();
  if (!fs::is_directory(repo / "snapshots")) return false;
  std::string revision = read_first_line(repo / "refs" / "main");
  if (revision.empty()) {
    std::vector<std::string> snapshots;
    for (const auto& entry : fs::directory_iterator(repo / "snapshots")) {
      if (entry.is_directory()) snapshots.push_back(entry.path().filename().string());
    }
    QB_CHECK(snapshots.size() == 1, kNotFound,
             "model '{}': {} has no refs/main and {} snapshots; cannot tell which revision to use", id,
             repo.string(), snapshots.size());
    revision = snapshots.front();
  }
  const fs::path snapshot = repo / "snapshots" / revision;
  QB_CHECK(fs::is_directory(snapshot), kNotFound, "model '{}': refs/main names revision {} but {} is missing", id,
           revision, snapshot.string());
  out.source = ModelSource::kHubCache;
  out.id = id;
  out.dir = snapshot.string();
  out.revision = revision;
  return true;
}

}  // namespace

const char* model_source_name(ModelSource source) {
  switch (source) {
    case ModelSource::kLocal: return "local";
    case ModelSource::kHubCache: return "hub_cache";
    case ModelSource::kSynthetic: return "synthetic";
  }
  return "unknown";
}

std::string hub_cache_dir() {
  std::string dir = env_or_empty("HF_HUB_CACHE");
  if (!dir.empty()) return dir;
  dir = env_or_empty("HF_HOME");
  if (!dir.empty()) return (fs::path(dir) / "hub").string();
  const std::string home = env_or_empty("HOME");
  return (fs::path(home.empty() ? "/root" : home) / ".cache" / "huggingface" / "hub").string();
}

std::string presets_dir() {
  std::string dir = env_or_empty("QB_CONFIG_DIR");
  if (!dir.empty()) return (fs::path(dir) / "models").string();
  const std::string exe = executable_dir();
  for (const char* relative : {"../configs/models", "../share/quantbench/configs/models"}) {
    if (!exe.empty() && fs::is_directory(fs::path(exe) / relative)) {
      return fs::weakly_canonical(fs::path(exe) / relative).string();
    }
  }
  return (fs::path(QB_SOURCE_DIR) / "configs" / "models").string();
}

std::vector<std::string> list_presets() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(presets_dir(), ec)) {
    if (entry.path().extension() == ".json") names.push_back(entry.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

ResolvedModel resolve_model(const std::string& spec) {
  QB_CHECK(!spec.empty(), kInvalidInput, "--model is empty");
  ResolvedModel out;
  out.spec = spec;
  const std::string synthetic_prefix = "synthetic:";
  if (spec.rfind(synthetic_prefix, 0) == 0) {
    const std::string preset = spec.substr(synthetic_prefix.size());
    const fs::path path = fs::path(presets_dir()) / (preset + ".json");
    if (!fs::exists(path)) {
      std::string available;
      for (const auto& name : list_presets()) available += (available.empty() ? "" : ", ") + name;
      fail(ErrorKind::kNotFound, "model '{}': no preset {} (available: {})", spec, path.string(), available);
    }
    out.source = ModelSource::kSynthetic;
    out.id = preset;
    out.config_path = path.string();
    out.config = load_json_file(out.config_path);
    return out;
  }

  std::string hub_looked_at;
  const bool looks_like_path = spec.front() == '/' || spec.front() == '.' || spec.front() == '~' ||
                               std::count(spec.begin(), spec.end(), '/') > 1;
  if (looks_like_path && !fs::is_directory(spec)) {
    fail(ErrorKind::kNotFound, "model '{}': no such directory (a local model is a directory holding config.json "
         "and *.safetensors)", spec);
  }
  if (fs::is_directory(spec)) {
    out.source = ModelSource::kLocal;
    out.dir = spec;
    out.id = fs::path(spec).lexically_normal().filename().string();
    if (out.id.empty()) out.id = fs::path(spec).lexically_normal().parent_path().filename().string();
  } else if (!find_in_hub_cache(spec, out, hub_looked_at)) {
    fail(ErrorKind::kNotFound,
         "model '{}' not found. Looked for a local directory '{}' and the hub cache entry {} "
         "(cache root from $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub). quantbench never "
         "downloads: run `huggingface-cli download {}` on a machine with network access and copy its cache "
         "here, point --model at a directory with config.json and *.safetensors, or use synthetic:PRESET "
         "for random weights of a real shape",
         spec, spec, hub_looked_at, spec);
  }
  out.config_path = (fs::path(out.dir) / "config.json").string();
  QB_CHECK(fs::exists(out.config_path), kNotFound, "model '{}': {} has no config.json", spec, out.dir);
  out.config = load_json_file(out.config_path);
  return out;
}

}  // namespace qb::io
