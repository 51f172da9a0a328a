// BatchNorm folding (normnet/fold.h): the folded model in evaluation gives the original's
// evaluation outputs, and the rewrite keeps what cannot be folded, with a reason.
//
// Every model gets random parameters and random running statistics (running_var in [0.3, 2],
// gamma of both signs), so the fold's scale and shift are far from the identity. Tolerance:
// max|folded - original| / max|original| <= 1e-5 over a batch of logits. The folded layer's
// weight is W * s rounded once to float (relative error 2^-24 per weight) and the bias likewise,
// so the logits move by about 1e-7 relative after a few layers; a wrong channel, a missing
// shift or a wrong eps moves them by far more than 1e-5. Models whose BNs are all kept give
// bit-identical outputs (nothing is rewritten).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>

#include "normnet/error.h"
#include "normnet/fold.h"
#include "normnet/layers.h"
#include "normnet/model.h"
#include "normnet/random.h"

namespace normnet {
namespace {

using json = nlohmann::json;

void randomize_batchnorms(Module& m, Rng& rng) {
  if (auto* bn = dynamic_cast<BatchNorm*>(&m)) {
    for (int64_t c = 0; c < bn->opt.num_features; ++c) {
      if (bn->opt.affine) {
        bn->weight.value.data()[c] = rng.uniform(0.5f, 1.5f) * (rng.uniform() < 0.2 ? -1.f : 1.f);
        bn->bias.value.data()[c] = rng.uniform(-0.5f, 0.5f);
      }
      if (bn->opt.track_running_stats) {
        bn->running_mean.data()[c] = rng.uniform(-1.f, 1.f);
        bn->running_var.data()[c] = rng.uniform(0.3f, 2.f);
      }
    }
    bn->num_batches_tracked = 17;
  }
  for (auto& [n, c] : m.children()) randomize_batchnorms(*c, rng);
}

Tensor random_input(const Model& m, int64_t n, Rng& rng) {
  Tensor x(m.batch_shape(n));
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = rng.uniform(-1.f, 1.f);
  return x;
}

double rel_err(const Tensor& got, const Tensor& want) {
  double err = 0, mag = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    err = std::max(err, std::fabs(double(got.data()[i]) - want.data()[i]));
    mag = std::max(mag, std::fabs(double(want.data()[i])));
  }
  return mag > 0 ? err / mag : err;
}

std::set<std::string> names_of(Model& m) {
  std::set<std::string> s;
  for (auto& [n, p] : m.net->named_parameters()) s.insert(n);
  for (auto& [n, b] : m.net->named_buffers()) s.insert(n);
  return s;
}

struct Folded {
  Model original, folded;
  FoldReport report;
  double err = 0;
};

Folded fold_and_compare(const std::string& spec, uint64_t seed) {
  Folded r{build_model(spec, "test model"), Model{}, {}, 0};
  r.original.init_parameters(seed);
  Rng rng(seed + 1);
  randomize_batchnorms(*r.original.net, rng);
  r.folded = fold_batchnorm(r.original, &r.report);
  r.original.net->eval();
  r.folded.net->eval();
  const Tensor x = random_input(r.original, 8, rng);
  const Tensor want = r.original.net->forward(x), got = r.folded.net->forward(x);
  EXPECT_EQ(got.shape(), want.shape());
  r.err = rel_err(got, want);
  return r;
}

TEST(Fold, Seed001) {
  Folded r = fold_and_compare(load_model("seed001").spec, 5);
  EXPECT_LE(r.err, 1e-5);
  EXPECT_GT(r.err, 0.0);  // it really is a different computation
  EXPECT_EQ(r.report.folded, (std::vector<std::string>{"BatchNorm2d 'bn1' into Conv2d 'conv1'",
                                                       "BatchNorm2d 'bn2' into Conv2d 'conv2'"}));
  EXPECT_TRUE(r.report.kept.empty());
  EXPECT_EQ(names_of(r.folded), (std::set<std::string>{"conv1.weight", "conv1.bias", "conv2.weight",
                                                       "conv2.bias", "fc.weight", "fc.bias"}));
  const json spec = json::parse(r.folded.spec);
  for (const json& l : spec["layers"]) EXPECT_NE(l["type"], "BatchNorm2d");
  EXPECT_EQ(spec["layers"][0]["bias"], true);
  // The folded description is an ordinary description: it rebuilds.
  EXPECT_NO_THROW(build_model(r.folded.spec, "rebuilt"));
}

TEST(Fold, Seed003KerasBatchNormAfterReluIsKept) {
  Folded r = fold_and_compare(load_model("seed003-keras").spec, 6);
  EXPECT_EQ(r.err, 0.0);  // nothing folded, nothing changed
  EXPECT_TRUE(r.report.folded.empty());
  ASSERT_EQ(r.report.kept.size(), 2u);
  EXPECT_NE(r.report.kept[0].find("kept BatchNorm2d 'bn1': it follows ReLU 'relu1', not a Conv1d/Conv2d/Linear"),
            std::string::npos)
      << r.report.kept[0];
  EXPECT_NE(r.report.kept[1].find("'bn2'"), std::string::npos) << r.report.kept[1];
  EXPECT_EQ(names_of(r.folded), names_of(r.original));
}

// Conv2d without bias (gets one), unnamed layers after a dropped one keep their names, a
// Residual body and shortcut, a BN without running statistics and a BN first in its sequence
// (both kept), and Linear -> BatchNorm1d without affine.
TEST(Fold, ConvWithoutBiasResidualAndKeptLayers) {
  const std::string spec = R"({
    "name": "fold-test", "input": [3, 6, 6], "classes": 4,
    "layers": [
      {"type": "BatchNorm2d", "num_features": 3},
      {"type": "Conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3, "padding": 1, "bias": false},
      {"type": "BatchNorm2d", "num_features": 4, "eps": 0.001},
      {"type": "ReLU"},
      {"type": "Residual", "activation": "ReLU", "body": [
        {"type": "Conv2d", "name": "conv1", "in_channels": 4, "out_channels": 4, "kernel_size": 3, "padding": 1, "bias": false},
        {"type": "BatchNorm2d", "name": "bn1", "num_features": 4},
        {"type": "ReLU", "name": "relu1"},
        {"type": "Conv2d", "name": "conv2", "in_channels": 4, "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"type": "BatchNorm2d", "name": "bn2", "num_features": 4, "momentum": null}],
       "shortcut": [
        {"type": "Conv2d", "in_channels": 4, "out_channels": 4, "kernel_size": 1, "bias": false},
        {"type": "BatchNorm2d", "num_features": 4}]},
      {"type": "Conv2d", "name": "convx", "in_channels": 4, "out_channels": 5, "kernel_size": 3, "stride": 2},
      {"type": "BatchNorm2d", "name": "bn_notrack", "num_features": 5, "track_running_stats": false},
      {"type": "Flatten"},
      {"type": "Linear", "in_features": 20, "out_features": 6, "bias": false},
      {"type": "BatchNorm1d", "num_features": 6, "affine": false},
      {"type": "ReLU"},
      {"type": "Linear", "in_features": 6, "out_features": 4}
    ]})";
  Folded r = fold_and_compare(spec, 7);
  EXPECT_LE(r.err, 1e-5);
  EXPECT_EQ(r.report.folded,
            (std::vector<std::string>{"BatchNorm2d '2' into Conv2d '1'", "BatchNorm2d '4.bn1' into Conv2d '4.conv1'",
                                      "BatchNorm2d '4.bn2' into Conv2d '4.conv2'",
                                      "BatchNorm2d '4.shortcut.1' into Conv2d '4.shortcut.0'",
                                      "BatchNorm1d '9' into Linear '8'"}));
  ASSERT_EQ(r.report.kept.size(), 2u);
  EXPECT_NE(r.report.kept[0].find("kept BatchNorm2d '0': it is the first layer"), std::string::npos)
      << r.report.kept[0];
  EXPECT_NE(r.report.kept[1].find("kept BatchNorm2d 'bn_notrack': track_running_stats is off"),
            std::string::npos)
      << r.report.kept[1];
  const std::set<std::string> want = {
      "0.weight", "0.bias", "0.running_mean", "0.running_var", "0.num_batches_tracked", "1.weight", "1.bias",
      "4.conv1.weight", "4.conv1.bias", "4.conv2.weight", "4.conv2.bias", "4.shortcut.0.weight",
      "4.shortcut.0.bias", "convx.weight", "convx.bias", "bn_notrack.weight", "bn_notrack.bias", "8.weight",
      "8.bias", "11.weight", "11.bias"};
  EXPECT_EQ(names_of(r.folded), want);
  // Kept BN's buffers come along unchanged.
  for (auto& [n, b] : r.folded.net->named_buffers())
    if (b.i64) {
      EXPECT_EQ(*b.i64, 17) << n;
    }
}

// Folding is pure: the original model is left as it was, and folding twice changes nothing more.
TEST(Fold, OriginalUntouchedAndIdempotent) {
  Folded r = fold_and_compare(load_model("seed001").spec, 8);
  EXPECT_EQ(names_of(r.original).count("bn1.running_var"), 1u);
  FoldReport again;
  Model twice = fold_batchnorm(r.folded, &again);
  EXPECT_TRUE(again.folded.empty());
  EXPECT_TRUE(again.kept.empty());
  twice.net->eval();
  Rng rng(9);
  const Tensor x = random_input(r.folded, 4, rng);
  EXPECT_EQ(rel_err(twice.net->forward(x), r.folded.net->forward(x)), 0.0);
}

}  // namespace
}  // namespace normnet
