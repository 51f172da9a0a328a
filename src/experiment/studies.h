// The studies of `normnet experiment NAME` (docs/experiments.md): each turns a claim about batch
// normalization into runs whose values go into an ExperimentOutput.
//
// Represents: a study's name, title and claim, its full and --quick settings, and the function
// that runs it. Settings given on the command line (--seeds, --epochs, --limit, --test-limit)
// replace the chosen mode's.
// Ensures: a study writes only rows named with its own study name, so `all` can gather every
// study into one directory.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "experiment/output.h"

namespace normnet::experiment {

struct StudySettings {
  int64_t seeds = 2;        // seeds 1..seeds
  int64_t epochs = 1;
  int64_t limit = 2000;     // training images
  int64_t test_limit = 1000;
  std::vector<double> sweep;  // the swept values (learning rates, batch sizes, momenta), if any
};

struct StudyContext {
  std::string data;        // the data directory
  StudySettings settings;
  bool quick = false;
  std::function<void(const std::string&)> log;  // one progress line (stderr)
};

struct Study {
  std::string name, title;
  std::string claim;       // what the tutorials say, and what is measured (the report's paragraph)
  std::string budget;      // the full run's time on the development machine
  StudySettings full, quick;
  std::function<void(const StudyContext&, ExperimentOutput&)> run;
};

const std::vector<Study>& all_studies();  // in the order `all` runs them
const Study& find_study(const std::string& name);  // throws listing the names

// Shared by the studies: "mean +- std (n seeds)" of values, "not reached" counts and so on.
std::string mean_text(const std::vector<double>& v);

// The studies, one file each.
Study bn_vs_none_study();
Study learning_rate_study();
Study batch_size_study();
Study placement_study();
Study activation_study();
Study covariate_shift_study();
Study train_vs_eval_study();

}  // namespace normnet::experiment
