// BatchNorm folding (include/normnet/fold.h has the math and the rules). The description is
// rewritten as JSON, the folded model built from it, and every tensor copied by name from the
// original, the folded layers' weight and bias replaced.
#include "normnet/fold.h"

#include <nlohmann/json.hpp>
#include <algorithm>
#include <cmath>
#include <map>

#include "normnet/error.h"

namespace normnet {

using json = nlohmann::json;

namespace {

struct Folder {
  std::map<std::string, Tensor> old;     // the original state, by state_dict name
  std::map<std::string, Tensor> folded;  // replaced tensors (conv/linear weight and bias)
  FoldReport report;

  const Tensor& get(const std::string& name, const std::string& layer) const {
    auto it = old.find(name);
    check(it != old.end(), "fold: ", layer, ": the model has no tensor '", name, "'");
    return it->second;
  }

  static std::string type_of(const json& l) {
    return l.is_object() && l.contains("type") && l["type"].is_string() ? l["type"].get<std::string>() : "?";
  }
  static std::string name_of(const json& l, size_t i) {
    return l.is_object() && l.contains("name") && l["name"].is_string() ? l["name"].get<std::string>()
                                                                         : std::to_string(i);
  }

  // Why the BN at layers[i] cannot be folded, or "" when it can.
  static std::string keep_reason(const json& layers, size_t i, const std::string& prefix) {
    const json& bn = layers[i];
    if (i == 0) return "it is the first layer of its sequence, with no Conv/Linear before it to fold into";
    const std::string prev = type_of(layers[i - 1]);
    if (prev != "Conv1d" && prev != "Conv2d" && prev != "Linear")
      return "it follows " + prev + " '" + prefix + name_of(layers[i - 1], i - 1) +
             "', not a Conv1d/Conv2d/Linear (only a BatchNorm directly after one is folded)";
    if (bn.contains("track_running_stats") && bn["track_running_stats"] == false)
      return "track_running_stats is off: it has no running statistics (it normalizes with batch "
             "statistics even in evaluation), so there is no fixed affine map to fold";
    return "";
  }

  // W' = W * s, b' = (b - rm) * s + beta per output channel, s = gamma / sqrt(rv + eps).
  void fold_pair(json& layer, const json& bn, const std::string& lpath, const std::string& bpath) {
    const std::string lname = type_of(layer) + " '" + lpath + "'", bname = type_of(bn) + " '" + bpath + "'";
    const Tensor& w = get(lpath + ".weight", lname);
    const int64_t out = w.dim(0), per = w.numel() / std::max<int64_t>(out, 1);
    const Tensor& rm = get(bpath + ".running_mean", bname);
    const Tensor& rv = get(bpath + ".running_var", bname);
    check(rm.numel() == out && rv.numel() == out, "fold: ", bname, " has ", rm.numel(),
          " channels but ", lname, " gives ", out);
    const bool affine = !bn.contains("affine") || bn["affine"] != false;
    const bool has_bias = !layer.contains("bias") || layer["bias"] != false;
    const double eps = bn.contains("eps") && bn["eps"].is_number() ? bn["eps"].get<double>() : 1e-5;
    const float* gamma = affine ? get(bpath + ".weight", bname).data() : nullptr;
    const float* beta = affine ? get(bpath + ".bias", bname).data() : nullptr;
    const float* b = has_bias ? get(lpath + ".bias", lname).data() : nullptr;
    Tensor w2(w.shape()), b2(Shape{out});
    for (int64_t o = 0; o < out; ++o) {
      const double var = rv.data()[o];
      check(var + eps > 0 && std::isfinite(var), "fold: ", bname, ": running_var[", o, "] = ", var,
            " gives no finite scale");
      const double s = (gamma ? static_cast<double>(gamma[o]) : 1.0) / std::sqrt(var + eps);
      for (int64_t k = 0; k < per; ++k)
        w2.data()[o * per + k] = static_cast<float>(static_cast<double>(w.data()[o * per + k]) * s);
      b2.data()[o] = static_cast<float>(((b ? static_cast<double>(b[o]) : 0.0) - rm.data()[o]) * s +
                                        (beta ? static_cast<double>(beta[o]) : 0.0));
    }
    folded[lpath + ".weight"] = w2;
    folded[lpath + ".bias"] = b2;
    layer["bias"] = true;
    report.folded.push_back(bname + " into " + lname);
  }

