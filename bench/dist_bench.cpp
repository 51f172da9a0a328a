// dist_bench: what one data-parallel training step exchanges and how long that takes here.
//
//   mpirun -np K build/dist_bench [--model NAME|FILE] [--reps R]
//
// For the model's parameter count P it times the gradient exchange (Comm::sum_floats of P
// floats: each rank sends and receives 2 (K-1)/K P floats) and SyncBatchNorm's exchanges (per
// BatchNorm layer of C channels: an allgather of 2C+1 doubles in forward, a rank-order sum of 2C
// doubles in backward), median over R repetitions after one warm-up. Rank 0 prints one JSON
// object: bytes sent per rank per step, and milliseconds per step for each part.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "dist/mpi_comm.h"
#include "normnet/distributed.h"
#include "normnet/layers.h"
#include "normnet/model.h"

using namespace normnet;

namespace {

void visit(Module& m, std::vector<int64_t>& bn_channels) {
  if (auto* bn = dynamic_cast<BatchNorm*>(&m)) bn_channels.push_back(bn->opt.num_features);
  for (auto& [name, child] : m.children()) visit(*child, bn_channels);
}

template <class F>
double median_ms(Comm& comm, int reps, F f) {
  std::vector<double> t;
  f();
  for (int r = 0; r < reps; ++r) {
    std::vector<uint8_t> none;
    comm.broadcast(none, 0);  // start together
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = "seed001";
  int reps = 50;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--model")) model = argv[i + 1];
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
  }
  if (!launched_by_mpirun()) {
    std::fprintf(stderr, "dist_bench: run under mpirun -np K\n");
    return 1;
  }
  auto comm = start_mpi();
  Model m = load_model(model);
  const int64_t P = m.net->parameter_count();
  std::vector<int64_t> channels;
  visit(*m.net, channels);
  const int K = comm->size();
  std::vector<float> grads(static_cast<size_t>(P), 1.0f);
  const double grad_ms = median_ms(*comm, reps, [&] { comm->sum_floats(grads.data(), P); });
  int64_t bn_bytes = 0;
  const double bn_ms = median_ms(*comm, reps, [&] {
    for (int64_t C : channels) {
      std::vector<double> mine(static_cast<size_t>(2 * C + 1), 1.0), all(mine.size() * K);
      comm->allgather(mine.data(), all.data(), static_cast<int64_t>(mine.size() * sizeof(double)));
      std::vector<double> sums(static_cast<size_t>(2 * C), 1.0);
      sum_over_ranks(*comm, sums.data(), 2 * C);
    }
  });
  for (int64_t C : channels) bn_bytes += ((2 * C + 1) + 2 * C) * 8 * (K - 1);  // sent per rank
  const int64_t grad_bytes = 2 * (K - 1) * P * 4 / K;
  if (comm->rank() == 0)
    std::printf("{\"model\": \"%s\", \"ranks\": %d, \"parameters\": %lld, \"batchnorm_layers\": %zu, "
                "\"gradient_bytes_sent_per_rank\": %lld, \"gradient_ms\": %.3f, "
                "\"syncbn_bytes_sent_per_rank\": %lld, \"syncbn_ms\": %.3f}\n",
                model.c_str(), K, (long long)P, channels.size(), (long long)grad_bytes, grad_ms,
                (long long)bn_bytes, bn_ms);
  return 0;
}
