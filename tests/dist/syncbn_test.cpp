// SyncBatchNorm over 2 ranks, each holding part of a batch, against BatchNorm on the whole batch
// in one process (computed on every rank): outputs, input gradients (and the residual's),
// gamma and beta gradients added over the ranks, and running statistics after two steps, within
// 1e-5 relative; halves equal (8 + 8), unequal (5 + 11) and empty on one rank (0 + 16); plain,
// fused with ReLU and fused with residual add + ReLU; momentum 0.1 and the cumulative average;
// a large mean. The running statistics are the same bytes on both ranks, and the one-value
// check counts the values of all ranks. Run by mpirun -np 2 (tests/CMakeLists.txt).
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "dist_test_util.h"
#include "normnet/error.h"
#include "normnet/layers.h"
#include "normnet/random.h"

namespace normnet::test {
namespace {

constexpr double kTol = 1e-5;

Tensor random_tensor(const Shape& s, Rng& rng, double mean, double std) {
  Tensor t(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(mean + std * rng.normal());
  return t;
}

enum class Epilogue { None, ReLU, AddReLU };

struct Case {
  int64_t n0 = 8, n1 = 8;  // samples on rank 0 and on rank 1
  Epilogue epilogue = Epilogue::None;
  std::optional<double> momentum = 0.1;
  double mean = 0.5;
};

BatchNorm make_bn(int64_t channels, const Case& c) {
  BatchNormOptions o;
  o.num_features = channels;
  o.momentum = c.momentum;
  BatchNorm bn(o);
  Rng rng(5);
  for (int64_t i = 0; i < channels; ++i) {
    bn.weight.value.data()[i] = static_cast<float>(0.5 + rng.normal() * 0.3);
    bn.bias.value.data()[i] = static_cast<float>(rng.normal() * 0.3);
  }
  bn.fused_relu = c.epilogue == Epilogue::ReLU;
  return bn;
}

// One training step: {out, dx, dresidual}; gradients accumulate into bn's parameters.
std::vector<Tensor> step(BatchNorm& bn, const Tensor& x, const Tensor& residual, const Tensor& dy,
                         Epilogue e) {
  if (e == Epilogue::AddReLU) {
    Tensor out = bn.forward_add_relu(x, residual);
    auto [dx, dres] = bn.backward_add_relu(dy);
    return {out, dx, dres};
  }
  Tensor out = bn.forward(x);
  return {out, bn.backward(dy), Tensor()};
}

void run_case(const Case& c) {
  SCOPED_TRACE("split " + std::to_string(c.n0) + " + " + std::to_string(c.n1) + ", epilogue " +
               std::to_string(static_cast<int>(c.epilogue)) + ", mean " + std::to_string(c.mean));
  Comm& world = comm();
  ASSERT_EQ(world.size(), 2);  // the same on every rank: no rank skips an exchange
  const int64_t N = c.n0 + c.n1, C = 5, H = 3, W = 4;
  const int64_t begin = world.rank() == 0 ? 0 : c.n0, count = world.rank() == 0 ? c.n0 : c.n1;
  BatchNorm ref = make_bn(C, c), bn = make_bn(C, c);
  bn.sync = &world;
  Rng rng(11);
  for (int s = 0; s < 2; ++s) {
    const Tensor x = random_tensor(Shape{N, C, H, W}, rng, c.mean, 1.5);
    const Tensor res = random_tensor(Shape{N, C, H, W}, rng, 0.0, 1.0);
    const Tensor dy = random_tensor(Shape{N, C, H, W}, rng, 0.1, 1.0);
    const auto want = step(ref, x, res, dy, c.epilogue);
    const auto got = step(bn, x.slice(begin, begin + count).clone(), res.slice(begin, begin + count).clone(),
                          dy.slice(begin, begin + count).clone(), c.epilogue);
    const char* names[] = {"output", "input gradient", "residual gradient"};
    for (size_t k = 0; k < 3; ++k) {
      if (!want[k].defined()) continue;
      EXPECT_LE(relative_difference(got[k], want[k].slice(begin, begin + count)), kTol)
          << names[k] << " at step " << s;
    }
  }
  // This rank's share of the parameter gradients; their sum over the ranks is the whole batch's.
  for (Parameter* p : {&bn.weight, &bn.bias}) {
    Tensor g = p->grad.clone();
    world.sum_floats(g.data(), g.numel());
    const Tensor& want = p == &bn.weight ? ref.weight.grad : ref.bias.grad;
    EXPECT_LE(relative_difference(g, want), kTol) << (p == &bn.weight ? "weight" : "bias") << " gradient";
  }
  EXPECT_LE(relative_difference(bn.running_mean, ref.running_mean), kTol);
  EXPECT_LE(relative_difference(bn.running_var, ref.running_var), kTol);
  EXPECT_EQ(bn.num_batches_tracked, ref.num_batches_tracked);
  // The same bytes on both ranks.
  std::vector<float> both(static_cast<size_t>(2 * C));
  world.allgather(bn.running_var.data(), both.data(), C * static_cast<int64_t>(sizeof(float)));
  EXPECT_EQ(std::memcmp(both.data(), both.data() + C, C * sizeof(float)), 0) << "running_var differs between ranks";
}

TEST(SyncBatchNorm, EqualHalves) { run_case({8, 8, Epilogue::None, 0.1, 0.5}); }
TEST(SyncBatchNorm, UnequalHalves) { run_case({5, 11, Epilogue::None, 0.1, 0.5}); }
TEST(SyncBatchNorm, OneRankEmpty) { run_case({0, 16, Epilogue::None, 0.1, 0.5}); }
TEST(SyncBatchNorm, FusedReLU) {
  run_case({8, 8, Epilogue::ReLU, 0.1, 0.5});
  run_case({5, 11, Epilogue::ReLU, 0.1, 0.5});
}
TEST(SyncBatchNorm, FusedAddReLU) {
  run_case({8, 8, Epilogue::AddReLU, 0.1, 0.5});
  run_case({11, 5, Epilogue::AddReLU, 0.1, 0.5});
}
TEST(SyncBatchNorm, CumulativeAverage) { run_case({5, 11, Epilogue::None, std::nullopt, 0.5}); }
TEST(SyncBatchNorm, LargeMean) { run_case({5, 11, Epilogue::None, 0.1, 1000.0}); }

// BatchNorm1d on (N, C): one sample per rank is two values per channel over the job, which is
// enough; one sample in all is not, and every rank reports it.
TEST(SyncBatchNorm, OneValueCheckCountsAllRanks) {
  Comm& world = comm();
  BatchNormOptions o;
  o.dims = 1;
  o.num_features = 3;
  BatchNorm bn(o);
  bn.sync = &world;
  Rng rng(3);
  const Tensor x = random_tensor(Shape{1, 3}, rng, 0.0, 1.0);
  EXPECT_NO_THROW(bn.forward(x));
  const Tensor mine = world.rank() == 0 ? x : Tensor(Shape{0, 3});
  try {
    bn.forward(mine);
    ADD_FAILURE() << "one value per channel over both ranks was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("more than 1 value per channel over all 2 ranks"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace normnet::test
