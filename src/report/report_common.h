// Pieces shared by the run and experiment reports: chart names, number formatting, series of
// bands built from distributions.
#pragma once
#include <string>
#include <vector>

#include "normnet/report.h"

namespace normnet::report_detail {

// Letters and digits kept (lower case), anything else becomes '-'; never empty.
std::string slug(const std::string& s);
std::string fmt(double v);  // "%.6g"; "" for NaN
// "train_loss" -> "train loss"
std::string words(const std::string& s);
// Median line with 25-75%, 5-95% and min-max bands.
Series distribution_series(const std::string& name, const std::vector<double>& x,
                           const std::vector<Distribution>& d);

}  // namespace normnet::report_detail
