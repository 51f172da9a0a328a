// GhostBatchNorm1d/2d (docs/normalization.md): in training it IS BatchNorm applied to each
// virtual batch in turn, so it is compared bit for bit with a BatchNorm module run on each
// chunk of virtual_batch_size samples in order (the last chunk the remainder): outputs, input
// gradients, parameter gradients (accumulated over the chunks), running statistics and
// num_batches_tracked after every step, with a momentum and as a cumulative average; evaluation
// is BatchNorm's with the running statistics; without tracking, evaluation uses the chunks'
// statistics; errors and model keys.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "normnet/error.h"
#include "normnet/layers.h"
#include "normnet/model.h"
#include "normnet/random.h"

namespace normnet {
namespace {

Tensor random_tensor(const Shape& s, Rng& rng, float lo = -2.f, float hi = 3.f) {
  Tensor t(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = rng.uniform(lo, hi);
  return t;
}

void expect_same(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  Tensor ca = a.contiguous(), cb = b.contiguous();
  EXPECT_EQ(std::memcmp(ca.data(), cb.data(), sizeof(float) * ca.numel()), 0) << what;
}

// Writes `part` into rows [b, e) of `whole`.
void put_rows(Tensor& whole, int64_t b, const Tensor& part) {
  Tensor dst = whole.slice(b, b + part.dim(0));
  dst.copy_from(part);
}

struct Case {
  int dims;
  Shape shape;
  int64_t vbs;
  std::optional<double> momentum;
  bool affine;
};

TEST(GhostBatchNorm, EqualsBatchNormOnEachVirtualBatch) {
  const std::vector<Case> cases = {
      {2, Shape{10, 3, 2, 3}, 4, 0.1, true},   // chunks 4, 4, 2
      {2, Shape{8, 3, 2, 2}, 4, 0.3, true},    // divisible
      {2, Shape{5, 3, 3, 1}, 8, 0.1, true},    // one chunk: BatchNorm
      {2, Shape{9, 2, 1, 2}, 2, std::nullopt, false},  // last chunk of 1 sample, 2 values
      {1, Shape{11, 4}, 3, 0.1, true},         // chunks 3, 3, 3, 2
      {1, Shape{7, 3, 5}, 3, std::nullopt, true},
  };
  for (const Case& k : cases) {
    const std::string what = "dims " + std::to_string(k.dims) + " " + k.shape.str() + " vbs " +
                             std::to_string(k.vbs);
    GhostBatchNormOptions go;
    go.dims = k.dims;
    go.num_features = k.shape[1];
    go.virtual_batch_size = k.vbs;
    go.momentum = k.momentum;
    go.affine = k.affine;
    BatchNormOptions bo;
    bo.dims = k.dims;
    bo.num_features = k.shape[1];
    bo.momentum = k.momentum;
    bo.affine = k.affine;
    GhostBatchNorm gbn(go);
    BatchNorm bn(bo);
    Rng rng(3);
    if (k.affine)
      for (int64_t c = 0; c < k.shape[1]; ++c) {
        gbn.weight.value.data()[c] = bn.weight.value.data()[c] = rng.uniform(0.5f, 2.f);
        gbn.bias.value.data()[c] = bn.bias.value.data()[c] = rng.uniform(-1.f, 1.f);
      }
    const int64_t N = k.shape[0];
    for (int step = 0; step < 3; ++step) {
      const std::string s = what + " step " + std::to_string(step);
      const Tensor x = random_tensor(k.shape, rng), dy = random_tensor(k.shape, rng, -1.f, 1.f);
      gbn.zero_grad();
      bn.zero_grad();
      const Tensor y = gbn.forward(x);
      const Tensor dx = gbn.backward(dy);
      Tensor want_y(k.shape), want_dx(k.shape);
      for (int64_t b = 0; b < N; b += k.vbs) {  // BatchNorm on each chunk; gradients accumulate
        const int64_t e = std::min(N, b + k.vbs);
        put_rows(want_y, b, bn.forward(x.slice(b, e).contiguous()));
        put_rows(want_dx, b, bn.backward(dy.slice(b, e).contiguous()));
      }
      expect_same(y, want_y, s + ": y");
      expect_same(dx, want_dx, s + ": dx");
      if (k.affine) {
        expect_same(gbn.weight.grad, bn.weight.grad, s + ": dweight");
        expect_same(gbn.bias.grad, bn.bias.grad, s + ": dbias");
      }
      expect_same(gbn.running_mean, bn.running_mean, s + ": running_mean");
      expect_same(gbn.running_var, bn.running_var, s + ": running_var");
      EXPECT_EQ(gbn.num_batches_tracked, bn.num_batches_tracked) << s;
      EXPECT_EQ(gbn.num_batches_tracked, (step + 1) * ((N + k.vbs - 1) / k.vbs)) << s;
    }
    gbn.eval();
    bn.eval();
    const Tensor x = random_tensor(k.shape, rng), dy = random_tensor(k.shape, rng);
    expect_same(gbn.forward(x), bn.forward(x), what + ": eval y");
    expect_same(gbn.backward(dy), bn.backward(dy), what + ": eval dx");
  }
}

TEST(GhostBatchNorm, WithoutTrackingEvaluationUsesTheVirtualBatches) {
  GhostBatchNormOptions go;
  go.num_features = 2;
  go.virtual_batch_size = 3;
  go.track_running_stats = false;
  BatchNormOptions bo;
  bo.num_features = 2;
  bo.track_running_stats = false;
  GhostBatchNorm gbn(go);
  BatchNorm bn(bo);
  gbn.eval();
  bn.eval();
  EXPECT_TRUE(gbn.own_buffers().empty());
  Rng rng(4);
  const Tensor x = random_tensor(Shape{7, 2, 2, 2}, rng);
  const Tensor y = gbn.forward(x);
  Tensor want(x.shape());
  for (int64_t b = 0; b < 7; b += 3) put_rows(want, b, bn.forward(x.slice(b, std::min<int64_t>(7, b + 3)).contiguous()));
  expect_same(y, want, "eval without tracking");
}

TEST(GhostBatchNorm, ErrorsAndKeys) {
  Model m = build_model(R"({"input": [3, 2, 2], "classes": 12, "layers": [
      {"type": "GhostBatchNorm2d", "name": "gbn", "num_features": 3, "virtual_batch_size": 16},
      {"type": "Flatten"}]})", "m.json");
  auto* g = dynamic_cast<GhostBatchNorm*>(&m.net->at(0));
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->opt.virtual_batch_size, 16);
  EXPECT_EQ(g->opt.eps, 1e-5);
  EXPECT_EQ(*g->opt.momentum, 0.1);
  EXPECT_TRUE(g->opt.affine && g->opt.track_running_stats);
  EXPECT_EQ(g->describe(), "GhostBatchNorm2d(3, virtual_batch_size=16)");
  std::vector<std::string> names;
  for (auto& [n, p] : m.net->named_parameters()) names.push_back(n);
  for (auto& [n, b] : m.net->named_buffers()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"gbn.weight", "gbn.bias", "gbn.running_mean",
                                             "gbn.running_var", "gbn.num_batches_tracked"}));
  Model m1 = build_model(R"({"input": [3], "classes": 3, "layers": [
      {"type": "GhostBatchNorm1d", "name": "g", "num_features": 3, "virtual_batch_size": 2,
       "momentum": null, "affine": false, "track_running_stats": false, "eps": 0.01}]})", "m1.json");
  auto* g1 = dynamic_cast<GhostBatchNorm*>(&m1.net->at(0));
  ASSERT_NE(g1, nullptr);
  EXPECT_EQ(g1->describe(), "GhostBatchNorm1d(3, virtual_batch_size=2, eps=0.01, momentum=None, "
                            "affine=False, track_running_stats=False)");
  // A last virtual batch of one value per channel.
  try {
    g1->forward(Tensor(Shape{5, 3}));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "GhostBatchNorm1d 'g': expected more than 1 value per channel in every "
                           "virtual batch when training, got input (5, 3) whose last virtual batch "
                           "(virtual_batch_size 2) holds 1 sample");
  }
  EXPECT_NO_THROW(g1->forward(Tensor(Shape{4, 3})));
  EXPECT_EQ(g1->forward(Tensor(Shape{0, 3})).shape(), (Shape{0, 3}));

  auto error_of = [](const std::string& layer) {
    try {
      build_model(R"({"input": [3, 2, 2], "classes": 12, "layers": [)" + layer + R"(, {"type": "Flatten"}]})",
                  "bad.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error_of(R"({"type": "GhostBatchNorm2d", "name": "g", "num_features": 3})"),
            "bad.json: layers[0] (GhostBatchNorm2d 'g'): missing required key 'virtual_batch_size'");
  EXPECT_EQ(error_of(R"({"type": "GhostBatchNorm2d", "name": "g", "num_features": 3, "virtual_batch_size": 0})"),
            "bad.json: layers[0] (GhostBatchNorm2d 'g'): GhostBatchNorm: virtual_batch_size must be positive, got 0");
}

}  // namespace
}  // namespace normnet
