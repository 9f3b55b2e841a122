// --model resolution. Order: `synthetic:PRESET` (configs/models/PRESET.json, random weights made
// in memory), then a local directory holding config.json, then a HuggingFace id in the local hub
// cache. Nothing is ever downloaded: a miss lists every place looked at and how to fill it.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace qb::io {

enum class ModelSource { kLocal, kHubCache, kSynthetic };
const char* model_source_name(ModelSource source);

struct ResolvedModel {
  ModelSource source = ModelSource::kLocal;
  std::string spec;      // what the user typed
  std::string id;        // hub id, directory name, or preset name
  std::string dir;       // checkpoint directory (empty for synthetic)
  std::string revision;  // hub snapshot hash, empty otherwise
  std::string config_path;
  nlohmann::json config;
};

// Hub cache root: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub.
std::string hub_cache_dir();
// Directory of synthetic presets: $QB_CONFIG_DIR/models, else configs/models beside the binary's
// install prefix, else the source tree's configs/models.
std::string presets_dir();
std::vector<std::string> list_presets();

ResolvedModel resolve_model(const std::string& spec);

}  // namespace qb::io
