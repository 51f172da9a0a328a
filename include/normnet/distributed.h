// Data-parallel training over several processes (docs/distributed.md).
//
// Represents: Comm, the ranks of one job (MPI's world under `mpirun`; the command line builds
// it, src/dist/), as the trainer and SyncBatchNorm use them, and the helpers built on it. The
// library itself never includes mpi.h: everything here talks to the ranks through Comm.
//
// Requires: every rank calls each collective (the Comm functions and every helper below that
// takes a Comm) in the same order with the same sizes; a rank that has no samples still calls.
//
// Ensures: every result is the same bytes on every rank and does not depend on the thread
// count: sums are added in double in rank order 0, 1, ..., K-1, never in an order chosen by the
// transport.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "normnet/train.h"

namespace normnet {

class Module;
struct Parameter;

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Every rank gives `bytes` bytes; `all` (bytes * size()) receives rank 0's, then rank 1's, ...
  virtual void allgather(const void* mine, void* all, int64_t bytes) = 0;
  // data[i] becomes the sum over the ranks of their data[i] (n floats on every rank), each element
  // added in double in rank order and rounded to float once.
  virtual void sum_floats(float* data, int64_t n) = 0;
  // Rank `root`'s bytes on every rank (the others' vectors are resized).
  virtual void broadcast(std::vector<uint8_t>& bytes, int root) = 0;
  // Ends every rank of the job now with exit status `code`.
  [[noreturn]] virtual void abort(int code) = 0;
};

// True when mpirun (Open MPI's, or a PMI launcher such as MPICH's hydra or Slurm's srun) started
// this process, from its environment; only then does the command line initialize MPI.
bool launched_by_mpirun();

// Rank `rank`'s part of n items split over `ranks`: the contiguous range
// [rank * n / ranks, (rank + 1) * n / ranks). Parts differ by at most one item and may be empty.
struct Shard {
  int64_t begin = 0, count = 0;
};
Shard shard_of(int64_t n, int rank, int ranks);

// data[i] = the sum over the ranks of data[i], added in double in rank order.
void sum_over_ranks(Comm& comm, double* data, int64_t n);

// SyncBatchNorm: every BatchNorm layer of the tree computes its training statistics (forward)
// and gradient sums (backward) over all ranks of `comm` (null: this rank alone again). Returns
// the number of layers.
int64_t set_sync_batchnorm(Module& root, Comm* comm);

// Every float buffer of the tree (running statistics) becomes its mean over the ranks (in
// double, rank order). Buffers equal on every rank stay bit for bit as they are.
void average_buffers(Comm& comm, Module& root);

// Adds every parameter's gradient over the ranks (one flat buffer through Comm::sum_floats).
void sum_gradients(Comm& comm, const std::vector<std::pair<std::string, Parameter*>>& params,
                   std::vector<float>& scratch);

// A 64-bit hash of the parameters' values (bit patterns, in order).
uint64_t parameters_hash(const std::vector<std::pair<std::string, Parameter*>>& params);
// Fails (normnet::Error), naming `where` and the ranks, unless every rank's parameters_hash
// equals rank 0's.
void check_replicas(Comm& comm, const std::vector<std::pair<std::string, Parameter*>>& params,
                    const std::string& where);

// evaluate() with the data split over the ranks (shard_of): the loss, accuracy, correct and total
// of the whole set on every rank (confusion and per-class accuracy are left empty).
EvalResult evaluate_over_ranks(Comm& comm, Model& m, const Dataset& data, int64_t batch_size = 1000);

}  // namespace normnet
