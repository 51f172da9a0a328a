// normnet eval CKPT: test loss, accuracy, per-class accuracy and the confusion matrix.
#include <cstdio>

#include "common.h"
#include "normnet/checkpoint.h"
#include "normnet/train.h"

namespace normnet::cli {

Runner add_eval(CLI::App& app) {
  auto* s = app.add_subcommand("eval", "Evaluate a checkpoint on the test split");
  static std::string ckpt, data = kDefaultData;
  static int threads = 0;
  static int64_t batch = 1000;
  s->add_option("checkpoint", ckpt, "Checkpoint (.safetensors) written by normnet train")->required();
  s->add_option("--data", data, "MNIST-format or CIFAR-10 binary directory");
  s->add_option("--batch-size", batch, "Images per evaluation batch (does not change results)");
  s->add_option("--threads", threads, "Threads (0: all cores)");
  return [] {
    set_threads(threads);
    LoadedCheckpoint c = load_checkpoint(ckpt);
    Dataset test = load_for_model(data, false, -1, c.model, c.norm);
    const EvalResult r = evaluate(c.model, test, batch);
    std::printf("model: %s\ntest images: %lld\ntest loss: %.6f\ntest accuracy: %.4f (%lld/%lld)\n",
                c.model.name.c_str(), (long long)r.total, r.loss, r.accuracy, (long long)r.correct,
                (long long)r.total);
    const int64_t K = c.model.classes;
    std::printf("per-class accuracy:\n");
    for (int64_t k = 0; k < K; ++k) std::printf("  class %2lld: %.4f\n", (long long)k, r.per_class_accuracy[k]);
    std::printf("confusion matrix (rows: true class, columns: predicted):\n      ");
    for (int64_t j = 0; j < K; ++j) std::printf("%6lld", (long long)j);
    std::printf("\n");
    for (int64_t i = 0; i < K; ++i) {
      std::printf("%6lld", (long long)i);
      for (int64_t j = 0; j < K; ++j) std::printf("%6lld", (long long)r.confusion[i * K + j]);
      std::printf("\n");
    }
    return 0;
  };
}

}  // namespace normnet::cli
