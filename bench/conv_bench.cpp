// conv_bench: forward 3x3 convolutions (kernels::conv2d_forward) at the sizes of the zoo's
// networks, and normnet's single-threaded GEMM on a large square product.
//
//   build/conv_bench [--reps R] [--batch N]
//
// Threads: OMP_NUM_THREADS. One JSON object per line:
//   {"op": "conv", "algorithm", "n","c_in","h","w","c_out", "median_ms", "gflops"}
//        each shape by the direct convolution and by Winograd (normnet::ConvAlgorithm);
//        gflops = 2 * the direct convolution's multiply-adds / time, for both (for Winograd an
//        effective rate: it does fewer multiplies)
//   {"op": "gemm", "m","n","k", "median_ms", "gflops"}                   (one thread)
//   {"op": "fma_peak", "threads", "gflops"}   the machine's single-precision peak: every thread
//        runs independent 16-wide fused multiply-adds from registers (AVX-512, AVX2 or baseline,
//        chosen at run time), nothing else
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/gemm.h"

namespace k = normnet::kernels;

namespace {

template <typename F>
double median_ms(F f, int reps) {
  f();  // warm-up
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto a = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

std::vector<float> values(size_t n, uint32_t seed) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(((i + seed) * 2654435761u) % 2000) / 1000.0f - 1.0f;
  return v;
}

#pragma GCC diagnostic ignored "-Wpsabi"
typedef float v16 __attribute__((vector_size(64)));

// 12 independent accumulators (more than FMA latency x throughput) for `iters` rounds: 12 * 16
// multiply-adds per round. Returns a value that depends on every accumulator so nothing is
// optimized away.
#if defined(__x86_64__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
float fma_loop(int64_t iters, float seed) {
  v16 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = seed * static_cast<float>(i + 1) - v16{};
  const v16 a = 0.999999f - v16{}, b = 1e-7f - v16{};
  for (int64_t t = 0; t < iters; ++t)
    for (int i = 0; i < 12; ++i) acc[i] = acc[i] * a + b;
  float r = 0;
  for (int i = 0; i < 12; ++i)
    for (int j = 0; j < 16; ++j) r += acc[i][j];
  return r;
}

double fma_peak_gflops() {
  const int64_t iters = 20000000;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    float sink = 0;
    const auto a = std::chrono::steady_clock::now();
#pragma omp parallel reduction(+ : sink)
    sink += fma_loop(iters, 1.0f + static_cast<float>(omp_get_thread_num()));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
    if (sink == 12345.0f) std::printf("%f\n", sink);  // keeps sink alive
    best = std::max(best, 2.0 * 12 * 16 * static_cast<double>(iters) * omp_get_max_threads() / (s * 1e9));
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 10;
  int64_t batch = 128;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--reps" && i + 1 < argc) reps = std::atoi(argv[++i]);
    else if (a == "--batch" && i + 1 < argc) batch = std::atoll(argv[++i]);
    else {
      std::fprintf(stderr, "usage: conv_bench [--reps R] [--batch N]\n");
      return 2;
    }
  }
  if (reps < 1 || batch < 1) {
    std::fprintf(stderr, "conv_bench: --reps and --batch must be positive\n");
    return 2;
  }
  // (c_in, h, c_out): seed001's conv2; ResNet-20's three stages (28x28 Fashion-MNIST input).
  const int64_t shapes[][3] = {{32, 14, 64}, {16, 28, 16}, {32, 14, 32}, {64, 7, 64}};
  for (const auto& sh : shapes)
    for (const auto algo : {normnet::ConvAlgorithm::kExact, normnet::ConvAlgorithm::kFast}) {
      normnet::set_conv_algorithm(algo);
      k::Conv2dShape s;
      s.n = batch, s.c_in = sh[0], s.h = s.w = sh[1], s.c_out = sh[2];
      s.kernel_h = s.kernel_w = 3, s.pad_h = s.pad_w = 1;
      const auto x = values(static_cast<size_t>(s.n * s.c_in * s.h * s.w), 1);
      const auto w = values(static_cast<size_t>(s.c_out * s.c_in * 9), 2);
      std::vector<float> y(static_cast<size_t>(s.n * s.c_out * s.h * s.w));
      const double ms = median_ms([&] { k::conv2d_forward(y.data(), x.data(), w.data(), (const float*)nullptr, s); }, reps);
      const double flops = 2.0 * s.n * s.c_out * s.h * s.w * s.c_in * 9;
      std::printf("{\"op\": \"conv\", \"algorithm\": \"%s\", \"n\": %lld, \"c_in\": %lld, \"h\": %lld, "
                  "\"w\": %lld, \"c_out\": %lld, \"threads\": %d, \"median_ms\": %.3f, \"gflops\": %.1f}\n",
                  k::conv2d_uses_winograd(s) ? "winograd" : "direct", (long long)s.n, (long long)s.c_in,
                  (long long)s.h, (long long)s.w, (long long)s.c_out, omp_get_max_threads(), ms,
                  flops / (ms * 1e6));
    }
  normnet::set_conv_algorithm(normnet::ConvAlgorithm::kFast);
  const int64_t n = 1024;
  const auto a = values(static_cast<size_t>(n * n), 3), b = values(static_cast<size_t>(n * n), 4);
  std::vector<float> c(static_cast<size_t>(n * n));
  const double ms = median_ms([&] { k::gemm(false, false, n, n, n, a.data(), n, b.data(), n, 0.0f, c.data(), n); },
                              std::max(1, reps / 3));
  std::printf("{\"op\": \"gemm\", \"m\": %lld, \"n\": %lld, \"k\": %lld, \"threads\": 1, \"median_ms\": %.3f, "
              "\"gflops\": %.1f}\n",
              (long long)n, (long long)n, (long long)n, ms, 2.0 * n * n * n / (ms * 1e6));
  std::printf("{\"op\": \"fma_peak\", \"threads\": %d, \"gflops\": %.1f}\n", omp_get_max_threads(),
              fma_peak_gflops());
  return 0;
}
