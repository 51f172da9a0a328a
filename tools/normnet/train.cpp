// normnet train: trains a model on an MNIST-format directory, writes checkpoints and metrics;
// --resume DIR continues a run from its last checkpoint exactly (docs/checkpoint-format.md).
// Under mpirun, data parallel over the job's ranks; only rank 0 prints and writes
// (docs/distributed.md).
#include <cmath>
#include <thread>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

#include "common.h"
#include "normnet/conv_algorithm.h"
#include "normnet/checkpoint.h"
#include "normnet/distributed.h"
#include "normnet/error.h"
#include "normnet/fileio.h"
#include "normnet/train.h"
#include "train_report.h"
#ifdef NORMNET_HAVE_MPI
#include "dist/mpi_comm.h"
#endif

namespace normnet::cli {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct Args {
  std::string model = "seed001", data = kDefaultData, out, init, schedule = "constant";
  std::string optimizer = "sgd", augment = "none", resume;
  ModelTransform transform;  // --activation, --norm, --bn-position
  int64_t epochs = 3, batch_size = 128, limit = -1, warmup_steps = 0, step_size = 1;
  int64_t checkpoint_every = 0;
  double lr = 0.02, momentum = 0.9, weight_decay = 0.0, gamma = 0.1, label_smoothing = 0.0;
  double clip_grad_norm = 0.0;
  uint64_t seed = 1;
  int threads = 0;
  bool report = false;  // --report: not a run field, it changes no number
  bool no_shuffle = false, nesterov = false, no_decay_norm = false, quiet = false, model_given = false;
  bool sync_bn = false;
};

// The flags that define a run, stored in its train state ("normnet.train_config", keyed by
// flag) so that --resume DIR alone continues it. --threads, --quiet, --out and --resume are
// not among them: they do not change the numbers.
struct Field {
  const char* flag;
  std::function<json(const Args&)> get;
  std::function<void(Args&, const json&)> set;
};

template <class T>
Field field(const char* flag, T Args::*member) {
  return {flag, [member](const Args& a) { return json(a.*member); },
          [member](Args& a, const json& j) { a.*member = j.get<T>(); }};
}

Field transform_field(const char* flag, std::string ModelTransform::*member) {
  return {flag, [member](const Args& a) { return json(a.transform.*member); },
          [member](Args& a, const json& j) { a.transform.*member = j.get<std::string>(); }};
}

const std::vector<Field>& run_fields() {
  static const std::vector<Field> fields = {
      field("--model", &Args::model),
      field("--data", &Args::data),
      field("--limit", &Args::limit),
      field("--init", &Args::init),
      transform_field("--activation", &ModelTransform::activation),
      transform_field("--norm", &ModelTransform::norm),
      transform_field("--bn-position", &ModelTransform::bn_position),
      field("--epochs", &Args::epochs),
      field("--batch-size", &Args::batch_size),
      field("--optimizer", &Args::optimizer),
      field("--lr", &Args::lr),
      field("--momentum", &Args::momentum),
      field("--nesterov", &Args::nesterov),
      field("--weight-decay", &Args::weight_decay),
      field("--no-decay-norm", &Args::no_decay_norm),
      field("--schedule", &Args::schedule),
      field("--warmup-steps", &Args::warmup_steps),
      field("--step-size", &Args::step_size),
      field("--gamma", &Args::gamma),
      field("--label-smoothing", &Args::label_smoothing),
      field("--seed", &Args::seed),
      field("--augment", &Args::augment),
      field("--no-shuffle", &Args::no_shuffle),
      field("--clip-grad-norm", &Args::clip_grad_norm),
      field("--checkpoint-every", &Args::checkpoint_every),
  };
  return fields;
}

// A 64-bit fingerprint of the training images and labels, so a resumed run can tell that its
// data is the data the run started on (wherever it now lies).
std::string fingerprint(const Dataset& d) {
  uint64_t h = 0x243f6a8885a308d3ULL ^ static_cast<uint64_t>(d.size());
  auto mix = [&h](uint64_t w) {
    h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
    h ^= h >> 29;
  };
  const Tensor x = d.images.contiguous();
  const float* v = x.data();
  for (int64_t i = 0; i < x.numel(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, v + i, sizeof bits);
    mix(bits);
  }
  for (int32_t y : d.labels) mix(static_cast<uint32_t>(y));
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

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

// --resume: the stored flags replace the defaults; flags given again must agree with them,
// except --epochs (a larger count extends the run where the schedule allows), --data (the same
// data elsewhere: its fingerprint is checked), --checkpoint-every, --threads and --quiet.
Args resumed_args(const Args& given_args, const std::set<std::string>& given, const json& stored,
                  const std::string& path) {
  Args a = given_args;
  for (const Field& f : run_fields()) {
    check(stored.contains(f.flag), path, ": 'normnet.train_config' has no '", f.flag, "'");
    try {
      f.set(a, stored.at(f.flag));
    } catch (const json::exception& e) {
      fail(path, ": 'normnet.train_config' entry '", f.flag, "': ", e.what());
    }
  }
  auto show = [](const json& j) { return j.is_string() ? j.get<std::string>() : j.dump(); };
  for (const Field& f : run_fields()) {
    const std::string flag = f.flag;
    if (!given.count(flag)) continue;
    const json want = f.get(given_args), have = f.get(a);
    if (want == have) continue;
    if (flag == "--data" || flag == "--checkpoint-every") {
      f.set(a, want);
      continue;
    }
    if (flag == "--epochs") {
      check(given_args.epochs > a.epochs, "--epochs ", given_args.epochs, ": the run in ", given_args.resume,
            " is set to ", a.epochs, " epochs; with --resume, --epochs can only extend it");
      check(a.schedule != "cosine" && a.schedule != "onecycle", "--epochs ", given_args.epochs,
            ": the run in ", given_args.resume, " uses the ", a.schedule,
            " schedule, whose learning rates depend on the number of epochs, so it cannot be "
            "extended exactly (start a new run with --init ", given_args.resume, "/model.safetensors)");
      a.epochs = given_args.epochs;
      continue;
    }
    fail(flag, " ", show(want), " contradicts the run being resumed, which has ", flag, " ", show(have),
         " (", path, "); leave it out or start a new run");
  }
  a.resume = given_args.resume;
  a.threads = given_args.threads;
  a.quiet = given_args.quiet;
  a.out = given_args.resume;
  return a;
}

// Temporary files that a killed writer left behind (NAME.tmp.PID, fileio.h).
void remove_stale_temporaries(const std::string& dir) {
  static const char* names[] = {"model.safetensors", "train-state.safetensors", "metrics.csv",
                                "metrics.jsonl", "bn_stats.csv", "report.html"};
  std::error_code ec;
  std::vector<fs::path> stale;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string n = entry.path().filename().string();
    for (const char* base : names) {
      const std::string prefix = std::string(base) + ".tmp.";
      if (n.size() > prefix.size() && n.compare(0, prefix.size(), prefix) == 0 &&
          n.find_first_not_of("0123456789", prefix.size()) == std::string::npos)
        stale.push_back(entry.path());
    }
  }
  for (const fs::path& p : stale) fs::remove(p, ec);
}

// Wall-clock columns of an epoch (seconds, images per second): not part of the train state
// (they differ run to run), so a resumed run takes those of earlier epochs from metrics.jsonl.
using WallClock = std::map<int64_t, std::pair<double, double>>;

WallClock read_wall_clock(const std::string& jsonl_path) {
  WallClock w;
  std::error_code ec;
  if (!fs::is_regular_file(jsonl_path, ec)) return w;
  const auto bytes = read_file(jsonl_path);
  std::istringstream in(std::string(bytes.begin(), bytes.end()));
  for (std::string line; std::getline(in, line);) {
    const json j = json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("epoch") && j["epoch"].is_number_integer() &&
        j.contains("seconds") && j["seconds"].is_number() && j.contains("images_per_second") &&
        j["images_per_second"].is_number())
      w[j["epoch"].get<int64_t>()] = {j["seconds"].get<double>(), j["images_per_second"].get<double>()};
  }
  return w;
}

