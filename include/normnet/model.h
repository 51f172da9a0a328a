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

// A rewrite of a model description (normnet train --activation / --norm / --bn-position; see
// docs/model-format.md, "Transforms"). Empty strings leave that aspect as it is.
struct ModelTransform {
  std::string activation;   // "relu" | "elu": every ReLU / ELU (Residual "activation" too) becomes it
  std::string norm;         // "bn" (unchanged) | "gn:G" | "ln" | "in" | "brn" | "ghost:V" | "none":
                            // what every BatchNorm1d/2d becomes ("none": removed)
  std::string bn_position;  // "after": BatchNorm->activation pairs become activation->BatchNorm;
                            // "before": the reverse
  bool empty() const;
  std::string suffix() const;  // appended to the model's name: "-elu-gn_8-bnafter"
  static int64_t parse_count(const std::string& s, const char* what);  // "8" -> 8, else throws
};

// Returns the transformed description (JSON text); its name gets t.suffix() and its notes a line
// saying what was done. Throws naming `source` and the layer when a layer cannot be rewritten
// (gn:G with channels not divisible by G). Types the builder lacks are emitted all the same and
// rejected by build_model.
std::string transform_model(const std::string& json_text, const ModelTransform& t,
                            const std::string& source);

// A zoo name or a JSON file's path with `t` applied to its description before it is built (as
// normnet train --activation / --norm / --bn-position): the transformed description is the
// model's spec. An empty `t` is load_model(name_or_path). A model named "model" gets the file's
// stem plus t.suffix().
Model load_model(const std::string& name_or_path, const ModelTransform& t);

}  // namespace normnet
