#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "normnet/error.h"
#include "normnet/fileio.h"
#include "normnet/model.h"

namespace normnet {

namespace fs = std::filesystem;

static std::vector<std::string> zoo_dirs() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("NORMNET_MODELS")) dirs.push_back(env);
  dirs.push_back(NORMNET_SOURCE_MODELS_DIR);
  dirs.push_back(NORMNET_MODELS_DIR);
  return dirs;
}

std::string find_model_file(const std::string& name) {
  if (name.find('/') != std::string::npos || name.ends_with(".json")) {
    check(fs::is_regular_file(name), "model file '", name, "' does not exist");
    return name;
  }
  for (const auto& d : zoo_dirs()) {
    const fs::path p = fs::path(d) / (name + ".json");
    if (fs::is_regular_file(p)) return p.string();
  }
  std::string known;
  for (const auto& n : zoo_model_names()) known += (known.empty() ? "" : ", ") + n;
  fail("unknown model '", name, "' (the zoo has: ", known.empty() ? "nothing found" : known,
       "; or give a path to a .json model file)");
}

Model load_model(const std::string& name_or_path) {
  const std::string path = find_model_file(name_or_path);
  const auto bytes = read_file(path);
  Model m = build_model(std::string(bytes.begin(), bytes.end()), path);
  if (m.name == "model") m.name = fs::path(path).stem().string();
  return m;
}

std::vector<std::string> zoo_model_names() {
  for (const auto& d : zoo_dirs()) {
    std::error_code ec;
    if (!fs::is_directory(d, ec)) continue;
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(d, ec))
      if (e.path().extension() == ".json") names.push_back(e.path().stem().string());
    if (names.empty()) continue;
    std::sort(names.begin(), names.end());
    return names;
  }
  return {};
}

}  // namespace normnet
