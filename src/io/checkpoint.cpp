#include "normnet/checkpoint.h"

#include <nlohmann/json.hpp>
#include <cmath>
#include <set>

#include "normnet/error.h"

namespace normnet {

using json = nlohmann::json;

StFile state_dict(Model& m) {
  StFile f;
  for (auto& [name, p] : m.net->named_parameters()) f.put_f32(name, p->value);
  for (auto& [name, b] : m.net->named_buffers()) {
    if (b.f32) f.put_f32(name, *b.f32);
    else f.put_i64(name, {}, b.i64);
  }
  return f;
}

void load_state_dict(Model& m, const StFile& f, const std::string& what) {
  std::set<std::string> expected;
  auto load_f32 = [&](const std::string& name, Tensor& dst) {
    expected.insert(name);
    check(f.has(name), what, ": missing tensor '", name, "' (the model expects shape ",
          dst.shape().str(), ")");
    const StTensor& t = f.tensors.at(name);
    check(t.dtype == "F32", what, ": tensor '", name, "' has dtype ", t.dtype, ", expected F32");
    check(Shape(t.shape) == dst.shape(), what, ": tensor '", name, "' has shape ",
          Shape(t.shape).str(), ", the model expects ", dst.shape().str());
    dst.copy_from(f.get_f32(name));
  };
  for (auto& [name, p] : m.net->named_parameters()) load_f32(name, p->value);
  for (auto& [name, b] : m.net->named_buffers()) {
    if (b.f32) {
      load_f32(name, *b.f32);
      continue;
    }
    expected.insert(name);
    check(f.has(name), what, ": missing tensor '", name, "'");
    const StTensor& t = f.tensors.at(name);
    check(t.dtype == "I64" && t.shape.empty(), what, ": tensor '", name,
          "' must be an I64 scalar (shape []), got ", t.dtype, " ", Shape(t.shape).str());
    const auto v = f.get_i64(name);
    check(v[0] >= 0, what, ": tensor '", name, "' is negative (", v[0], ")");
    *b.i64 = v[0];
  }
  for (auto& [name, t] : f.tensors)
    check(expected.count(name) != 0, what, ": unexpected tensor '", name, "' (not in the model)");
}

void save_checkpoint(const std::string& path, Model& m, const Normalization& norm,
                     const std::map<std::string, std::string>& extra) {
  StFile f = state_dict(m);
  f.metadata = extra;
  f.metadata["normnet.format"] = "1";
  f.metadata["normnet.model"] = m.spec;
  f.metadata["normnet.normalization"] = json{{"mean", norm.mean}, {"std", norm.std}}.dump();
  write_safetensors(path, f);
}

LoadedCheckpoint load_checkpoint(const std::string& path) {
  const StFile f = read_safetensors(path);
  auto meta = [&](const char* key) -> const std::string& {
    auto it = f.metadata.find(key);
    check(it != f.metadata.end(), path, ": not a normnet checkpoint (no '", key,
          "' in the safetensors metadata)");
    return it->second;
  };
  check(meta("normnet.format") == "1", path, ": unsupported checkpoint format '",
        meta("normnet.format"), "'");
  LoadedCheckpoint c{build_model(meta("normnet.model"), path + " (model description)"), {}, f.metadata};
  try {
    const json n = json::parse(meta("normnet.normalization"));
    c.norm.mean = n.at("mean").get<float>();
    c.norm.std = n.at("std").get<float>();
  } catch (const json::exception& e) {
    fail(path, ": bad 'normnet.normalization' metadata: ", e.what());
  }
  check(c.norm.std > 0 && std::isfinite(c.norm.std) && std::isfinite(c.norm.mean), path,
        ": bad normalization (std must be positive and finite)");
  load_state_dict(c.model, f, path);
  return c;
}

void save_train_state(const std::string& path, Optimizer& opt, const TrainState& s) {
  StFile f;
  for (auto& [name, t] : opt.state()) f.put_f32(name, *t);
  f.metadata["normnet.format"] = "1";
  json j{{"epoch", s.epoch}, {"step", s.step}, {"optimizer", opt.options().kind},
         {"optimizer_steps", opt.steps()}};
  json rng = json::array();
  for (uint64_t w : s.rng) rng.push_back(std::to_string(w));  // as strings: JSON numbers are doubles elsewhere
  j["rng"] = rng;
  f.metadata["normnet.train_state"] = j.dump();
  write_safetensors(path, f);
}

TrainState load_train_state(const std::string& path, Optimizer& opt) {
  const StFile f = read_safetensors(path);
  auto it = f.metadata.find("normnet.train_state");
  check(it != f.metadata.end(), path, ": no 'normnet.train_state' metadata");
  TrainState s;
  try {
    const json j = json::parse(it->second);
    s.epoch = j.at("epoch").get<int64_t>();
    s.step = j.at("step").get<int64_t>();
    check(j.at("optimizer").get<std::string>() == opt.options().kind, path, ": state is for optimizer '",
          j.at("optimizer").get<std::string>(), "', training uses '", opt.options().kind, "'");
    opt.set_steps(j.at("optimizer_steps").get<int64_t>());
    for (size_t i = 0; i < 4; ++i) s.rng[i] = std::stoull(j.at("rng").at(i).get<std::string>());
  } catch (const json::exception& e) {
    fail(path, ": bad 'normnet.train_state' metadata: ", e.what());
  }
  for (auto& [name, t] : opt.state()) {
    check(f.has(name), path, ": missing optimizer tensor '", name, "'");
    const Tensor v = f.get_f32(name);
    check(v.shape() == t->shape(), path, ": optimizer tensor '", name, "' has shape ", v.shape().str(),
          ", expected ", t->shape().str());
    t->copy_from(v);
  }
  return s;
}

}  // namespace normnet
