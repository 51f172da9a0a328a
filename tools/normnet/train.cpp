// normnet train: trains a model on an MNIST-format directory, writes checkpoints and metrics.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common.h"
#include "normnet/checkpoint.h"
#include "normnet/error.h"
#include "normnet/fileio.h"
#include "normnet/train.h"

namespace normnet::cli {

namespace {

struct Args {
  std::string model = "seed001", data = kDefaultData, out, init, schedule = "constant";
  std::string optimizer = "sgd", augment = "none";
  ModelTransform transform;  // --activation, --norm, --bn-position
  int64_t epochs = 3, batch_size = 128, limit = -1, warmup_steps = 0, step_size = 1;
  double lr = 0.02, momentum = 0.9, weight_decay = 0.0, gamma = 0.1, label_smoothing = 0.0;
  uint64_t seed = 1;
  int threads = 0;
  bool no_shuffle = false, nesterov = false, no_decay_norm = false, quiet = false, model_given = false;
};

std::string fmt_time(double s) {
  const long t = std::lround(std::max(0.0, s));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
  return buf;
}

void progress(const StepInfo& s, int64_t epochs, bool tty) {
  const double frac = static_cast<double>(s.step_in_epoch) / s.steps_per_epoch;
  const double eta = s.seconds / frac - s.seconds;
  if (tty) {
    const int width = 24, filled = static_cast<int>(frac * width);
    std::string bar(filled, '=');
    if (filled < width) bar += '>' + std::string(width - filled - 1, ' ');
    std::fprintf(stderr, "\repoch %lld/%lld [%s] %lld/%lld loss %.4f acc %.4f %6.0f img/s ETA %s ",
                 (long long)s.epoch, (long long)epochs, bar.c_str(), (long long)s.step_in_epoch,
                 (long long)s.steps_per_epoch, s.loss, s.accuracy, s.images_per_second,
                 fmt_time(eta).c_str());
    if (s.step_in_epoch == s.steps_per_epoch) std::fprintf(stderr, "\n");
    return;
  }
  // Plain lines: about five per epoch.
  const int64_t every = std::max<int64_t>(1, s.steps_per_epoch / 5);
  if (s.step_in_epoch % every == 0 || s.step_in_epoch == s.steps_per_epoch)
    std::fprintf(stderr, "epoch %lld/%lld step %lld/%lld loss %.4f acc %.4f %.0f img/s ETA %s\n",
                 (long long)s.epoch, (long long)epochs, (long long)s.step_in_epoch,
                 (long long)s.steps_per_epoch, s.loss, s.accuracy, s.images_per_second,
                 fmt_time(eta).c_str());
}

// The model file with --activation / --norm / --bn-position applied to its description before
// it is built: the transformed description is the model's spec, so checkpoints store it.
Model load_transformed(const std::string& name_or_path, const ModelTransform& t) {
  if (t.empty()) return load_model(name_or_path);
  const std::string path = find_model_file(name_or_path);
  const auto bytes = read_file(path);
  Model m = build_model(transform_model(std::string(bytes.begin(), bytes.end()), t, path), path);
  if (m.name == "model") m.name = std::filesystem::path(path).stem().string() + t.suffix();
  return m;
}

int run(const Args& a) {
  set_threads(a.threads);
  check(a.epochs >= 1, "--epochs must be at least 1, got ", a.epochs);
  check(a.batch_size >= 1, "--batch-size must be at least 1, got ", a.batch_size);
  check(a.limit == -1 || a.limit >= 1, "--limit must be a positive number of images, got ", a.limit);
  check(std::isfinite(a.lr) && a.lr > 0, "--lr must be positive, got ", a.lr);

  // The model: from --init's checkpoint (weights and normalization too) or the zoo/file.
  Model m;
  Normalization norm;
  bool have_norm = false;
  if (!a.init.empty()) {
    LoadedCheckpoint c = load_checkpoint(a.init);
    check(a.model_given || a.transform.empty(),
          "--activation, --norm and --bn-position rewrite the model given by --model: with --init, "
          "give --model too");
    if (a.model_given) {  // this architecture, with the checkpoint's weights (names and shapes must match)
      m = load_transformed(a.model, a.transform);
      load_state_dict(m, state_dict(c.model), a.init);
    } else {
      m = std::move(c.model);
    }
    norm = c.norm;
    have_norm = true;
  } else {
    m = load_transformed(a.model, a.transform);
    m.init_parameters(a.seed);
  }

  Dataset train_set = load_split(a.data, true, a.limit, m.classes);  // MNIST/IDX or CIFAR-10 binary
  Dataset test_set = load_split(a.data, false, -1, m.classes);
  for (Dataset* d : {&train_set, &test_set}) {
    const Shape want = m.batch_shape(d->size());
    check(d->images.shape() == want, a.data, ": images are ", d->images.shape().str(), " but model '",
          m.name, "' takes ", want.str());
  }
  if (!have_norm) norm = compute_normalization(train_set.images);
  normalize_inplace(train_set.images, norm);
  normalize_inplace(test_set.images, norm);

  TrainConfig cfg;
  cfg.epochs = a.epochs;
  cfg.batch_size = a.batch_size;
  cfg.seed = a.seed;
  cfg.shuffle = !a.no_shuffle;
  cfg.augment = a.augment;
  cfg.label_smoothing = a.label_smoothing;
  cfg.optimizer.kind = a.optimizer;
  cfg.optimizer.lr = a.lr;
  cfg.optimizer.momentum = a.optimizer == "sgd" ? a.momentum : 0.0;
  cfg.optimizer.nesterov = a.nesterov;
  cfg.optimizer.weight_decay = a.weight_decay;
  cfg.optimizer.decay_norm_and_bias = !a.no_decay_norm;
  cfg.schedule.kind = a.schedule;
  cfg.schedule.warmup_steps = a.warmup_steps;
  cfg.schedule.step_size = a.step_size;
  cfg.schedule.gamma = a.gamma;
  scheduled_lr(cfg.schedule, 1.0, 0, 1, 1);  // rejects an unknown schedule before any work

  const std::string out = a.out.empty() ? "runs/" + m.name : a.out;
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  check(!ec && std::filesystem::is_directory(out), "--out: cannot create directory '", out, "': ",
        ec.message());
  const std::string ckpt = out + "/model.safetensors";

  std::printf("normnet train: model %s (%lld parameters), %lld training / %lld test images, "
              "%s lr %g, batch %lld, %lld epochs, seed %llu\n",
              m.name.c_str(), (long long)m.net->parameter_count(), (long long)train_set.size(),
              (long long)test_set.size(), a.optimizer.c_str(), a.lr, (long long)a.batch_size,
              (long long)a.epochs, (unsigned long long)a.seed);
  std::fflush(stdout);

  const bool tty = stderr_is_terminal() && !a.quiet;
  std::string csv = "epoch,train_loss,train_accuracy,test_loss,test_accuracy,seconds,images_per_second,lr\n";
  std::string jsonl;
  int64_t step = 0;
  TrainCallbacks cb;
  if (!a.quiet) cb.on_step = [&](const StepInfo& s) { progress(s, a.epochs, tty); };
  cb.on_epoch = [&](const EpochMetrics& e, Optimizer& opt, const Rng& rng) {
    step += (train_set.size() + a.batch_size - 1) / a.batch_size;
    char line[512];
    std::snprintf(line, sizeof line, "%lld,%.6f,%.6f,%.6f,%.6f,%.3f,%.1f,%.6g\n", (long long)e.epoch,
                  e.train_loss, e.train_accuracy, e.test_loss, e.test_accuracy, e.seconds,
                  e.images_per_second, e.lr);
    csv += line;
    jsonl += nlohmann::json{{"epoch", e.epoch}, {"train_loss", e.train_loss},
                            {"train_accuracy", e.train_accuracy}, {"test_loss", e.test_loss},
                            {"test_accuracy", e.test_accuracy}, {"seconds", e.seconds},
                            {"images_per_second", e.images_per_second}, {"lr", e.lr}}.dump() + "\n";
    save_checkpoint(ckpt, m, norm, {{"normnet.epoch", std::to_string(e.epoch)}});
    save_train_state(out + "/train-state.safetensors", opt, {e.epoch, step, rng.state()});
    write_file_atomic(out + "/metrics.csv", csv);
    write_file_atomic(out + "/metrics.jsonl", jsonl);
    std::printf("epoch %lld: train loss %.4f acc %.4f | test loss %.4f acc %.4f | %.1f s, %.0f img/s\n",
                (long long)e.epoch, e.train_loss, e.train_accuracy, e.test_loss, e.test_accuracy,
                e.seconds, e.images_per_second);
    std::fflush(stdout);
  };
  const auto history = train(m, train_set, test_set, cfg, cb);
  std::printf("test accuracy: %.4f\ncheckpoint: %s\n", history.back().test_accuracy, ckpt.c_str());
  return 0;
}

}  // namespace

Runner add_train(CLI::App& app) {
  auto* s = app.add_subcommand("train", "Train a model on Fashion-MNIST (or any MNIST-format directory)");
  static Args a;
  auto* model_opt = s->add_option("--model", a.model, "Zoo model name or model .json file");
  s->add_option("--data", a.data, "Directory with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] or CIFAR-10 data_batch_{1..5}.bin, test_batch.bin");
  s->add_option("--epochs", a.epochs, "Number of epochs");
  s->add_option("--batch-size", a.batch_size, "Images per batch");
  s->add_option("--optimizer", a.optimizer, "sgd | adam | adamw")->check(CLI::IsMember({"sgd", "adam", "adamw"}));
  s->add_option("--lr", a.lr, "Learning rate (peak rate for onecycle)");
  s->add_option("--momentum", a.momentum, "SGD momentum");
  s->add_flag("--nesterov", a.nesterov, "Nesterov momentum (SGD)");
  s->add_option("--weight-decay", a.weight_decay, "Weight decay (L2 for sgd/adam, decoupled for adamw)");
  s->add_flag("--no-decay-norm", a.no_decay_norm, "Exclude BN parameters and biases from weight decay");
  s->add_option("--schedule", a.schedule, "constant | step | cosine | onecycle")
      ->check(CLI::IsMember({"constant", "step", "cosine", "onecycle"}));
  s->add_option("--warmup-steps", a.warmup_steps, "Linear learning-rate warm-up steps");
  s->add_option("--step-size", a.step_size, "step schedule: epochs between decays");
  s->add_option("--gamma", a.gamma, "step schedule: decay factor");
  s->add_option("--label-smoothing", a.label_smoothing, "Cross-entropy label smoothing");
  s->add_option("--seed", a.seed, "Seed for initialization, data order and augmentation");
  s->add_option("--threads", a.threads, "Threads (0: all cores)");
  s->add_option("--augment", a.augment, "none | crop-flip")->check(CLI::IsMember({"none", "crop-flip"}));
  s->add_option("--activation", a.transform.activation,
                "Replace every ReLU/ELU of the model (Residual activations too) by: relu | elu")
      ->check(CLI::IsMember({"relu", "elu"}));
  s->add_option("--norm", a.transform.norm,
                "Replace every BatchNorm by: bn (keep) | gn:G (GroupNorm, G groups) | ln (GroupNorm(1, C)) | "
                "in (InstanceNorm, affine) | brn (BatchRenorm) | ghost:V (GhostBatchNorm, virtual batch V) | "
                "none (remove)");
  s->add_option("--bn-position", a.transform.bn_position,
                "before: BatchNorm then activation (the BN paper); after: activation then BatchNorm")
      ->check(CLI::IsMember({"before", "after"}));
  s->add_option("--init", a.init,
                "Start from this checkpoint's weights and normalization (and its model unless --model is given)");
  s->add_option("--limit", a.limit, "Use only the first N training images (-1: all)");
  s->add_flag("--no-shuffle", a.no_shuffle, "Keep the file order of the training images");
  s->add_option("--out", a.out, "Output directory (default: runs/MODEL)");
  s->add_flag("--quiet", a.quiet, "No progress display, only per-epoch lines");
  return [model_opt] {
    a.model_given = model_opt->count() > 0;
    return run(a);
  };
}

}  // namespace normnet::cli
