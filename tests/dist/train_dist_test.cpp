// Data-parallel training over 2 ranks against training in one process with the same global
// batch (computed on every rank): seed001 for a few steps with --sync-bn gives the same weights
// and running statistics within 1e-5 relative, with batches that do not split evenly, a final
// batch of one sample (one rank then has none), and crop-flip augmentation; without SyncBN the
// ranks still hold identical weights (checked after every step) and, after the averaging,
// identical running statistics. A few steps only: training amplifies rounding (one ulp of one
// weight of resnet20 moves BN biases by 5e-3 relative after a step; docs/distributed.md). Also: the rank-order sums give the same bytes on every rank,
// shard_of's parts, and evaluation split over the ranks. Run by mpirun -np 2.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <vector>

#include "dist_test_util.h"
#include "normnet/data.h"
#include "normnet/layers.h"
#include "normnet/model.h"
#include "normnet/train.h"

namespace fs = std::filesystem;

namespace normnet::test {
namespace {

constexpr double kTol = 1e-5;

// The first n Fashion-MNIST training images (normalized), or random ones when it is not
// installed; the same on every rank.
Dataset images(int64_t n) {
  Dataset d;
  const char* dir = "/usr/share/datasets/fashion-mnist";
  if (fs::is_directory(dir)) {
    d = load_mnist_split(dir, true, n);
    normalize_inplace(d.images, compute_normalization(d.images));
    return d;
  }
  Rng rng(99);
  d.images = Tensor(Shape{n, 1, 28, 28});
  for (int64_t i = 0; i < d.images.numel(); ++i) d.images.data()[i] = static_cast<float>(rng.normal());
  for (int64_t i = 0; i < n; ++i) d.labels.push_back(static_cast<int32_t>(rng.below(10)));
  return d;
}

TrainConfig config(int64_t batch, const std::string& augment) {
  TrainConfig cfg;
  cfg.epochs = 1;
  cfg.batch_size = batch;
  cfg.seed = 7;
  cfg.augment = augment;
  cfg.optimizer.kind = "sgd";
  cfg.optimizer.lr = 0.02;
  cfg.optimizer.momentum = 0.9;
  return cfg;
}

Model seed001() {
  Model m = load_model("seed001");
  m.init_parameters(3);
  return m;
}

// Trains n images in batches of `batch` on one process and over the ranks; compares.
void compare_with_one_process(int64_t n, int64_t batch, const std::string& augment) {
  SCOPED_TRACE(std::to_string(n) + " images, batch " + std::to_string(batch) + ", " + augment);
  const Dataset data = images(n), none;
  Model one = seed001(), many = seed001();
  const auto want = train(one, data, none, config(batch, augment));
  TrainConfig cfg = config(batch, augment);
  cfg.comm = &comm();
  cfg.check_replicas = true;
  EXPECT_EQ(set_sync_batchnorm(*many.net, &comm()), 2);
  const auto got = train(many, data, none, cfg);
  ASSERT_EQ(got.size(), want.size());
  EXPECT_NEAR(got[0].train_loss, want[0].train_loss, 1e-5 * std::fabs(want[0].train_loss));
  EXPECT_EQ(got[0].train_accuracy, want[0].train_accuracy);
  auto a = one.net->named_parameters(), b = many.net->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_LE(relative_difference(b[i].second->value, a[i].second->value), kTol) << a[i].first;
  auto ba = one.net->named_buffers(), bb = many.net->named_buffers();
  for (size_t i = 0; i < ba.size(); ++i)
    if (ba[i].second.f32) EXPECT_LE(relative_difference(*bb[i].second.f32, *ba[i].second.f32), kTol) << ba[i].first;
    else EXPECT_EQ(*bb[i].second.i64, *ba[i].second.i64) << ba[i].first;
}

TEST(DataParallel, SyncBatchNormEqualsOneProcess) { compare_with_one_process(64, 16, "none"); }
// 37 images in batches of 13: parts of 6 and 7, the last batch 11 (5 and 6).
TEST(DataParallel, UnevenBatchesEqualOneProcess) { compare_with_one_process(37, 13, "none"); }
// 27 images in batches of 13: the last batch is one sample, rank 0 has none.
TEST(DataParallel, EmptyPartEqualsOneProcess) { compare_with_one_process(27, 13, "none"); }
TEST(DataParallel, AugmentationEqualsOneProcess) { compare_with_one_process(48, 16, "crop-flip"); }

TEST(DataParallel, PerRankBatchNormKeepsReplicasIdentical) {
  const Dataset data = images(45), none;
  Model m = seed001();
  TrainConfig cfg = config(10, "none");
  cfg.comm = &comm();
  cfg.check_replicas = true;  // fails training if the ranks' weights ever differ
  const auto got = train(m, data, none, cfg);
  EXPECT_EQ(got.size(), 1u);
  for (auto& [name, b] : m.net->named_buffers()) {
    if (!b.f32) continue;
    const int64_t n = b.f32->numel();
    std::vector<float> both(static_cast<size_t>(2 * n));
    comm().allgather(b.f32->data(), both.data(), n * static_cast<int64_t>(sizeof(float)));
    EXPECT_EQ(std::memcmp(both.data(), both.data() + n, n * sizeof(float)), 0) << name << " differs between ranks";
  }
}

TEST(DataParallel, EvaluationOverRanksEqualsOneProcess) {
  const Dataset data = images(37);
  Model m = seed001();
  const EvalResult want = evaluate(m, data, 8);
  const EvalResult got = evaluate_over_ranks(comm(), m, data, 8);
  EXPECT_EQ(got.total, want.total);
  EXPECT_EQ(got.correct, want.correct);
  EXPECT_NEAR(got.loss, want.loss, 1e-6 * std::fabs(want.loss));
}

TEST(Collectives, SumsAreRankOrderedAndIdentical) {
  Comm& world = comm();
  const int r = world.rank();
  std::vector<float> v = {r == 0 ? 1e8f : 8.0f, r == 0 ? 2.0f : 3.0f, 0.5f, static_cast<float>(r)};
  world.sum_floats(v.data(), static_cast<int64_t>(v.size()));
  EXPECT_EQ(v[0], 100000008.0f);
  EXPECT_EQ(v[1], 5.0f);
  EXPECT_EQ(v[2], 1.0f);
  EXPECT_EQ(v[3], 1.0f);
  std::vector<float> both(8);
  world.allgather(v.data(), both.data(), 4 * sizeof(float));
  EXPECT_EQ(std::memcmp(both.data(), both.data() + 4, 4 * sizeof(float)), 0);
  double d[2] = {r == 0 ? 0.1 : 0.2, 1.0 + r};
  sum_over_ranks(world, d, 2);
  EXPECT_EQ(d[0], 0.1 + 0.2);
  EXPECT_EQ(d[1], 3.0);
  // Odd sizes: chunks of unequal length, and fewer elements than ranks.
  for (int64_t n : {1, 3, 1001}) {
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(i * (r + 1));
    world.sum_floats(x.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(x[i], static_cast<float>(3 * i)) << "n " << n << " i " << i;
  }
}

TEST(Collectives, ShardsCoverEveryItemOnce) {
  for (int ranks : {1, 2, 3, 7})
    for (int64_t n : {0, 1, 5, 13, 128}) {
      int64_t next = 0;
      for (int r = 0; r < ranks; ++r) {
        const Shard s = shard_of(n, r, ranks);
        EXPECT_EQ(s.begin, next);
        EXPECT_GE(s.count, n / ranks);
        EXPECT_LE(s.count, n / ranks + 1);
        next = s.begin + s.count;
      }
      EXPECT_EQ(next, n);
    }
}

}  // namespace
}  // namespace normnet::test
