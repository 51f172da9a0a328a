// recalibrate_batchnorm (torch.optim.swa_utils.update_bn; docs/normalization.md): for a model
// whose only layer with statistics is one BatchNorm, after recalibration over a data set D in
// batches B_1..B_k the running statistics are exactly the cumulative average of the batch
// statistics, running_mean = (1/k) sum mean(B_i), running_var = (1/k) sum var_unbiased(B_i),
// whatever garbage they held before; num_batches_tracked = k; momentum, mode and parameters are
// restored/untouched. Also: a last batch of one sample joins the one before, GhostBatchNorm
// counts virtual batches, BatchRenorm keeps its options and step count, and a model without
// such layers is left alone.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "normnet/error.h"
#include "normnet/model.h"
#include "normnet/random.h"
#include "normnet/train.h"

namespace normnet {
namespace {

Dataset random_data(int64_t n, const Shape& per_sample, int64_t classes, Rng& rng) {
  std::vector<int64_t> dims{n};
  for (int i = 0; i < per_sample.rank; ++i) dims.push_back(per_sample[i]);
  Dataset d;
  d.images = Tensor(Shape(dims));
  const int64_t C = per_sample[0], S = per_sample.numel() / C;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t s = 0; s < S; ++s)  // channel c: mean about 3c - 2, spread 1 + c
        d.images.data()[(i * C + c) * S + s] =
            static_cast<float>(3.0 * c - 2.0 + (1.0 + c) * (2.0 * rng.uniform() - 1.0));
  d.classes = classes;
  for (int64_t i = 0; i < n; ++i) d.labels.push_back(static_cast<int32_t>(i % classes));
  return d;
}

// Cumulative averages of per-batch channel statistics over the batches [b_i, e_i).
void expected_stats(const Dataset& d, const std::vector<std::pair<int64_t, int64_t>>& batches,
                    std::vector<double>& rm, std::vector<double>& rv) {
  const int64_t C = d.images.dim(1), S = d.images.numel() / (d.size() * C);
  rm.assign(C, 0.0);
  rv.assign(C, 0.0);
  for (auto [b, e] : batches)
    for (int64_t c = 0; c < C; ++c) {
      const double M = static_cast<double>((e - b) * S);
      double sum = 0, ss = 0;
      for (int64_t i = b; i < e; ++i)
        for (int64_t s = 0; s < S; ++s) sum += d.images.data()[(i * C + c) * S + s];
      const double mean = sum / M;
      for (int64_t i = b; i < e; ++i)
        for (int64_t s = 0; s < S; ++s) {
          const double v = d.images.data()[(i * C + c) * S + s] - mean;
          ss += v * v;
        }
      rm[c] += mean / static_cast<double>(batches.size());
      rv[c] += ss / (M - 1) / static_cast<double>(batches.size());
    }
}

TEST(Recalibrate, SingleBatchNormGetsTheCumulativeAverage) {
  for (int64_t n : {10, 9}) {  // batches of 4: 4, 4, 2 and 4, 5 (no last batch of 1)
    Model m = build_model(R"({"input": [2, 3, 3], "classes": 18, "layers": [
        {"type": "BatchNorm2d", "name": "bn", "num_features": 2, "momentum": 0.2},
        {"type": "Flatten"}]})", "m.json");
    auto* bn = dynamic_cast<BatchNorm*>(&m.net->at(0));
    ASSERT_NE(bn, nullptr);
    bn->weight.value.data()[0] = 1.5f;
    bn->running_mean.fill(7.0f);  // garbage
    bn->running_var.fill(100.0f);
    bn->num_batches_tracked = 55;
    m.net->eval();
    Rng rng(8);
    const Dataset d = random_data(n, Shape{2, 3, 3}, 18, rng);
    const RecalibrateResult r = recalibrate_batchnorm(m, d, 4);
    const std::vector<std::pair<int64_t, int64_t>> batches =
        n == 10 ? std::vector<std::pair<int64_t, int64_t>>{{0, 4}, {4, 8}, {8, 10}}
                : std::vector<std::pair<int64_t, int64_t>>{{0, 4}, {4, 9}};
    EXPECT_EQ(r.layers, 1);
    EXPECT_EQ(r.batches, static_cast<int64_t>(batches.size()));
    EXPECT_EQ(r.images, n);
    std::vector<double> rm, rv;
    expected_stats(d, batches, rm, rv);
    for (int c = 0; c < 2; ++c) {
      EXPECT_NEAR(bn->running_mean.data()[c], rm[c], 1e-6 * (1 + std::fabs(rm[c]))) << "n " << n << " c " << c;
      EXPECT_NEAR(bn->running_var.data()[c], rv[c], 1e-6 * (1 + rv[c])) << "n " << n << " c " << c;
    }
    EXPECT_EQ(bn->num_batches_tracked, static_cast<int64_t>(batches.size()));
    ASSERT_TRUE(bn->opt.momentum.has_value());
    EXPECT_EQ(*bn->opt.momentum, 0.2);
    EXPECT_FALSE(m.net->training());
    EXPECT_EQ(bn->weight.value.data()[0], 1.5f);
    EXPECT_EQ(bn->weight.grad.data()[0], 0.0f);
  }
}

