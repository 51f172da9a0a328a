// normnet recalibrate CKPT: re-estimates the running statistics of every BatchNorm-like layer
// over the training data (torch.optim.swa_utils.update_bn), reports the test accuracy before and
// after, and writes the recalibrated checkpoint atomically. See docs/normalization.md.
#include <cstdio>

#include "common.h"
#include "normnet/checkpoint.h"
#include "normnet/error.h"
#include "normnet/train.h"

namespace normnet::cli {

namespace {

// run/model.safetensors -> run/model.recal.safetensors; other names get the suffix appended.
std::string default_output(const std::string& ckpt) {
  const std::string ext = ".safetensors";
  if (ckpt.size() > ext.size() && ckpt.compare(ckpt.size() - ext.size(), ext.size(), ext) == 0)
    return ckpt.substr(0, ckpt.size() - ext.size()) + ".recal" + ext;
  return ckpt + ".recal" + ext;
}

void print_accuracy(const char* when, const EvalResult& r) {
  std::printf("test accuracy %s: %.4f (%lld/%lld), test loss %.6f\n", when, r.accuracy,
              (long long)r.correct, (long long)r.total, r.loss);
}

}  // namespace

Runner add_recalibrate(CLI::App& app) {
  auto* s = app.add_subcommand(
      "recalibrate",
      "Recompute BatchNorm running statistics over the training data (as torch's update_bn)");
  static std::string ckpt, out, data = kDefaultData;
  static int64_t batch = 128, limit = -1;
  static int threads = 0;
  s->add_option("checkpoint", ckpt, "Checkpoint (.safetensors) written by normnet train")->required();
  s->add_option("-o,--out", out, "Output checkpoint (default: CHECKPOINT with a .recal.safetensors suffix)");
  s->add_option("--data", data, "MNIST-format directory (its training split is used)");
  s->add_option("--batch-size", batch, "Images per forward pass while recalibrating");
  s->add_option("--limit", limit, "Use only the first N training images (-1: all)");
  s->add_option("--threads", threads, "Threads (0: all cores)");
  return [] {
    set_threads(threads);
    check(batch >= 1, "--batch-size must be at least 1, got ", batch);
    check(limit == -1 || limit >= 1, "--limit must be a positive number of images, got ", limit);
    const std::string dest = out.empty() ? default_output(ckpt) : out;
    check_output_file(dest, "-o");
    LoadedCheckpoint c = load_checkpoint(ckpt);
    const int64_t layers = count_recalibratable_layers(c.model);
    check(layers > 0, ckpt, ": model '", c.model.name,
          "' has no BatchNorm-like layer with running statistics to recalibrate");
    Dataset train_set = load_for_model(data, true, limit, c.model, c.norm);
    Dataset test_set = load_for_model(data, false, -1, c.model, c.norm);
    std::printf("normnet recalibrate: model %s, %lld layers, %lld training images, batch %lld\n",
                c.model.name.c_str(), (long long)layers, (long long)train_set.size(), (long long)batch);
    print_accuracy("before", evaluate(c.model, test_set));
    std::fflush(stdout);
    const RecalibrateResult r = recalibrate_batchnorm(c.model, train_set, batch);
    print_accuracy("after", evaluate(c.model, test_set));
    std::map<std::string, std::string> meta;
    for (const auto& [k, v] : c.metadata)
      if (k != "normnet.format" && k != "normnet.model" && k != "normnet.normalization") meta[k] = v;
    meta["normnet.recalibrated"] = std::to_string(r.images) + " training images, " +
                                   std::to_string(r.batches) + " batches";
    save_checkpoint(dest, c.model, c.norm, meta);
    std::printf("wrote %s\n", dest.c_str());
    return 0;
  };
}

}  // namespace normnet::cli
