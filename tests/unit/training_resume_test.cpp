// Exact resume through the library: a run stopped at any checkpoint (mid-epoch or at an epoch's
// end), saved with save_train_state, read back with load_train_state and continued with
// train(..., opt, progress), ends with the same bytes as the run that never stopped: weights,
// BatchNorm buffers and num_batches_tracked, Adam moments and step count, Dropout counters and
// every epoch's metrics. The network has Dropout; the run uses crop-flip augmentation, Adam,
// a step schedule, label smoothing, gradient clipping and a ragged last batch. The train
// state round-trips every field; a damaged one is an error naming the entry.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "normnet/checkpoint.h"
#include "normnet/error.h"
#include "normnet/model.h"
#include "normnet/train.h"

namespace fs = std::filesystem;

namespace normnet {
namespace {

const char* kTinyDropout = R"({"name": "tiny", "input": [1, 12, 12], "classes": 10, "layers": [
  {"type": "Conv2d", "name": "conv1", "in_channels": 1, "out_channels": 6, "kernel_size": 3, "padding": 1},
  {"type": "BatchNorm2d", "name": "bn1", "num_features": 6},
  {"type": "ReLU", "name": "relu1"},
  {"type": "MaxPool2d", "name": "pool1", "kernel_size": 2},
  {"type": "Flatten", "name": "flatten"},
  {"type": "Dropout", "name": "drop", "p": 0.3},
  {"type": "Linear", "name": "fc", "in_features": 216, "out_features": 10}]})";

Dataset random_data(int64_t n, uint64_t seed) {
  Rng rng(seed);
  Dataset d;
  d.images = Tensor(Shape{n, 1, 12, 12});
  for (int64_t i = 0; i < d.images.numel(); ++i) d.images.data()[i] = static_cast<float>(rng.normal());
  for (int64_t i = 0; i < n; ++i) d.labels.push_back(static_cast<int32_t>(rng.below(10)));
  return d;
}

TrainConfig config() {
  TrainConfig cfg;
  cfg.epochs = 3;
  cfg.batch_size = 16;  // 100 images: 7 steps per epoch, the last of 4 images
  cfg.seed = 11;
  cfg.augment = "crop-flip";
  cfg.label_smoothing = 0.1;
  cfg.optimizer.kind = "adam";
  cfg.optimizer.lr = 0.01;
  cfg.optimizer.weight_decay = 1e-4;
  cfg.schedule.kind = "step";
  cfg.schedule.gamma = 0.5;
  cfg.clip_grad_norm = 2.0;
  cfg.checkpoint_every = 3;
  return cfg;
}

// Everything that must be bit-identical, as bytes.
struct Final {
  std::vector<uint8_t> model, optimizer;
  std::vector<uint64_t> counters;
  std::vector<double> metrics;  // per epoch: train loss and accuracy, test loss and accuracy, lr
  int64_t optimizer_steps = 0;
};

Final final_of(Model& m, Optimizer& opt, const std::vector<EpochMetrics>& history) {
  Final f;
  f.model = serialize_safetensors(state_dict(m));
  StFile o;
  for (auto& [name, t] : opt.state()) o.put_f32(name, *t);
  f.optimizer = serialize_safetensors(o);
  for (auto& [name, c] : m.net->named_counters()) f.counters.push_back(*c);
  for (const EpochMetrics& e : history)
    f.metrics.insert(f.metrics.end(), {e.train_loss, e.train_accuracy, e.test_loss, e.test_accuracy, e.lr});
  f.optimizer_steps = opt.steps();
  return f;
}

void expect_same(const Final& a, const Final& b, const std::string& what) {
  EXPECT_TRUE(a.model == b.model) << what << ": weights or buffers differ";
  EXPECT_TRUE(a.optimizer == b.optimizer) << what << ": Adam moments differ";
  EXPECT_EQ(a.counters, b.counters) << what << ": Dropout counters differ";
  EXPECT_EQ(a.optimizer_steps, b.optimizer_steps) << what;
  ASSERT_EQ(a.metrics.size(), b.metrics.size()) << what;
  EXPECT_EQ(std::memcmp(a.metrics.data(), b.metrics.data(), a.metrics.size() * sizeof(double)), 0)
      << what << ": metrics differ";
}

struct Stop {};

class TrainResume : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("normnet_resume_" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
  const Dataset train_set = random_data(100, 1), test_set = random_data(40, 2);
};

