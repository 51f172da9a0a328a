// Model-description rewrites behind `normnet train --activation / --norm / --bn-position`: the
// JSON is transformed before it is built, so the transformed description is the model (it is
// what a checkpoint stores, and `normnet summary` of it shows the real network).
//
// Order: the activation is swapped first, then the norm/activation pairs are reordered
// (--bn-position), then every BatchNorm is replaced by the chosen normalization. The position
// rewrite runs on BatchNorm layers before they are replaced, so it means the same for every
// --norm. Layers keep their names, so state_dict names stay "bn1.weight" whatever the norm.
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "nn/description_json.h"
#include "normnet/error.h"
#include "normnet/fileio.h"
#include "normnet/model.h"

namespace normnet {

using json = nlohmann::json;

namespace {

const std::set<std::string> kActivations{"ReLU", "ELU", "LeakyReLU"};

bool is_batchnorm(const json& l) {
  return l.is_object() && l.contains("type") &&
         (l["type"] == "BatchNorm2d" || l["type"] == "BatchNorm1d");
}

bool is_activation(const json& l) {
  return l.is_object() && l.contains("type") && l["type"].is_string() &&
         kActivations.count(l["type"].get<std::string>()) != 0;
}

std::string where(const std::string& source, const std::string& path, const json& l) {
  std::string name = l.is_object() && l.contains("name") && l["name"].is_string()
                         ? l["name"].get<std::string>()
                         : std::string("?");
  return source + ": " + path + " (" + (l.is_object() ? l.value("type", std::string("?")) : "?") +
         " '" + name + "')";
}

// The normalization that replaces one BatchNorm layer, or null to drop it.
json replace_norm(const json& bn, const ModelTransform& t, const std::string& at) {
  const bool one_d = bn["type"] == "BatchNorm1d";
  check(bn.contains("num_features") && bn["num_features"].is_number_integer(), at,
        ": missing integer 'num_features'");
  const int64_t c = bn["num_features"].get<int64_t>();
  json out = json::object();
  out["type"] = "";
  if (bn.contains("name")) out["name"] = bn["name"];
  const std::string& n = t.norm;
  const bool affine = bn.value("affine", true);
  auto carry = [&](std::initializer_list<const char*> keys) {
    for (const char* k : keys)
      if (bn.contains(k)) out[k] = bn[k];
  };
  if (n == "none") return nullptr;
  if (n.rfind("gn:", 0) == 0 || n == "ln") {
    // ln: GroupNorm with one group, i.e. every sample normalized over all of (C, H, W) (or (C)
    // for BatchNorm1d's (N, C)), as LayerNorm over (C, H, W) does, with a per-channel affine
    // instead of LayerNorm's per-element one. It needs no feature-map shape, so one rewrite
    // serves every input size; it is the "LN" of Wu & He's Group Normalization paper.
    const int64_t g = n == "ln" ? 1 : ModelTransform::parse_count(n.substr(3), "--norm gn:G");
    check(c % g == 0, at, ": --norm ", n, ": ", c, " channels are not divisible into ", g, " groups");
    out["type"] = "GroupNorm";
    out["num_groups"] = g;
    out["num_channels"] = c;
    carry({"eps"});
    if (!affine) out["affine"] = false;
  } else if (n == "in") {
    out["type"] = one_d ? "InstanceNorm1d" : "InstanceNorm2d";
    out["num_features"] = c;
    carry({"eps"});
    out["affine"] = affine;
  } else if (n == "brn") {
    out["type"] = one_d ? "BatchRenorm1d" : "BatchRenorm2d";
    out["num_features"] = c;
    carry({"eps", "momentum", "affine"});
  } else if (n.rfind("ghost:", 0) == 0) {
    out["type"] = one_d ? "GhostBatchNorm1d" : "GhostBatchNorm2d";
    out["num_features"] = c;
    out["virtual_batch_size"] = ModelTransform::parse_count(n.substr(6), "--norm ghost:V");
    carry({"eps", "momentum", "affine"});
  } else {
    fail("--norm: unknown normalization '", n, "' (expected bn, gn:G, ln, in, brn, ghost:V or none)");
  }
  if (bn.contains("comment")) out["comment"] = bn["comment"];
  return out;
}

void transform_layers(json& layers, const ModelTransform& t, const std::string& source,
                      const std::string& path);

void transform_layer(json& l, const ModelTransform& t, const std::string& source,
                     const std::string& path) {
  if (!l.is_object() || !l.contains("type") || !l["type"].is_string()) return;  // the builder says why
  const std::string type = l["type"];
  if (!t.activation.empty() && (type == "ReLU" || type == "ELU")) {
    const std::string want = t.activation == "elu" ? "ELU" : "ReLU";
    if (type != want) {
      json n = json::object();
      n["type"] = want;
      if (l.contains("name")) n["name"] = l["name"];
      if (l.contains("comment")) n["comment"] = l["comment"];
      l = n;  // drops ELU's alpha / ReLU's inplace: the new activation's defaults
    }
  }
  if (type == "Residual") {
    if (!t.activation.empty() && l.contains("activation") && l["activation"].is_string() &&
        (l["activation"] == "ReLU" || l["activation"] == "ELU"))
      l["activation"] = t.activation == "elu" ? "ELU" : "ReLU";
    if (l.contains("body")) transform_layers(l["body"], t, source, path + ".body");
    if (l.contains("shortcut") && l["shortcut"].is_array())
      transform_layers(l["shortcut"], t, source, path + ".shortcut");
  }
  if (l.contains("branches") && l["branches"].is_array())  // Concat
    for (size_t i = 0; i < l["branches"].size(); ++i) {
      json& b = l["branches"][i];
      if (b.is_object() && b.contains("layers"))
        transform_layers(b["layers"], t, source, path + ".branches[" + std::to_string(i) + "]");
    }
}

void transform_layers(json& layers, const ModelTransform& t, const std::string& source,
                      const std::string& path) {
  if (!layers.is_array()) return;  // the builder reports it
  for (size_t i = 0; i < layers.size(); ++i)
    transform_layer(layers[i], t, source, path + "[" + std::to_string(i) + "]");
  // --bn-position: "after" turns each BatchNorm -> activation pair into activation -> BatchNorm,
  // "before" the reverse. Pairs only: a BatchNorm with no activation next to it (the last
  // BatchNorm of a residual body, before the addition) stays where it is.
  if (t.bn_position == "after" || t.bn_position == "before") {
    const bool after = t.bn_position == "after";
    for (size_t i = 0; i + 1 < layers.size(); ++i) {
      const bool swap = after ? is_batchnorm(layers[i]) && is_activation(layers[i + 1])
                              : is_activation(layers[i]) && is_batchnorm(layers[i + 1]);
      if (swap) {
        std::swap(layers[i], layers[i + 1]);
        ++i;
      }
    }
  }
  if (!t.norm.empty() && t.norm != "bn") {
    json out = json::array();
    for (size_t i = 0; i < layers.size(); ++i) {
      if (!is_batchnorm(layers[i])) {
        out.push_back(std::move(layers[i]));
        continue;
      }
      json r = replace_norm(layers[i], t, where(source, path + "[" + std::to_string(i) + "]", layers[i]));
      if (!r.is_null()) out.push_back(std::move(r));
    }
    layers = std::move(out);
  }
}

}  // namespace

int64_t ModelTransform::parse_count(const std::string& s, const char* what) {
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  check(used == s.size() && !s.empty() && v >= 1 && v <= (1 << 30), what,
        ": expected a positive integer after the colon, got '", s, "'");
  return v;
}

bool ModelTransform::empty() const {
  return activation.empty() && (norm.empty() || norm == "bn") && bn_position.empty();
}

std::string ModelTransform::suffix() const {
  std::string s;
  if (!activation.empty()) s += "-" + activation;
  if (!norm.empty() && norm != "bn") {
    std::string n = norm;
    for (char& ch : n)
      if (ch == ':') ch = '_';
    s += "-" + n;
  }
  if (!bn_position.empty()) s += "-bn" + bn_position;
  return s;
}

std::string transform_model(const std::string& json_text, const ModelTransform& t,
                            const std::string& source) {
  check(t.activation.empty() || t.activation == "relu" || t.activation == "elu",
        "--activation: expected 'relu' or 'elu', got '", t.activation, "'");
  check(t.bn_position.empty() || t.bn_position == "before" || t.bn_position == "after",
        "--bn-position: expected 'before' or 'after', got '", t.bn_position, "'");
  if (!t.norm.empty() && t.norm != "bn") {  // reject a bad --norm even for a model without BatchNorm
    json probe = {{"type", "BatchNorm2d"}, {"num_features", 1}};
    if (t.norm.rfind("gn:", 0) == 0) ModelTransform::parse_count(t.norm.substr(3), "--norm gn:G");
    else replace_norm(probe, t, "--norm");
  }
  json j = parse_description(json_text, source);  // nesting bounded (src/nn/description_json.h)
  check(j.is_object(), source, ": a model description must be a JSON object");
  if (t.empty()) return j.dump();
  if (j.contains("layers")) transform_layers(j["layers"], t, source, "layers");
  if (j.contains("name") && j["name"].is_string())
    j["name"] = j["name"].get<std::string>() + t.suffix();
  std::string what = "Transformed by normnet:";
  if (!t.activation.empty()) what += " --activation " + t.activation;
  if (!t.norm.empty() && t.norm != "bn") what += " --norm " + t.norm;
  if (!t.bn_position.empty()) what += " --bn-position " + t.bn_position;
  what += " (docs/model-format.md, \"Transforms\").";
  if (!j.contains("notes") || !j["notes"].is_array()) j["notes"] = json::array();
  j["notes"].push_back(what);
  return j.dump();
}

Model load_model(const std::string& name_or_path, const ModelTransform& t) {
  if (t.empty()) return load_model(name_or_path);
  const std::string path = find_model_file(name_or_path);
  const auto bytes = read_file(path);
  Model m = build_model(transform_model(std::string(bytes.begin(), bytes.end()), t, path), path);
  if (m.name == "model") m.name = std::filesystem::path(path).stem().string() + t.suffix();
  return m;
}

}  // namespace normnet
