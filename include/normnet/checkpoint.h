// Checkpoints: safetensors files whose tensors are exactly the model's PyTorch state_dict
// (names, shapes, F32; num_batches_tracked as I64 scalars), so
// `model.load_state_dict(safetensors.torch.load_file(path), strict=True)` works. The header's
// __metadata__ holds "normnet.model" (the model description JSON), "normnet.normalization"
// ({"mean": m, "std": s}) and "normnet.format" ("1"). Training state (optimizer moments,
// epoch, step, RNG) is a second file, never mixed into the state_dict. See docs/checkpoint-format.md.
#pragma once
#include <map>
#include <string>

#include "normnet/data.h"
#include "normnet/model.h"
#include "normnet/optim.h"
#include "normnet/safetensors.h"

namespace normnet {

StFile state_dict(Model& m);
// Copies every tensor of `f` into the model; names, dtypes and shapes must match exactly
// (missing, unexpected or mis-shaped tensors are errors naming the tensor and `what`).
void load_state_dict(Model& m, const StFile& f, const std::string& what);

void save_checkpoint(const std::string& path, Model& m, const Normalization& norm,
                     const std::map<std::string, std::string>& extra_metadata = {});

struct LoadedCheckpoint {
  Model model;
  Normalization norm;
  std::map<std::string, std::string> metadata;
};
LoadedCheckpoint load_checkpoint(const std::string& path);

struct TrainState {
  int64_t epoch = 0;   // epochs completed
  int64_t step = 0;    // optimizer steps taken
  std::array<uint64_t, 4> rng{};
};
void save_train_state(const std::string& path, Optimizer& opt, const TrainState& s);
TrainState load_train_state(const std::string& path, Optimizer& opt);

}  // namespace normnet
