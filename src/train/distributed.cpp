// The data-parallel helpers of distributed.h on top of Comm: rank-order sums, SyncBatchNorm's
// switch, buffer averaging, the gradient exchange, the replica check and sharded evaluation.
#include "normnet/distributed.h"

#include <cstdlib>
#include <cstring>
#include <functional>

#include "normnet/error.h"
#include "normnet/layers.h"

namespace normnet {

bool launched_by_mpirun() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(v)) return true;
  return false;
}

Shard shard_of(int64_t n, int rank, int ranks) {
  check(ranks >= 1 && rank >= 0 && rank < ranks && n >= 0, "shard_of: rank ", rank, " of ", ranks,
        " ranks, ", n, " items");
  const int64_t begin = n * rank / ranks, end = n * (rank + 1) / ranks;
  return {begin, end - begin};
}

void sum_over_ranks(Comm& comm, double* data, int64_t n) {
  const int K = comm.size();
  if (K == 1 || n == 0) return;
  std::vector<double> all(static_cast<size_t>(n) * K);
  comm.allgather(data, all.data(), n * static_cast<int64_t>(sizeof(double)));
  for (int64_t i = 0; i < n; ++i) {
    double s = 0.0;
    for (int r = 0; r < K; ++r) s += all[static_cast<size_t>(r) * n + i];
    data[i] = s;
  }
}

namespace {

void visit(Module& m, const std::function<void(Module&)>& f) {
  f(m);
  for (auto& [name, child] : m.children()) visit(*child, f);
}

}  // namespace

int64_t set_sync_batchnorm(Module& root, Comm* comm) {
  int64_t layers = 0;
  visit(root, [&](Module& m) {
    if (auto* bn = dynamic_cast<BatchNorm*>(&m)) {
      bn->sync = comm;
      ++layers;
    }
  });
  return layers;
}

void average_buffers(Comm& comm, Module& root) {
  const int K = comm.size();
  if (K == 1) return;
  std::vector<Tensor*> tensors;
  for (auto& [name, b] : root.named_buffers())
    if (b.f32) tensors.push_back(b.f32);
  int64_t n = 0;
  for (Tensor* t : tensors) n += t->numel();
  std::vector<double> v;
  v.reserve(static_cast<size_t>(n));
  for (Tensor* t : tensors) {
    const Tensor c = t->contiguous();
    v.insert(v.end(), c.data(), c.data() + c.numel());
  }
  sum_over_ranks(comm, v.data(), n);
  size_t k = 0;
  for (Tensor* t : tensors) {
    Tensor avg(t->shape());
    for (int64_t i = 0; i < avg.numel(); ++i) avg.data()[i] = static_cast<float>(v[k++] / K);
    t->copy_from(avg);
  }
}

void sum_gradients(Comm& comm, const std::vector<std::pair<std::string, Parameter*>>& params,
                   std::vector<float>& scratch) {
  if (comm.size() == 1) return;
  int64_t n = 0;
  for (auto& [name, p] : params) n += p->grad.numel();
  scratch.resize(static_cast<size_t>(n));
  float* at = scratch.data();
  for (auto& [name, p] : params) {
    const Tensor g = p->grad.contiguous();
    std::memcpy(at, g.data(), static_cast<size_t>(g.numel()) * sizeof(float));
    at += g.numel();
  }
  comm.sum_floats(scratch.data(), n);
  at = scratch.data();
  for (auto& [name, p] : params) {
    check(p->grad.is_contiguous(), "sum_gradients: the gradient of '", name, "' is not contiguous");
    std::memcpy(p->grad.data(), at, static_cast<size_t>(p->grad.numel()) * sizeof(float));
    at += p->grad.numel();
  }
}

uint64_t parameters_hash(const std::vector<std::pair<std::string, Parameter*>>& params) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (auto& [name, p] : params) {
    const Tensor v = p->value.contiguous();
    for (int64_t i = 0; i < v.numel(); ++i) {
      uint32_t bits;
      std::memcpy(&bits, v.data() + i, sizeof bits);
      h = (h ^ bits) * 0x100000001b3ULL;
    }
  }
  return h;
}

void check_replicas(Comm& comm, const std::vector<std::pair<std::string, Parameter*>>& params,
                    const std::string& where) {
  const int K = comm.size();
  if (K == 1) return;
  const uint64_t mine = parameters_hash(params);
  std::vector<uint64_t> all(static_cast<size_t>(K));
  comm.allgather(&mine, all.data(), sizeof mine);
  for (int r = 1; r < K; ++r)
    check(all[r] == all[0], where, ": the ranks' parameters differ (rank ", r, " hashes to ",
          all[r], ", rank 0 to ", all[0], "); the replicas must stay identical");
}

EvalResult evaluate_over_ranks(Comm& comm, Model& m, const Dataset& data, int64_t batch_size) {
  const Shard sh = shard_of(data.size(), comm.rank(), comm.size());
  double sums[3] = {0.0, 0.0, 0.0};  // loss x count, correct, count
  if (sh.count > 0) {
    Dataset part;
    part.images = data.images.slice(sh.begin, sh.begin + sh.count);
    part.labels.assign(data.labels.begin() + sh.begin, data.labels.begin() + sh.begin + sh.count);
    part.classes = data.classes;
    const EvalResult r = evaluate(m, part, batch_size);
    sums[0] = r.loss * static_cast<double>(r.total);
    sums[1] = static_cast<double>(r.correct);
    sums[2] = static_cast<double>(r.total);
  }
  sum_over_ranks(comm, sums, 3);
  EvalResult r;
  r.correct = static_cast<int64_t>(sums[1]);
  r.total = static_cast<int64_t>(sums[2]);
  r.loss = r.total ? sums[0] / sums[2] : 0.0;
  r.accuracy = r.total ? sums[1] / sums[2] : 0.0;
  return r;
}

}  // namespace normnet
