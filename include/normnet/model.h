// normnet::Model: a network built at run time from a model description (JSON, see
// docs/model-format.md), with its input shape and class count.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "normnet/layers.h"

namespace normnet {

struct Model {
  std::string name;
  std::string spec;              // the description as JSON text (stored in checkpoints)
  std::vector<int64_t> input;    // per-sample input shape, e.g. {1, 28, 28}
  int64_t classes = 10;
  std::unique_ptr<Sequential> net;

  Shape batch_shape(int64_t n) const;  // (n, input...)
  // Initializes every parameter in state_dict order from one generator seeded with `seed`.
  void init_parameters(uint64_t seed);
};

// Builds from JSON text; `source` (a file name) prefixes every error message. Every layer's
// shape is checked against its input before anything is allocated for data.
Model build_model(const std::string& json_text, const std::string& source);

// A zoo name ("seed001") or a path to a JSON file -> the file's path. Zoo directories searched:
// $NORMNET_MODELS, the source tree's models/, the installed share/normnet/models.
std::string find_model_file(const std::string& name_or_path);
Model load_model(const std::string& name_or_path);
std::vector<std::string> zoo_model_names();

}  // namespace normnet