TEST(Recalibrate, GhostRenormAndLayersWithoutStatistics) {
  Model m = build_model(R"({"input": [2, 2, 2], "classes": 8, "layers": [
      {"type": "GhostBatchNorm2d", "name": "g", "num_features": 2, "virtual_batch_size": 3},
      {"type": "BatchRenorm2d", "name": "r", "num_features": 2, "warmup": [5, 50]},
      {"type": "GroupNorm", "num_groups": 1, "num_channels": 2},
      {"type": "Flatten"}]})", "m.json");
  auto* g = dynamic_cast<GhostBatchNorm*>(&m.net->at(0));
  auto* r = dynamic_cast<BatchRenorm*>(&m.net->at(1));
  ASSERT_TRUE(g && r);
  r->num_batches_tracked = 20;
  r->running_mean.fill(-4.0f);
  Rng rng(9);
  const Dataset d = random_data(8, Shape{2, 2, 2}, 8, rng);
  const RecalibrateResult res = recalibrate_batchnorm(m, d, 8);  // one batch: virtual 3, 3, 2
  EXPECT_EQ(res.layers, 2);
  EXPECT_EQ(res.batches, 1);
  EXPECT_EQ(g->num_batches_tracked, 3);
  std::vector<double> rm, rv;
  expected_stats(d, {{0, 3}, {3, 6}, {6, 8}}, rm, rv);
  for (int c = 0; c < 2; ++c) {
    EXPECT_NEAR(g->running_mean.data()[c], rm[c], 1e-6 * (1 + std::fabs(rm[c])));
    EXPECT_NEAR(g->running_var.data()[c], rv[c], 1e-6 * (1 + rv[c]));
  }
  // BatchRenorm: options and its step count restored; its statistics re-estimated from what it
  // received, with r = 1, d = 0 (so they are finite and the mean is near 0 after the ghost BN).
  EXPECT_EQ(*r->opt.momentum, 0.01);
  EXPECT_EQ(r->opt.r_max, 3.0);
  EXPECT_EQ(r->opt.d_max, 5.0);
  EXPECT_EQ(r->opt.warmup_start, 5);
  EXPECT_EQ(r->opt.warmup_end, 50);
  EXPECT_EQ(r->num_batches_tracked, 20);
  for (int c = 0; c < 2; ++c) EXPECT_NEAR(r->running_mean.data()[c], 0.0, 1e-5);
  for (int c = 0; c < 2; ++c) EXPECT_EQ(r->last_r.data()[c], 1.0f);

  Model plain = build_model(R"({"input": [4], "classes": 4, "layers": [{"type": "Identity"}]})", "p.json");
  Dataset dp = random_data(3, Shape{4}, 4, rng);
  EXPECT_EQ(recalibrate_batchnorm(plain, dp, 2).layers, 0);
  EXPECT_EQ(count_recalibratable_layers(plain), 0);
  EXPECT_EQ(count_recalibratable_layers(m), 2);
  try {
    recalibrate_batchnorm(m, dp, 2);
    ADD_FAILURE() << "no error for mis-shaped data";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "recalibrate: images are (3, 4) but model 'model' takes (3, 2, 2, 2)");
  }
}

}  // namespace
}  // namespace normnet
