// The list of studies and helpers they share; see studies.h.
#include <cmath>

#include "experiment/studies.h"
#include "normnet/error.h"

namespace normnet::experiment {

const std::vector<Study>& all_studies() {
  static const std::vector<Study> studies = {bn_vs_none_study(),   learning_rate_study(),
                                             batch_size_study(),   placement_study(),
                                             activation_study(),   covariate_shift_study(),
                                             train_vs_eval_study()};
  return studies;
}

const Study& find_study(const std::string& name) {
  std::string names;
  for (const Study& s : all_studies()) {
    if (s.name == name) return s;
    names += s.name + ", ";
  }
  fail("unknown study '", name, "' (expected one of: ", names, "all)");
}

std::string mean_text(const std::vector<double>& v) {
  if (v.empty()) return "";
  double sum = 0;
  for (double x : v) sum += x;
  const double mean = sum / static_cast<double>(v.size());
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  return number_text(mean) + " +- " + number_text(std::sqrt(ss / static_cast<double>(v.size())));
}

}  // namespace normnet::experiment