Final uninterrupted(const Dataset& train_set, const Dataset& test_set, std::vector<int64_t>* checkpoints) {
  Model m = build_model(kTinyDropout, "tiny.json");
  m.init_parameters(5);
  Optimizer opt(m.net->named_parameters(), config().optimizer);
  TrainCallbacks cb;
  cb.on_checkpoint = [&](const TrainProgress& p, Optimizer&) { checkpoints->push_back(p.step); };
  const auto history = train(m, train_set, test_set, config(), cb, opt, initial_progress(config()));
  return final_of(m, opt, history);
}

// Trains until the checkpoint of step `stop`, saves the train state there and stops (as if killed
// right after writing it); returns the state's path.
std::string stopped_run(const Dataset& train_set, const Dataset& test_set, int64_t stop, const std::string& path) {
  Model m = build_model(kTinyDropout, "tiny.json");
  m.init_parameters(5);
  TrainCallbacks cb;
  cb.on_checkpoint = [&](const TrainProgress& p, Optimizer& opt) {
    if (p.step != stop) return;
    save_train_state(path, m, opt, {p, R"({"note": "test"})", Normalization{0.25f, 2.0f}});
    throw Stop{};
  };
  EXPECT_THROW(train(m, train_set, test_set, config(), cb), Stop);
  return path;
}

TEST_F(TrainResume, EveryCheckpointContinuesToTheSameBytes) {
  std::vector<int64_t> checkpoints;
  const Final full = uninterrupted(train_set, test_set, &checkpoints);
  // Every 3 steps within an epoch, and each epoch's end (steps 7, 14, 21).
  EXPECT_EQ(checkpoints, (std::vector<int64_t>{3, 6, 7, 9, 12, 14, 15, 18, 21}));
  ASSERT_EQ(full.counters.size(), 2u) << "drop.seed and drop.calls";
  EXPECT_EQ(full.counters[1], 21u) << "one Dropout mask per training step";
  int mid_epoch = 0;
  for (int64_t stop : checkpoints) {
    const std::string file = stopped_run(train_set, test_set, stop, path("state.safetensors"));
    LoadedTrainState L = load_train_state(file);
    EXPECT_EQ(L.state.progress.step, stop);
    EXPECT_EQ(L.state.config, R"({"note": "test"})");
    EXPECT_EQ(L.state.norm.mean, 0.25f);
    mid_epoch += L.state.progress.step_in_epoch > 0;
    Optimizer opt(L.model.net->named_parameters(), config().optimizer);
    restore_optimizer(L, opt);
    const auto history = train(L.model, train_set, test_set, config(), {}, opt, L.state.progress);
    expect_same(full, final_of(L.model, opt, history), "resumed at step " + std::to_string(stop));
  }
  EXPECT_EQ(mid_epoch, 6);
}

// The test can fail: a resume that forgets the Dropout counter (or the data generator) differs.
TEST_F(TrainResume, ForgettingTheDropoutCounterOrTheGeneratorChangesTheResult) {
  std::vector<int64_t> checkpoints;
  const Final full = uninterrupted(train_set, test_set, &checkpoints);
  for (int variant = 0; variant < 2; ++variant) {
    LoadedTrainState L = load_train_state(stopped_run(train_set, test_set, 9, path("state.safetensors")));
    ASSERT_EQ(L.state.progress.step_in_epoch, 2);
    Optimizer opt(L.model.net->named_parameters(), config().optimizer);
    restore_optimizer(L, opt);
    if (variant == 0) *L.model.net->named_counters().at(1).second = 0;  // drop.calls
    else L.state.progress.rng = L.state.progress.rng_epoch;
    const auto history = train(L.model, train_set, test_set, config(), {}, opt, L.state.progress);
    EXPECT_FALSE(final_of(L.model, opt, history).model == full.model) << "variant " << variant;
  }
}

