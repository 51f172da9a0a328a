#include "normnet/checkpoint.h"

#include <nlohmann/json.hpp>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <set>

#include "normnet/error.h"
#include "normnet/fileio.h"

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

LoadedCheckpoint load_checkpoint(const std::string& path) { return parse_checkpoint(read_file(path), path); }

LoadedCheckpoint parse_checkpoint(const std::vector<uint8_t>& bytes, const std::string& path) {
  const StFile f = parse_safetensors(bytes, path);
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

namespace {

// uint64 values as decimal strings: JSON numbers are doubles to many readers.
json words(const std::array<uint64_t, 4>& w) {
  json a = json::array();
  for (uint64_t v : w) a.push_back(std::to_string(v));
  return a;
}

uint64_t parse_u64(const json& j, const std::string& what) {
  const std::string t = j.get<std::string>();
  check(!t.empty() && t.size() <= 20 && t.find_first_not_of("0123456789") == std::string::npos, what,
        ": '", t, "' is not an unsigned 64-bit decimal number");
  errno = 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(t.c_str(), &end, 10);
  check(errno == 0 && *end == 0, what, ": '", t, "' is out of range for 64 bits");
  return v;
}

std::array<uint64_t, 4> parse_words(const json& j, const std::string& what) {
  check(j.is_array() && j.size() == 4, what, ": expected 4 words");
  std::array<uint64_t, 4> w{};
  for (size_t i = 0; i < 4; ++i) w[i] = parse_u64(j.at(i), what);
  check((w[0] | w[1] | w[2] | w[3]) != 0, what, ": the all-zero state is not a valid generator state");
  return w;
}

// Metrics may be NaN (a test loss that overflowed): stored as null, read back as NaN.
json number(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }
double number_of(const json& j) { return j.is_null() ? std::nan("") : j.get<double>(); }

int64_t non_negative(const json& j, const char* key, const std::string& what) {
  const int64_t v = j.at(key).get<int64_t>();
  check(v >= 0, what, ": '", key, "' is negative (", v, ")");
  return v;
}

}  // namespace

void save_train_state(const std::string& path, Model& m, Optimizer& opt, const TrainState& s) {
  const TrainProgress& p = s.progress;
  StFile f;
  for (auto& [name, t] : state_dict(m).tensors) f.tensors["model." + name] = t;
  for (auto& [name, t] : opt.state()) f.put_f32(name, *t);
  f.metadata["normnet.format"] = "1";
  f.metadata["normnet.model"] = m.spec;
  f.metadata["normnet.normalization"] = json{{"mean", s.norm.mean}, {"std", s.norm.std}}.dump();
  f.metadata["normnet.train_config"] = s.config;
  json counters = json::object();
  for (auto& [name, c] : m.net->named_counters()) counters[name] = std::to_string(*c);
  json history = json::array();
  for (const EpochMetrics& e : p.history)
    history.push_back({{"epoch", e.epoch}, {"train_loss", number(e.train_loss)},
                       {"train_accuracy", number(e.train_accuracy)}, {"test_loss", number(e.test_loss)},
                       {"test_accuracy", number(e.test_accuracy)}, {"lr", number(e.lr)}});
  const json j{{"epoch", p.epoch},       {"step", p.step},
               {"step_in_epoch", p.step_in_epoch},
               {"optimizer", opt.options().kind},
               {"optimizer_steps", opt.steps()},
               {"rng", words(p.rng)},    {"rng_epoch", words(p.rng_epoch)},
               {"loss_sum", p.loss_sum}, {"correct", p.correct},
               {"seen", p.seen},         {"counters", counters},
               {"history", history}};
  f.metadata["normnet.train_state"] = j.dump();
  write_safetensors(path, f);
}

LoadedTrainState load_train_state(const std::string& path) {
  StFile f = read_safetensors(path);
  auto meta = [&](const char* key) -> const std::string& {
    auto it = f.metadata.find(key);
    check(it != f.metadata.end(), path, ": not a normnet train state (no '", key,
          "' in the safetensors metadata)");
    return it->second;
  };
  check(meta("normnet.format") == "1", path, ": unsupported train-state format '", meta("normnet.format"), "'");
  LoadedTrainState L{build_model(meta("normnet.model"), path + " (model description)"), {}, {}, {}};
  TrainState& s = L.state;
  try {
    const json n = json::parse(meta("normnet.normalization"));
    s.norm.mean = n.at("mean").get<float>();
    s.norm.std = n.at("std").get<float>();
  } catch (const json::exception& e) {
    fail(path, ": bad 'normnet.normalization' metadata: ", e.what());
  }
  check(s.norm.std > 0 && std::isfinite(s.norm.std) && std::isfinite(s.norm.mean), path,
        ": bad normalization (std must be positive and finite)");
  s.config = meta("normnet.train_config");

  // The model's tensors, then every other tensor is the optimizer's (restore_optimizer).
  StFile model_part;
  for (auto it = f.tensors.begin(); it != f.tensors.end();) {
    if (it->first.rfind("model.", 0) == 0) {
      model_part.tensors[it->first.substr(6)] = std::move(it->second);
      it = f.tensors.erase(it);
    } else {
      ++it;
    }
  }
  load_state_dict(L.model, model_part, path + " (model tensors 'model.*')");

  const std::string what = path + ": 'normnet.train_state' metadata";
  TrainProgress& p = s.progress;
  try {
    const json j = json::parse(meta("normnet.train_state"));
    p.epoch = non_negative(j, "epoch", what);
    p.step = non_negative(j, "step", what);
    p.step_in_epoch = non_negative(j, "step_in_epoch", what);
    L.optimizer = j.at("optimizer").get<std::string>();
    check(non_negative(j, "optimizer_steps", what) == p.step, what, ": optimizer_steps ",
          j.at("optimizer_steps").get<int64_t>(), " differs from step ", p.step);
    p.rng = parse_words(j.at("rng"), what + " 'rng'");
    p.rng_epoch = parse_words(j.at("rng_epoch"), what + " 'rng_epoch'");
    p.loss_sum = j.at("loss_sum").get<double>();
    p.correct = non_negative(j, "correct", what);
    p.seen = non_negative(j, "seen", what);
    check(p.correct <= p.seen, what, ": correct ", p.correct, " exceeds seen ", p.seen);
    const json& counters = j.at("counters");
    check(counters.is_object(), what, ": 'counters' must be an object");
    size_t used = 0;
    for (auto& [name, c] : L.model.net->named_counters()) {
      check(counters.contains(name), what, ": missing counter '", name, "'");
      *c = parse_u64(counters.at(name), what + " counter '" + name + "'");
      ++used;
    }
    check(used == counters.size(), what, ": ", counters.size() - used, " counter(s) the model does not have");
    for (const json& e : j.at("history")) {
      EpochMetrics m;
      m.epoch = e.at("epoch").get<int64_t>();
      m.train_loss = number_of(e.at("train_loss"));
      m.train_accuracy = number_of(e.at("train_accuracy"));
      m.test_loss = number_of(e.at("test_loss"));
      m.test_accuracy = number_of(e.at("test_accuracy"));
      m.lr = number_of(e.at("lr"));
      check(m.epoch == static_cast<int64_t>(p.history.size()) + 1, what, ": history entry ",
            p.history.size(), " is for epoch ", m.epoch);
      p.history.push_back(m);
    }
    check(static_cast<int64_t>(p.history.size()) == p.epoch, what, ": ", p.history.size(),
          " epochs of history for ", p.epoch, " completed epochs");
  } catch (const json::exception& e) {
    fail(what, ": ", e.what());
  }
  L.file = std::move(f);
  return L;
}

void restore_optimizer(const LoadedTrainState& s, Optimizer& opt) {
  const std::string& path = s.file.source;
  check(s.optimizer == opt.options().kind, path, ": the state is for optimizer '", s.optimizer,
        "', training uses '", opt.options().kind, "'");
  std::set<std::string> expected;
  for (auto& [name, t] : opt.state()) {
    expected.insert(name);
    check(s.file.has(name), path, ": missing optimizer tensor '", name, "'");
    const StTensor& st = s.file.tensors.at(name);
    check(st.dtype == "F32" && Shape(st.shape) == t->shape(), path, ": optimizer tensor '", name,
          "' is ", st.dtype, " ", Shape(st.shape).str(), ", expected F32 ", t->shape().str());
    t->copy_from(s.file.get_f32(name));
  }
  for (auto& [name, t] : s.file.tensors)
    check(expected.count(name) != 0, path, ": unexpected tensor '", name,
          "' (neither 'model.*' nor a state of the optimizer's parameters)");
  opt.set_steps(s.state.progress.step);
}

}  // namespace normnet
