// normnet: train, evaluate and inspect batch-normalized CNNs. One file per subcommand.
#include <cstdio>
#include <map>

#include "common.h"
#include "normnet/conv_algorithm.h"
#include "normnet/error.h"

int main(int argc, char** argv) {
  using namespace normnet::cli;
  CLI::App app{"normnet: batch-normalized CNNs in C++ (PyTorch semantics)", "normnet"};
  app.require_subcommand(1);
  app.option_defaults()->always_capture_default();
  // Global, also accepted after the subcommand (fallthrough): normnet train --conv exact ...
  app.fallthrough();
  ConvOption& conv = conv_option();
  CLI::Option* conv_flag = app.add_option("--conv", conv.value,
                 "3x3 convolution algorithm: fast (Winograd where it applies) or exact (the direct "
                 "sums of im2col + GEMM); docs/performance.md")
      ->check(CLI::IsMember({"fast", "exact"}));
  std::map<std::string, Runner> runners;
  runners["train"] = add_train(app);
  runners["eval"] = add_eval(app);
  runners["predict"] = add_predict(app);
  runners["models"] = add_models(app);
  runners["summary"] = add_summary(app);
  runners["fold"] = add_fold(app);
  runners["recalibrate"] = add_recalibrate(app);
  runners["export"] = add_export(app);
  runners["import"] = add_import(app);
  runners["report"] = add_report(app);
  runners["experiment"] = add_experiment(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  conv.given = conv_flag->count() > 0;
  normnet::set_conv_algorithm(conv.value == "exact" ? normnet::ConvAlgorithm::kExact
                                                    : normnet::ConvAlgorithm::kFast);
  try {
    for (auto* sub : app.get_subcommands()) return runners.at(sub->get_name())();
  } catch (const normnet::Error& e) {
    std::fprintf(stderr, "normnet: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "normnet: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
