// bn_bench: times normnet's BatchNorm2d kernels against a plain parallel copy on this machine.
//
//   build/bn_bench [--quick] [--reps N]
//
// Threads: OpenMP, as set by OMP_NUM_THREADS (2 when it is unset). For every shape (N,C,H,W)
// it times kernels::batchnorm_forward_train, batchnorm_forward_eval, batchnorm_backward_train
// and a parallel std::memcpy of one tensor, each as the median over --reps runs after warm-up,
// and prints one JSON object per line:
//   {"op":..., "n","c","h","w", "threads", "reps", "median_ms", "bytes", "gbps",
//    "copy_gbps", "fraction_of_copy"}
//
// Bytes counted (T = N*C*H*W*4 bytes, one float32 tensor; per-channel vectors ignored):
//   copy           read src + write dst                         = 2 T
//   forward_train  read x (statistics pass) + read x (normalize
//                  pass) + write y                              = 3 T
//   forward_eval   read x + write y                             = 2 T
//   backward_train read x, dy (dgamma/dbeta reduction pass) +
//                  read x, dy again (dx pass) + write dx        = 5 T
// These are the traffic of the two-pass algorithms, not of any particular cache behaviour
// (write-allocate reads of the destination are not counted, for the copy either).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/batchnorm.h"
#include "kernels/batchnorm_relu.h"

namespace k = normnet::kernels;

namespace {

struct Buf {
  float* p = nullptr;
  explicit Buf(size_t n) {
    p = static_cast<float*>(std::aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64));
    if (!p) {
      std::fprintf(stderr, "bn_bench: out of memory\n");
      std::exit(1);
    }
  }
  ~Buf() { std::free(p); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
};

// Deterministic pseudo-random values in about [-2, 2), first-touched by the threads that use them.
void fill(float* p, size_t n, uint32_t seed) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < static_cast<int64_t>(n); ++i) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    p[i] = static_cast<float>(h & 0xffff) / 16384.0f - 2.0f;
  }
}

void parallel_copy(float* dst, const float* src, size_t n) {
#pragma omp parallel
  {
    const size_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const size_t b = n * t / nt, e = n * (t + 1) / nt;
    std::memcpy(dst + b, src + b, (e - b) * sizeof(float));
  }
}

template <typename F>
double median_ms(F&& f, int reps, int warmup) {
  for (int i = 0; i < warmup; ++i) f();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto a = std::chrono::steady_clock::now();
    f();
    auto b = std::chrono::steady_clock::now();
    t.push_back(std::chrono::duration<double, std::milli>(b - a).count());
  }
  std::sort(t.begin(), t.end());
  return reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
}

void print(const char* op, const int64_t* d, int threads, int reps, double ms, double bytes,
           double copy_gbps) {
  const double gbps = bytes / (ms * 1e-3) / 1e9;
  std::printf(
      "{\"op\": \"%s\", \"n\": %lld, \"c\": %lld, \"h\": %lld, \"w\": %lld, \"threads\": %d, "
      "\"reps\": %d, \"median_ms\": %.4f, \"bytes\": %.0f, \"gbps\": %.3f, \"copy_gbps\": %.3f, "
      "\"fraction_of_copy\": %.4f}\n",
      op, (long long)d[0], (long long)d[1], (long long)d[2], (long long)d[3], threads, reps, ms,
      bytes, gbps, copy_gbps, copy_gbps > 0 ? gbps / copy_gbps : 0.0);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  int reps = 10;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--reps" && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: bn_bench [--quick] [--reps N]\n");
      return 2;
    }
  }
  if (quick && reps == 10) reps = 3;
  if (!std::getenv("OMP_NUM_THREADS")) omp_set_num_threads(2);
  const int threads = omp_get_max_threads();
  const int warmup = quick ? 1 : 2;

  std::vector<std::vector<int64_t>> shapes = {{128, 32, 28, 28}, {128, 64, 14, 14}, {256, 64, 56, 56}};
  if (quick) shapes.resize(1);

  for (const auto& d : shapes) {
    const size_t n = static_cast<size_t>(d[0] * d[1] * d[2] * d[3]);
    const double T = static_cast<double>(n) * sizeof(float);
    const int64_t C = d[1];
    k::BatchNormShape s{d[0], C, d[2] * d[3]};
    const double eps = 1e-5;

    Buf x(n), y(n), dy(n), dx(n);
    fill(x.p, n, 1u);
    fill(dy.p, n, 2u);
    fill(y.p, n, 3u);
    fill(dx.p, n, 4u);
    std::vector<float> gamma(C), beta(C), mean(C), var(C), invstd(C), rm(C), rv(C), dg(C), db(C);
    for (int64_t c = 0; c < C; ++c) {
      gamma[c] = 1.0f + 0.01f * c;
      beta[c] = 0.1f - 0.002f * c;
      rm[c] = 0.05f * c;
      rv[c] = 1.0f + 0.03f * c;
    }

    const double copy_ms = median_ms([&] { parallel_copy(y.p, x.p, n); }, reps, warmup);
    const double copy_gbps = 2 * T / (copy_ms * 1e-3) / 1e9;
    print("copy", d.data(), threads, reps, copy_ms, 2 * T, copy_gbps);

    double ms = median_ms(
        [&] {
          k::batchnorm_forward_train<float>(y.p, mean.data(), var.data(), invstd.data(), x.p,
                                            gamma.data(), beta.data(), eps, s);
        },
        reps, warmup);
    print("forward_train", d.data(), threads, reps, ms, 3 * T, copy_gbps);

    ms = median_ms(
        [&] {
          k::batchnorm_forward_eval<float>(y.p, x.p, rm.data(), rv.data(), gamma.data(),
                                           beta.data(), eps, s);
        },
        reps, warmup);
    print("forward_eval", d.data(), threads, reps, ms, 2 * T, copy_gbps);

    // mean/invstd come from the last forward_train above, as in training.
    ms = median_ms(
        [&] {
          std::fill(dg.begin(), dg.end(), 0.0f);
          std::fill(db.begin(), db.end(), 0.0f);
          k::batchnorm_backward_train<float>(dx.p, dg.data(), db.data(), dy.p, x.p, mean.data(),
                                             invstd.data(), gamma.data(), s);
        },
        reps, warmup);
    print("backward_train", d.data(), threads, reps, ms, 5 * T, copy_gbps);

    // The fused BatchNorm + ReLU + MaxPool2d(2) of conv-BN-ReLU-pool stages (seed001).
    const size_t pooled = n / 4;
    std::vector<int32_t> win(pooled);
    ms = median_ms(
        [&] {
          k::batchnorm_relu_maxpool_forward_train<float>(y.p, win.data(), mean.data(), var.data(),
                                                         invstd.data(), x.p, gamma.data(),
                                                         beta.data(), eps, s, d[2], d[3]);
        },
        reps, warmup);
    print("relu_maxpool_forward_train", d.data(), threads, reps, ms, 2.75 * T, copy_gbps);
    ms = median_ms(
        [&] {
          std::fill(dg.begin(), dg.end(), 0.0f);
          std::fill(db.begin(), db.end(), 0.0f);
          k::batchnorm_relu_maxpool_backward_train<float>(dx.p, dg.data(), db.data(), dy.p,
                                                          win.data(), x.p, mean.data(),
                                                          invstd.data(), gamma.data(), s, d[2], d[3]);
        },
        reps, warmup);
    print("relu_maxpool_backward_train", d.data(), threads, reps, ms, 4.5 * T, copy_gbps);
  }
  return 0;
}
