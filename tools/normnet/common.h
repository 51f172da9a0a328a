// Shared pieces of the subcommands.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "normnet/data.h"
#include "normnet/model.h"

namespace normnet::cli {

inline const char* kDefaultData = "/usr/share/datasets/fashion-mnist";

// Each subcommand registers itself on the app and returns the function that runs it.
using Runner = std::function<int()>;
Runner add_train(CLI::App& app);
Runner add_eval(CLI::App& app);
Runner add_predict(CLI::App& app);
Runner add_models(CLI::App& app);
Runner add_summary(CLI::App& app);
Runner add_fold(CLI::App& app);
Runner add_recalibrate(CLI::App& app);
Runner add_export(CLI::App& app);
Runner add_import(CLI::App& app);
Runner add_report(CLI::App& app);
Runner add_experiment(CLI::App& app);

// Loads a split, checks it fits the model, normalizes it.
Dataset load_for_model(const std::string& dir, bool train, int64_t limit, const Model& m,
                       const Normalization& norm);
// Checks, before any slow work, that a file can be written at `path`: its directory exists
// and the path is not a directory. Throws naming the option (`what`, e.g. "-o") otherwise.
void check_output_file(const std::string& path, const char* what);
void set_threads(int threads);  // 0: OpenMP's default
// The global --conv option (main.cpp): fast or exact, and whether the command line gave it.
// main sets the algorithm from it; `train --resume` checks it against the run's.
struct ConvOption {
  std::string value = "fast";
  bool given = false;
};
ConvOption& conv_option();
bool stderr_is_terminal();

}  // namespace normnet::cli
