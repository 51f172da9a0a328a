// layer_bench: where a training step's time goes, layer by layer.
//
//   build/layer_bench [--model NAME|FILE] [--batch N] [--reps R] [--eval [--fold]] [--conv fast|exact]
//
// Builds the model (zoo name or JSON file), feeds a deterministic random batch, and times each
// top-level layer's forward and backward (training mode; --eval: forward in eval mode only),
// median over R repetitions after one warm-up. --fold (with --eval) times the model with every
// foldable BatchNorm folded into the convolution before it (normnet fold). --conv exact: the
// direct convolution for every layer (normnet/conv_algorithm.h). Threads: OMP_NUM_THREADS. Prints one JSON
// object per layer and one for the whole step:
//   {"layer":..., "kind":..., "forward_ms":..., "backward_ms":..., "gflops":...}
// "gflops" is given for Conv2d and Linear (2 * multiply-adds of forward + both backward
// products, over the layer's forward + backward time).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "normnet/conv_algorithm.h"
#include "normnet/fold.h"
#include "normnet/layers.h"
#include "normnet/model.h"

using namespace normnet;

namespace {

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// Multiply-adds of one forward pass of a Conv2d/Conv1d/Linear layer on input shape `in`.
double macs(Module& m, const Shape& in, const Shape& out) {
  const std::string k = m.kind();
  if (k != "Conv2d" && k != "Conv1d" && k != "Linear") return 0.0;
  const auto params = m.own_parameters();
  if (params.empty()) return 0.0;
  const Shape& w = params[0]->value.shape();  // OIHW / OIL / (out, in)
  double per_out = 1.0;
  for (int i = 1; i < w.rank; ++i) per_out *= static_cast<double>(w.dims[i]);
  return per_out * static_cast<double>(out.numel());
  (void)in;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = "seed001";
  int64_t batch = 128;
  int reps = 10;
  bool eval = false, fold = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "layer_bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--model") model = next();
    else if (a == "--batch") batch = std::atoll(next().c_str());
    else if (a == "--reps") reps = std::atoi(next().c_str());
    else if (a == "--eval") eval = true;
    else if (a == "--fold") fold = eval = true;
    else if (a == "--conv") {
      const std::string v = next();
      if (v != "fast" && v != "exact") {
        std::fprintf(stderr, "layer_bench: --conv is fast or exact, got '%s'\n", v.c_str());
        return 2;
      }
      set_conv_algorithm(v == "exact" ? ConvAlgorithm::kExact : ConvAlgorithm::kFast);
    } else {
      std::fprintf(stderr, "usage: layer_bench [--model NAME|FILE] [--batch N] [--reps R] [--eval [--fold]] [--conv fast|exact]\n");
      return 2;
    }
  }
  if (batch < 1 || reps < 1) {
    std::fprintf(stderr, "layer_bench: --batch and --reps must be positive\n");
    return 2;
  }
  try {
    Model m = load_model(model);
    m.init_parameters(1);
    if (fold) m = fold_batchnorm(m);
    if (eval) m.net->eval();
    else m.net->train();
    set_input_is_data(*m.net);  // as the trainer: no gradient for the images
    Tensor x(m.batch_shape(batch));
    for (int64_t i = 0; i < x.numel(); ++i)
      x.data()[i] = static_cast<float>((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    Sequential& seq = *m.net;
    const size_t L = seq.size();
    std::vector<std::vector<double>> fwd(L), bwd(L);
    std::vector<double> step;
    std::vector<Shape> shapes(L + 1);
    for (int r = 0; r <= reps; ++r) {
      std::vector<Tensor> acts(L + 1);
      acts[0] = x;
      const double t0 = now_ms();
      for (size_t l = 0; l < L; ++l) {
        const double a = now_ms();
        acts[l + 1] = seq.at(l).forward(acts[l]);
        if (r > 0) fwd[l].push_back(now_ms() - a);
      }
      if (!eval) {
        Tensor dy = Tensor::full(acts[L].shape(), 1.0f / static_cast<float>(acts[L].numel()));
        for (size_t l = L; l-- > 0;) {
          const double a = now_ms();
          dy = seq.at(l).backward(dy);
          if (r > 0) bwd[l].push_back(now_ms() - a);
        }
        m.net->zero_grad();
      }
      if (r > 0) step.push_back(now_ms() - t0);
      for (size_t l = 0; l <= L; ++l) shapes[l] = acts[l].shape();
    }
    auto names = seq.children();
    double total_f = 0, total_b = 0;
    for (size_t l = 0; l < L; ++l) {
      const double f = median(fwd[l]), b = eval ? 0.0 : median(bwd[l]);
      total_f += f;
      total_b += b;
      const double flops = 2.0 * macs(seq.at(l), shapes[l], shapes[l + 1]) * (eval ? 1.0 : 3.0);
      std::printf("{\"layer\": \"%s\", \"kind\": \"%s\", \"out\": \"%s\", \"forward_ms\": %.3f, "
                  "\"backward_ms\": %.3f, \"gflops\": %.1f}\n",
                  names[l].first.c_str(), seq.at(l).kind().c_str(), shapes[l + 1].str().c_str(), f, b,
                  flops > 0 ? flops / ((f + b) * 1e6) : 0.0);
    }
    const double s = median(step);
    std::printf("{\"layer\": \"(step)\", \"model\": \"%s\", \"batch\": %lld, \"threads\": %d, "
                "\"forward_ms\": %.3f, \"backward_ms\": %.3f, \"step_ms\": %.3f, \"images_per_s\": %.0f}\n",
                m.name.c_str(), (long long)batch, omp_get_max_threads(), total_f, total_b, s,
                batch / (s / 1000.0));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "layer_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