TEST_F(TrainResume, TrainStateRoundTripsEveryField) {
  Model m = build_model(kTinyDropout, "tiny.json");
  m.init_parameters(3);
  *m.net->named_counters().at(1).second = 123456789012345ULL;
  OptimizerOptions oo;
  oo.kind = "sgd";
  Optimizer opt(m.net->named_parameters(), oo);
  opt.set_steps(9);
  for (auto& [name, t] : opt.state()) t->fill(0.125f);
  TrainProgress p;
  p.epoch = 1;
  p.step_in_epoch = 2;
  p.step = 9;
  p.rng = {1, 2, 3, UINT64_MAX};
  p.rng_epoch = {5, 6, 7, 8};
  p.loss_sum = 0.1 + 0.2;  // not a short decimal
  p.correct = 3;
  p.seen = 32;
  EpochMetrics e;
  e.epoch = 1;
  e.train_loss = 2.0 / 3.0;
  e.test_loss = std::nan("");
  e.lr = 1e-3;
  p.history = {e};
  save_train_state(path("s.safetensors"), m, opt, {p, "{}", Normalization{0.5f, 0.25f}});
  LoadedTrainState L = load_train_state(path("s.safetensors"));
  const TrainProgress& q = L.state.progress;
  EXPECT_EQ(q.epoch, 1);
  EXPECT_EQ(q.step_in_epoch, 2);
  EXPECT_EQ(q.step, 9);
  EXPECT_EQ(q.rng, p.rng);
  EXPECT_EQ(q.rng_epoch, p.rng_epoch);
  EXPECT_EQ(q.loss_sum, p.loss_sum);
  EXPECT_EQ(q.correct, 3);
  EXPECT_EQ(q.seen, 32);
  ASSERT_EQ(q.history.size(), 1u);
  EXPECT_EQ(q.history[0].train_loss, e.train_loss);
  EXPECT_TRUE(std::isnan(q.history[0].test_loss));
  EXPECT_EQ(L.optimizer, "sgd");
  EXPECT_EQ(*L.model.net->named_counters().at(1).second, 123456789012345ULL);
  EXPECT_TRUE(serialize_safetensors(state_dict(L.model)) == serialize_safetensors(state_dict(m)));
  Optimizer back(L.model.net->named_parameters(), oo);
  restore_optimizer(L, back);
  EXPECT_EQ(back.steps(), 9);
  EXPECT_EQ(back.state().at(0).second->data()[0], 0.125f);
  // The wrong optimizer for the stored moments.
  OptimizerOptions adam;
  adam.kind = "adam";
  Optimizer wrong(L.model.net->named_parameters(), adam);
  try {
    restore_optimizer(L, wrong);
    ADD_FAILURE() << "an Adam optimizer took SGD moments";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("'sgd'"), std::string::npos) << err.what();
  }
}

// A damaged train state: each case is an error naming the file and the entry at fault.
TEST_F(TrainResume, DamagedTrainStateIsAnErrorNamingTheEntry) {
  Model m = build_model(kTinyDropout, "tiny.json");
  m.init_parameters(3);
  Optimizer opt(m.net->named_parameters(), OptimizerOptions{});
  TrainProgress p = initial_progress(config());
  save_train_state(path("good.safetensors"), m, opt, {p, "{}", Normalization{}});
  const StFile good = read_safetensors(path("good.safetensors"));
  using json = nlohmann::json;
  struct Case {
    std::string name, want;
    std::function<void(StFile&)> damage;
  };
  auto edit_state = [](std::function<void(json&)> f) {
    return [f](StFile& s) {
      json j = json::parse(s.metadata.at("normnet.train_state"));
      f(j);
      s.metadata["normnet.train_state"] = j.dump();
    };
  };
  const std::vector<Case> cases = {
      {"no state", "normnet.train_state", [](StFile& s) { s.metadata.erase("normnet.train_state"); }},
      {"missing counter", "drop.calls", edit_state([](json& j) { j["counters"].erase("drop.calls"); })},
      {"counter not a number", "drop.seed", edit_state([](json& j) { j["counters"]["drop.seed"] = "12x"; })},
      {"negative step", "step", edit_state([](json& j) { j["step"] = -4; j["optimizer_steps"] = -4; })},
      {"optimizer steps", "optimizer_steps", edit_state([](json& j) { j["optimizer_steps"] = 7; })},
      {"zero generator", "rng", edit_state([](json& j) { j["rng"] = {"0", "0", "0", "0"}; })},
      {"history", "history", edit_state([](json& j) { j["epoch"] = 1; })},
      {"missing weight", "conv1.weight", [](StFile& s) { s.tensors.erase("model.conv1.weight"); }},
      {"missing description", "normnet.model", [](StFile& s) { s.metadata.erase("normnet.model"); }},
  };
  for (const Case& c : cases) {
    StFile bad = good;
    c.damage(bad);
    write_safetensors(path("bad.safetensors"), bad);
    try {
      LoadedTrainState L = load_train_state(path("bad.safetensors"));
      ADD_FAILURE() << c.name << ": loaded";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("bad.safetensors"), std::string::npos) << c.name << ": " << msg;
      EXPECT_NE(msg.find(c.want), std::string::npos) << c.name << ": " << msg;
    }
  }
  // An unexpected tensor is caught when the optimizer is restored.
  StFile extra = good;
  extra.put_f32("ghost.momentum_buffer", Tensor(Shape{2}));
  write_safetensors(path("extra.safetensors"), extra);
  LoadedTrainState L = load_train_state(path("extra.safetensors"));
  Optimizer o(L.model.net->named_parameters(), OptimizerOptions{});
  try {
    restore_optimizer(L, o);
    ADD_FAILURE() << "an unexpected optimizer tensor was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ghost.momentum_buffer"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace normnet
