// normnet predict CKPT INPUT...: class and probabilities for PNG images or IDX image files;
// --logits FILE writes the raw outputs of all inputs (safetensors "logits" (N, K), or CSV).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common.h"
#include "normnet/checkpoint.h"
#include "normnet/error.h"
#include "normnet/fileio.h"
#include "normnet/image.h"
#include "normnet/safetensors.h"

namespace normnet::cli {

Runner add_predict(CLI::App& app) {
  auto* s = app.add_subcommand("predict", "Classify PNG images or IDX image files with a checkpoint");
  static std::string ckpt, logits_path;
  static std::vector<std::string> inputs;
  static int threads = 0;
  s->add_option("checkpoint", ckpt, "Checkpoint (.safetensors)")->required();
  s->add_option("inputs", inputs, "PNG files (model input size) or IDX image files")->required();
  s->add_option("--logits", logits_path, "Write raw outputs to FILE (.safetensors or .csv)");
  s->add_option("--threads", threads, "Threads (0: all cores)");
  return [] {
    set_threads(threads);
    if (!logits_path.empty())
      check(logits_path.ends_with(".safetensors") || logits_path.ends_with(".csv"), "--logits: '",
            logits_path, "' must end in .safetensors or .csv");
    LoadedCheckpoint c = load_checkpoint(ckpt);
    Model& m = c.model;
    check(m.input.size() == 3, "predict: the model's input ", m.batch_shape(1).str(), " is not an image");
    const int64_t C = m.input[0], H = m.input[1], W = m.input[2], chw = C * H * W;
    // Read every input first: a bad file stops the command before anything is written.
    std::vector<std::pair<std::string, Tensor>> items;
    for (const auto& path : inputs) {
      const auto head = read_file(path);
      const bool png = head.size() >= 8 && head[0] == 0x89 && head[1] == 'P' && head[2] == 'N' && head[3] == 'G';
      if (png) {
        items.emplace_back(path, read_png(path, C, H, W));
        continue;
      }
      Tensor imgs = idx_to_images(read_idx(path), path);  // (N, 1, h, w)
      check(imgs.dim(1) * imgs.dim(2) * imgs.dim(3) == chw && imgs.dim(2) == H && imgs.dim(3) == W, path,
            ": IDX images are ", imgs.dim(2), "x", imgs.dim(3), " but the model takes ", H, "x", W);
      for (int64_t i = 0; i < imgs.dim(0); ++i)
        items.emplace_back(path + "[" + std::to_string(i) + "]", imgs.slice(i, i + 1).reshape(Shape{C, H, W}));
    }
    const int64_t N = static_cast<int64_t>(items.size());
    Tensor x(m.batch_shape(N));
    for (int64_t i = 0; i < N; ++i)
      std::copy(items[i].second.data(), items[i].second.data() + chw, x.data() + i * chw);
    normalize_inplace(x, c.norm);
    m.net->eval();
    const int64_t K = m.classes;
    Tensor logits(Shape{N, K});
    for (int64_t b = 0; b < N; b += 1000) {
      const int64_t e = std::min(N, b + 1000);
      Tensor out = m.net->forward(x.slice(b, e));
      std::copy(out.data(), out.data() + out.numel(), logits.data() + b * K);
    }
    for (int64_t i = 0; i < N; ++i) {
      const float* z = logits.data() + i * K;
      const float zmax = *std::max_element(z, z + K);
      double sum = 0;
      for (int64_t k = 0; k < K; ++k) sum += std::exp(static_cast<double>(z[k] - zmax));
      const int64_t best = std::max_element(z, z + K) - z;
      std::printf("%s: class %lld (p=%.4f) probabilities:", items[i].first.c_str(), (long long)best,
                  std::exp(static_cast<double>(z[best] - zmax)) / sum);
      for (int64_t k = 0; k < K; ++k) std::printf(" %.4f", std::exp(static_cast<double>(z[k] - zmax)) / sum);
      std::printf("\n");
    }
    if (!logits_path.empty()) {
      if (logits_path.ends_with(".csv")) {
        std::string csv;
        char buf[32];
        for (int64_t i = 0; i < N; ++i) {
          for (int64_t k = 0; k < K; ++k) {
            std::snprintf(buf, sizeof buf, "%s%.9g", k ? "," : "", logits.data()[i * K + k]);
            csv += buf;
          }
          csv += "\n";
        }
        write_file_atomic(logits_path, csv);
      } else {
        StFile f;
        f.put_f32("logits", logits);
        write_safetensors(logits_path, f);
      }
      std::printf("logits: %s\n", logits_path.c_str());
    }
    return 0;
  };
}

}  // namespace normnet::cli