void write_metrics(const std::string& out, const std::vector<EpochMetrics>& history, const WallClock& wall) {
  std::string csv = "epoch,train_loss,train_accuracy,test_loss,test_accuracy,seconds,images_per_second,lr\n";
  std::string jsonl;
  for (const EpochMetrics& e : history) {
    auto it = wall.find(e.epoch);
    char line[512], secs[64] = "", rate[64] = "";
    if (it != wall.end()) {
      std::snprintf(secs, sizeof secs, "%.3f", it->second.first);
      std::snprintf(rate, sizeof rate, "%.1f", it->second.second);
    }
    std::snprintf(line, sizeof line, "%lld,%.6f,%.6f,%.6f,%.6f,%s,%s,%.6g\n", (long long)e.epoch,
                  e.train_loss, e.train_accuracy, e.test_loss, e.test_accuracy, secs, rate, e.lr);
    csv += line;
    json j{{"epoch", e.epoch}, {"train_loss", e.train_loss}, {"train_accuracy", e.train_accuracy},
           {"test_loss", e.test_loss}, {"test_accuracy", e.test_accuracy}};
    j["seconds"] = it != wall.end() ? json(it->second.first) : json(nullptr);
    j["images_per_second"] = it != wall.end() ? json(it->second.second) : json(nullptr);
    j["lr"] = e.lr;
    jsonl += j.dump() + "\n";
  }
  write_file_atomic(out + "/metrics.csv", csv);
  write_file_atomic(out + "/metrics.jsonl", jsonl);
}

