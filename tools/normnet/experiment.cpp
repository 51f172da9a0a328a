// normnet experiment NAME: runs a study of src/experiment/ (or all of them, in sequence) and
// writes its CSV files and HTML report to --out (docs/experiments.md).
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "common.h"
#include "experiment/studies.h"
#include "normnet/error.h"

namespace normnet::cli {

namespace {

struct ExperimentArgs {
  std::string name, out, data = kDefaultData;
  bool quick = false;
  int64_t seeds = -1, epochs = -1, limit = -1, test_limit = -1;  // -1: the study's own
  int threads = 0;
};

std::string help_text() {
  std::string t =
      "Run a study of what the tutorials claim about BatchNorm on Fashion-MNIST and write "
      "curves.csv (+ tables.csv, charts.csv, studies.csv, distributions.csv), report.html and "
      "charts/*.png to --out (docs/experiments.md). Studies (full-run times measured on the "
      "development machine, 2 cores shared, --threads 1, another study running beside it; --quick: "
      "5 to 20 s each):";
  auto settings = [](const experiment::StudySettings& f) {
    std::string t = std::to_string(f.seeds) + " seeds x " + std::to_string(f.epochs) + " epoch" +
                    (f.epochs == 1 ? "" : "s") + " on " + std::to_string(f.limit) + " training / " +
                    std::to_string(f.test_limit) + " test images";
    if (!f.sweep.empty()) {
      t += "; sweep";
      for (double v : f.sweep) t += " " + experiment::number_text(v);
    }
    return t;
  };
  for (const experiment::Study& s : experiment::all_studies())
    t += "\n  " + s.name + ": " + s.title + ". Full: " + settings(s.full) + "; " + s.budget +
         ". --quick: " + settings(s.quick) + ".";
  t += "\n  all: every study in sequence into one directory.";
  return t;
}

}  // namespace

Runner add_experiment(CLI::App& app) {
  static ExperimentArgs a;
  auto* s = app.add_subcommand("experiment", help_text());
  s->add_option("NAME", a.name, "Study: bn-vs-none, learning-rate, batch-size, placement, activation, "
                                "covariate-shift, train-vs-eval or all")->required();
  s->add_option("--out", a.out, "Output directory (default experiments/NAME)");
  s->add_flag("--quick", a.quick, "The reduced version: a subset, fewer epochs, seeds and sweep points");
  s->add_option("--seeds", a.seeds, "Seeds 1..N (default: the study's)");
  s->add_option("--epochs", a.epochs, "Epochs per run (default: the study's)");
  s->add_option("--limit", a.limit, "Training images (default: the study's)");
  s->add_option("--test-limit", a.test_limit, "Test images (default: the study's)");
  s->add_option("--data", a.data, "Fashion-MNIST (IDX) directory");
  s->add_option("--threads", a.threads, "Threads (0: all cores)");
  return [] {
    namespace fs = std::filesystem;
    using namespace normnet::experiment;
    // Everything is checked before anything runs or is written.
    std::vector<const Study*> studies;
    if (a.name == "all")
      for (const Study& st : all_studies()) studies.push_back(&st);
    else
      studies.push_back(&find_study(a.name));
    check(a.seeds == -1 || (a.seeds >= 1 && a.seeds <= 100), "--seeds must be in [1, 100], got ", a.seeds);
    check(a.epochs == -1 || (a.epochs >= 1 && a.epochs <= 1000), "--epochs must be in [1, 1000], got ", a.epochs);
    check(a.limit == -1 || a.limit >= 1, "--limit must be a positive number of training images, got ", a.limit);
    check(a.test_limit == -1 || a.test_limit >= 1, "--test-limit must be a positive number of test images, got ",
          a.test_limit);
    set_threads(a.threads);
    check(fs::is_directory(a.data), "--data ", a.data, ": no such directory");
    const std::string out = a.out.empty() ? "experiments/" + a.name : a.out;
    check(!fs::exists(out) || fs::is_directory(out), "--out ", out, " exists and is not a directory");
    ExperimentOutput all;
    for (const Study* st : studies) {
      StudyContext ctx;
      ctx.data = a.data;
      ctx.quick = a.quick;
      ctx.settings = a.quick ? st->quick : st->full;
      if (a.seeds > 0) ctx.settings.seeds = a.seeds;
      if (a.epochs > 0) ctx.settings.epochs = a.epochs;
      if (a.limit > 0) ctx.settings.limit = a.limit;
      if (a.test_limit > 0) ctx.settings.test_limit = a.test_limit;
      const auto t0 = std::chrono::steady_clock::now();
      auto seconds = [t0] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
      ctx.log = [&](const std::string& line) {
        std::fprintf(stderr, "[%s %6.1f s] %s\n", st->name.c_str(), seconds(), line.c_str());
      };
      all.studies.push_back({st->name, st->title, st->claim});
      st->run(ctx, all);
      // After every study: the files hold every study so far, so a long `all` keeps its results.
      const std::string path = write_experiment(all, out);
      std::printf("normnet experiment: %s done in %.1f s; report written to %s\n", st->name.c_str(), seconds(),
                  path.c_str());
      std::fflush(stdout);
    }
    return 0;
  };
}

}  // namespace normnet::cli