  // Folds within one sequence; prefix is the dotted path of its layers ("", "block1.").
  void sequence(json& layers, const std::string& prefix) {
    if (!layers.is_array()) return;
    std::vector<bool> drop(layers.size(), false);
    for (size_t i = 0; i < layers.size(); ++i) {
      json& l = layers[i];
      const std::string t = type_of(l), path = prefix + name_of(l, i);
      if (t == "Residual") {
        if (l.contains("body")) sequence(l["body"], path + ".");
        if (l.contains("shortcut") && l["shortcut"].is_array())
          sequence(l["shortcut"], path + "." + l.value("shortcut_name", std::string("shortcut")) + ".");
        continue;
      }
      if (t == "Concat") {  // each branch is a sequence of its own
        if (l.contains("branches") && l["branches"].is_array())
          for (size_t b = 0; b < l["branches"].size(); ++b) {
            json& br = l["branches"][b];
            if (!br.is_object() || !br.contains("layers")) continue;
            const std::string bname = br.contains("name") && br["name"].is_string() ? br["name"].get<std::string>()
                                                                                   : std::to_string(b);
            sequence(br["layers"], path + "." + bname + ".");
          }
        continue;
      }
      if (t != "BatchNorm1d" && t != "BatchNorm2d") continue;
      const std::string why = keep_reason(layers, i, prefix);
      if (!why.empty()) {
        report.kept.push_back("kept " + t + " '" + path + "': " + why);
        continue;
      }
      fold_pair(layers[i - 1], l, prefix + name_of(layers[i - 1], i - 1), path);
      drop[i] = true;
    }
    json kept = json::array();
    for (size_t i = 0; i < layers.size(); ++i) {
      if (drop[i]) continue;
      // Positional names would shift past a dropped layer: pin them.
      if (layers[i].is_object() && !layers[i].contains("name")) layers[i]["name"] = std::to_string(i);
      kept.push_back(layers[i]);
    }
    if (kept.size() != layers.size()) layers = kept;
  }
};

}  // namespace

Model fold_batchnorm(Model& m, FoldReport* report) {
  json spec;
  try {
    spec = json::parse(m.spec);
  } catch (const json::exception& e) {
    fail("fold: the model description is not valid JSON: ", e.what());
  }
  check(spec.is_object() && spec.contains("layers"), "fold: the model description has no 'layers'");
  Folder f;
  for (auto& [name, p] : m.net->named_parameters()) f.old[name] = p->value;
  for (auto& [name, b] : m.net->named_buffers())
    if (b.f32) f.old[name] = *b.f32;
  f.sequence(spec["layers"], "");
  if (!f.report.folded.empty()) {
    std::string note = "normnet fold: BatchNorm folded (evaluation semantics, running statistics): ";
    for (size_t i = 0; i < f.report.folded.size(); ++i) note += (i ? "; " : "") + f.report.folded[i];
    if (!spec.contains("notes") || !spec["notes"].is_array()) {
      json notes = json::array();
      if (spec.contains("notes") && spec["notes"].is_string()) notes.push_back(spec["notes"]);
      spec["notes"] = notes;
    }
    spec["notes"].push_back(note);
  }
  Model out = build_model(spec.dump(), "fold: the folded model description");
  for (auto& [name, p] : out.net->named_parameters()) {
    auto it = f.folded.find(name);
    const Tensor& src = it != f.folded.end() ? it->second : f.get(name, "the folded model");
    check(src.shape() == p->value.shape(), "fold: tensor '", name, "' has shape ", src.shape().str(),
          ", the folded model expects ", p->value.shape().str());
    p->value.copy_from(src);
  }
  for (auto& [name, b] : out.net->named_buffers()) {
    if (b.f32) {
      const Tensor& src = f.get(name, "the folded model");
      check(src.shape() == b.f32->shape(), "fold: buffer '", name, "' has shape ", src.shape().str(),
            ", the folded model expects ", b.f32->shape().str());
      b.f32->copy_from(src);
      continue;
    }
    bool found = false;  // num_batches_tracked of a kept BN
    for (auto& [oname, ob] : m.net->named_buffers())
      if (oname == name && ob.i64) *b.i64 = *ob.i64, found = true;
    check(found, "fold: the model has no buffer '", name, "'");
  }
  if (report) *report = f.report;
  return out;
}

}  // namespace normnet