// comm: the job's ranks under mpirun (null: this process alone).
int run(const Args& cli_args, const std::set<std::string>& given, Comm* comm) {
  set_threads(cli_args.threads);
  const int ranks = comm ? comm->size() : 1;
  const bool lead = !comm || comm->rank() == 0;  // the rank that prints and writes
  Args a = cli_args;
  std::optional<LoadedTrainState> loaded;
  std::string state_path;
  json stored;
  if (!a.resume.empty()) {
    state_path = a.resume + "/train-state.safetensors";
    std::error_code ec;
    check(fs::is_regular_file(state_path, ec), "--resume: '", a.resume,
          "' holds no train-state.safetensors (no checkpoint to resume from)");
    if (given.count("--out"))
      check(fs::equivalent(a.out, a.resume, ec), "--out '", a.out, "': with --resume the run continues in '",
            a.resume, "'; leave --out out");
    loaded = load_train_state(state_path);
    stored = json::parse(loaded->state.config, nullptr, false);
    check(stored.is_object(), state_path, ": 'normnet.train_config' is not a JSON object");
    a = resumed_args(cli_args, given, stored, state_path);
    // Not among run_fields (runs from before them have neither): one process, plain BatchNorm.
    const int64_t stored_ranks = stored.value("ranks", int64_t{1});
    check(stored_ranks == ranks, "--resume: the run in '", a.resume, "' was trained on ", stored_ranks,
          stored_ranks == 1 ? " process" : " ranks (mpirun -np " + std::to_string(stored_ranks) + ")",
          " and can only continue on as many, for the same shards of every batch; this job has ",
          ranks, ranks == 1 ? " process" : " ranks");
    const bool stored_sync = stored.value("--sync-bn", false);
    check(!given.count("--sync-bn") || stored_sync, "--sync-bn contradicts the run being resumed, "
          "which has plain BatchNorm (", state_path, "); leave it out or start a new run");
    a.sync_bn = stored_sync;
    // The global --conv: the run's algorithm (runs from before the option had only the direct
    // convolution's sums, which --conv exact keeps).
    const json stored_conv = stored.value("--conv", json("exact"));
    check(stored_conv == "fast" || stored_conv == "exact", state_path,
          ": 'normnet.train_config' entry '--conv' is ", stored_conv.dump(), ", not \"fast\" or \"exact\"");
    const std::string run_conv = stored_conv.get<std::string>();
    check(!conv_option().given || conv_option().value == run_conv, "--conv ", conv_option().value,
          " contradicts the run being resumed, which has --conv ", run_conv, " (", state_path,
          "); leave it out or start a new run");
    set_conv_algorithm(run_conv == "exact" ? ConvAlgorithm::kExact : ConvAlgorithm::kFast);
  }
  if (!lead) a.quiet = true;
  check(a.epochs >= 1, "--epochs must be at least 1, got ", a.epochs);
  check(a.batch_size >= 1, "--batch-size must be at least 1, got ", a.batch_size);
  check(a.limit == -1 || a.limit >= 1, "--limit must be a positive number of images, got ", a.limit);
  check(std::isfinite(a.lr) && a.lr > 0, "--lr must be positive, got ", a.lr);
  check(a.clip_grad_norm == 0 || (std::isfinite(a.clip_grad_norm) && a.clip_grad_norm > 0),
        "--clip-grad-norm must be positive (or 0: off), got ", a.clip_grad_norm);
  check(a.checkpoint_every >= 0, "--checkpoint-every must be a non-negative number of steps, got ",
        a.checkpoint_every);

  // The model: from the train state (--resume), --init's checkpoint (weights and normalization
  // too) or the zoo/file.
  Model m;
  Normalization norm;
  bool have_norm = false;
  if (loaded) {
    m = std::move(loaded->model);
    norm = loaded->state.norm;
    have_norm = true;
  } else if (!a.init.empty()) {
    LoadedCheckpoint c = load_checkpoint(a.init);
    check(a.model_given || a.transform.empty(),
          "--activation, --norm and --bn-position rewrite the model given by --model: with --init, "
          "give --model too");
    if (a.model_given) {  // this architecture, with the checkpoint's weights (names and shapes must match)
      m = load_model(a.model, a.transform);
      load_state_dict(m, state_dict(c.model), a.init);
    } else {
      m = std::move(c.model);
    }
    norm = c.norm;
    have_norm = true;
  } else {
    m = load_model(a.model, a.transform);
    m.init_parameters(a.seed);
  }

  Dataset train_set = load_split(a.data, true, a.limit, m.classes);  // MNIST/IDX or CIFAR-10 binary
  Dataset test_set = load_split(a.data, false, -1, m.classes);
  for (Dataset* d : {&train_set, &test_set}) {
    const Shape want = m.batch_shape(d->size());
    check(d->images.shape() == want, a.data, ": images are ", d->images.shape().str(), " but model '",
          m.name, "' takes ", want.str());
  }
  const std::string data_fingerprint = fingerprint(train_set);
  if (loaded) {
    const int64_t n = stored.value("train_images", int64_t{-1});
    const std::string f = stored.value("data_fingerprint", std::string());
    check(n == train_set.size() && f == data_fingerprint, "--resume: the training data in '", a.data,
          "' (", train_set.size(), " images, fingerprint ", data_fingerprint,
          ") is not the data the run in '", a.resume, "' was trained on (", n, " images, fingerprint ",
          f, ")");
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
  cfg.clip_grad_norm = a.clip_grad_norm;
  cfg.checkpoint_every = a.checkpoint_every;
  cfg.comm = ranks > 1 ? comm : nullptr;
  const char* check_env = std::getenv("NORMNET_DIST_CHECK");
  cfg.check_replicas = check_env && std::string(check_env) != "0";
  if (a.sync_bn)
    check(set_sync_batchnorm(*m.net, cfg.comm) > 0, "--sync-bn: model '", m.name,
          "' has no BatchNorm layer to synchronize");
  scheduled_lr(cfg.schedule, 1.0, 0, 1, 1);  // rejects an unknown schedule before any work

  Optimizer opt(m.net->named_parameters(), cfg.optimizer);
  TrainProgress start = initial_progress(cfg);
  if (loaded) {
    restore_optimizer(*loaded, opt);
    start = loaded->state.progress;
    loaded->file = {};  // the moments are in the optimizer now
  }

  json config = json::object();
  for (const Field& f : run_fields()) config[f.flag] = f.get(a);
  config["train_images"] = train_set.size();
  config["data_fingerprint"] = data_fingerprint;
  if (ranks > 1) config["ranks"] = ranks;
  if (a.sync_bn) config["--sync-bn"] = true;
  config["--conv"] = conv_algorithm() == ConvAlgorithm::kExact ? "exact" : "fast";
  const std::string config_text = config.dump();

  const std::string out = loaded ? a.resume : a.out.empty() ? "runs/" + m.name : a.out;
  std::error_code ec;
  if (lead) {
    std::filesystem::create_directories(out, ec);
    check(!ec && std::filesystem::is_directory(out), "--out: cannot create directory '", out, "': ",
          ec.message());
  }
  const std::string ckpt = out + "/model.safetensors";
  const std::string state_file = out + "/train-state.safetensors";
  // --report (a run that reported keeps reporting when resumed): bn_stats.csv, report.html.
  std::optional<TrainReport> reporter;
  if (lead && (a.report || (loaded && run_has_report(out)))) reporter.emplace(out, m);

  if (lead)
    std::printf("normnet train: model %s (%lld parameters), %lld training / %lld test images, "
                "%s lr %g, batch %lld, %lld epochs, seed %llu\n",
                m.name.c_str(), (long long)m.net->parameter_count(), (long long)train_set.size(),
                (long long)test_set.size(), a.optimizer.c_str(), a.lr, (long long)a.batch_size,
                (long long)a.epochs, (unsigned long long)a.seed);
  if (lead && ranks > 1)
    std::printf("data parallel on %d ranks (global batch %lld), %s BatchNorm\n", ranks,
                (long long)a.batch_size, a.sync_bn ? "synchronized" : "per-rank");
  const int64_t steps_per_epoch = (train_set.size() + a.batch_size - 1) / a.batch_size;
  WallClock wall;
  if (loaded && lead) {
    std::printf("resuming %s: %lld epochs and %lld of %lld steps done (step %lld of the run)\n",
                out.c_str(), (long long)start.epoch, (long long)start.step_in_epoch,
                (long long)steps_per_epoch, (long long)start.step);
    // Leftovers of a killed run, and the files that may lag the train state (written after it).
    remove_stale_temporaries(out);
    wall = read_wall_clock(out + "/metrics.jsonl");
    save_checkpoint(ckpt, m, norm,
                    {{"normnet.epoch", std::to_string(start.epoch)}, {"normnet.step", std::to_string(start.step)}});
    write_metrics(out, start.history, wall);
    if (reporter) reporter->resume(start);
  }
  std::fflush(stdout);

  const bool tty = stderr_is_terminal() && !a.quiet;
  size_t metrics_written = start.history.size();
  std::string last_good = loaded ? "epoch " + std::to_string(start.epoch) + ", step " + std::to_string(start.step)
                                 : std::string();
  TrainCallbacks cb;
  // NORMNET_STEP_DELAY_MS: a test hook (docs/testing.md) that sleeps after every step, so that a
  // test can kill a run of a tiny model at a chosen step before the run ends on its own.
  const char* delay_env = std::getenv("NORMNET_STEP_DELAY_MS");
  const int delay_ms = delay_env ? std::max(0, std::atoi(delay_env)) : 0;
  if (!a.quiet || delay_ms > 0)
    cb.on_step = [&, delay_ms](const StepInfo& s) {
      if (!a.quiet) progress(s, a.epochs, tty);
      if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    };
  cb.on_epoch = [&](const EpochMetrics& e, Optimizer&, const Rng&) {
    if (!lead) return;
    wall[e.epoch] = {e.seconds, e.images_per_second};
    std::printf("epoch %lld: train loss %.4f acc %.4f | test loss %.4f acc %.4f | %.1f s, %.0f img/s\n",
                (long long)e.epoch, e.train_loss, e.train_accuracy, e.test_loss, e.test_accuracy,
                e.seconds, e.images_per_second);
    std::fflush(stdout);
  };
  // The train state first: it alone is what --resume reads, so a kill at any point leaves a
  // consistent one (the previous or this). model.safetensors and the metrics follow it.
  cb.on_checkpoint = [&](const TrainProgress& p, Optimizer& o) {
    if (!lead) {  // rank 0 writes it
      last_good = "epoch " + std::to_string(p.epoch) + ", step " + std::to_string(p.step);
      return;
    }
    save_train_state(state_file, m, o, {p, config_text, norm});
    last_good = "epoch " + std::to_string(p.epoch) + ", step " + std::to_string(p.step);
    save_checkpoint(ckpt, m, norm,
                    {{"normnet.epoch", std::to_string(p.epoch)}, {"normnet.step", std::to_string(p.step)}});
    if (p.history.size() != metrics_written) {
      write_metrics(out, p.history, wall);
      metrics_written = p.history.size();
      if (reporter) reporter->epoch_done(p.epoch);
    }
  };
  std::vector<EpochMetrics> history;
  try {
    history = train(m, train_set, test_set, cfg, cb, opt, start);
  } catch (const Error& e) {
    if (last_good.empty()) fail(e.what(), "; no checkpoint was written");
    fail(e.what(), "; the last checkpoint (", last_good, ") in '", out, "' is kept");
  }
  if (!lead) return 0;
  if (loaded && start.epoch == a.epochs)
    std::printf("the run had finished its %lld epochs (give --epochs to extend it)\n", (long long)a.epochs);
  std::printf("test accuracy: %.4f\ncheckpoint: %s\n", history.back().test_accuracy, ckpt.c_str());
  return 0;
}

// Under mpirun (launched_by_mpirun), MPI's world; an error on any rank then ends the whole
// job through MPI_Abort, so no rank waits forever for one that has stopped.
int run_train(const Args& a, const std::set<std::string>& given) {
  if (!launched_by_mpirun()) return run(a, given, nullptr);
#ifdef NORMNET_HAVE_MPI
  std::unique_ptr<Comm> comm = start_mpi();
  if (comm->size() == 1) return run(a, given, nullptr);
  try {
    return run(a, given, comm.get());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "normnet: error: rank %d of %d: %s\n", comm->rank(), comm->size(), e.what());
    std::fflush(stderr);
    std::fflush(stdout);
    comm->abort(1);
  }
  return 1;
#else
  fail("started by mpirun, but this normnet was built without MPI (install libopenmpi-dev, "
       "scripts/setup, and rebuild; docs/distributed.md)");
#endif
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
  s->add_option("--clip-grad-norm", a.clip_grad_norm,
                "Scale the gradients to this total 2-norm when it is larger, before each update, as "
                "torch.nn.utils.clip_grad_norm_ (0: off)");
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
  s->add_option("--checkpoint-every", a.checkpoint_every,
                "Also write a checkpoint every N steps (0: only after each epoch)");
  s->add_option("--resume", a.resume,
                "Continue the run in this output directory from its last checkpoint, exactly as if "
                "it had not stopped; its settings are stored there (flags given again must agree; "
                "--epochs may extend a constant or step schedule)");
  s->add_flag("--quiet", a.quiet, "No progress display, only per-epoch lines");
  s->add_flag("--report", a.report,
              "After every epoch write OUT/bn_stats.csv (BatchNorm statistics) and the HTML report "
              "OUT/report.html with PNG charts in OUT/charts (docs/report-format.md)");
  s->add_flag("--sync-bn", a.sync_bn,
              "Under mpirun: BatchNorm statistics over the whole global batch of all ranks "
              "(SyncBatchNorm) instead of each rank's part (docs/distributed.md)");
  return [s, model_opt] {
    a.model_given = model_opt->count() > 0;
    std::set<std::string> given;
    for (const CLI::Option* o : s->get_options())
      if (o->count() > 0) given.insert(o->get_name());
    return run_train(a, given);
  };
}

}  // namespace normnet::cli
