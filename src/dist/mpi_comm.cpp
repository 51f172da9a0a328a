// The MPI implementation of Comm (mpi_comm.h). sum_floats is a reduce-scatter then an allgather
// (each rank sends and receives (K-1)/K of the buffer twice, as a ring allreduce does) written
// with Alltoallv and Allgatherv so that the additions happen here, in a fixed order, rather than
// in MPI_Allreduce, whose order the standard leaves to the implementation.
#include "dist/mpi_comm.h"

#include <mpi.h>

#include <climits>
#include <cstdlib>
#include <vector>

#include "normnet/error.h"

namespace normnet {

namespace {

int as_count(int64_t n, const char* what) {
  check(n >= 0 && n <= INT_MAX, what, ": ", n, " elements is more than one MPI message holds (", INT_MAX, ")");
  return static_cast<int>(n);
}

class MpiComm final : public Comm {
 public:
  MpiComm() {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  ~MpiComm() override { MPI_Finalize(); }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void allgather(const void* mine, void* all, int64_t bytes) override {
    const int n = as_count(bytes, "allgather");
    MPI_Allgather(mine, n, MPI_BYTE, all, n, MPI_BYTE, MPI_COMM_WORLD);
  }

  void sum_floats(float* data, int64_t n) override {
    as_count(n, "sum_floats");
    const int K = size_;
    if (K == 1) return;
    std::vector<int> begin(K), count(K);
    for (int j = 0; j < K; ++j) {
      const Shard s = shard_of(n, j, K);
      begin[j] = static_cast<int>(s.begin);
      count[j] = static_cast<int>(s.count);
    }
    // Chunk j goes to rank j; this rank receives every rank's copy of its chunk, in rank order.
    const int mine = count[rank_];
    std::vector<float> parts(static_cast<size_t>(mine) * K);
    std::vector<int> recv_count(K, mine), recv_begin(K);
    for (int i = 0; i < K; ++i) recv_begin[i] = i * mine;
    MPI_Alltoallv(data, count.data(), begin.data(), MPI_FLOAT, parts.data(), recv_count.data(),
                  recv_begin.data(), MPI_FLOAT, MPI_COMM_WORLD);
    float* out = data + begin[rank_];
    for (int k = 0; k < mine; ++k) {
      double s = 0.0;
      for (int i = 0; i < K; ++i) s += static_cast<double>(parts[static_cast<size_t>(i) * mine + k]);
      out[k] = static_cast<float>(s);
    }
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, count.data(), begin.data(), MPI_FLOAT,
                   MPI_COMM_WORLD);
  }

  void broadcast(std::vector<uint8_t>& bytes, int root) override {
    int64_t n = static_cast<int64_t>(bytes.size());
    MPI_Bcast(&n, 1, MPI_INT64_T, root, MPI_COMM_WORLD);
    bytes.resize(static_cast<size_t>(n));
    MPI_Bcast(bytes.data(), as_count(n, "broadcast"), MPI_BYTE, root, MPI_COMM_WORLD);
  }

  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Comm> start_mpi() { return std::make_unique<MpiComm>(); }

}  // namespace normnet
