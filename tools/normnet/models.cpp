// normnet models: the zoo with parameter counts.
#include <cstdio>

#include "common.h"
#include "normnet/model.h"

namespace normnet::cli {

Runner add_models(CLI::App& app) {
  app.add_subcommand("models", "List the model zoo with parameter counts");
  return [] {
    std::printf("%-22s %12s  %s\n", "model", "parameters", "input -> classes");
    for (const auto& name : zoo_model_names()) {
      Model m = load_model(name);
      std::string in;
      for (size_t i = 0; i < m.input.size(); ++i) in += (i ? "x" : "") + std::to_string(m.input[i]);
      std::printf("%-22s %12lld  %s -> %lld\n", name.c_str(),
                  static_cast<long long>(m.net->parameter_count()), in.c_str(),
                  static_cast<long long>(m.classes));
    }
    return 0;
  };
}

}  // namespace normnet::cli
