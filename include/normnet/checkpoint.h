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
#include "normnet/train.h"

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
// The same on a checkpoint file's bytes in memory; `what` names it in messages.
LoadedCheckpoint parse_checkpoint(const std::vector<uint8_t>& bytes, const std::string& what);

// A point to resume training from: one file (train-state.safetensors) holding the model
// (tensors "model.<state_dict name>", its description, normalization and counters), the
// optimizer state ("<param>.momentum_buffer" or ".exp_avg", ".exp_avg_sq", and its step count)
// and where the run stands. One file, written atomically, so the parts always agree.
struct TrainState {
  TrainProgress progress;
  std::string config;  // the caller's settings, JSON text, kept as given ("normnet.train_config")
  Normalization norm;
};
void save_train_state(const std::string& path, Model& m, Optimizer& opt, const TrainState& s);

struct LoadedTrainState {
  Model model;      // built from the stored description; parameters, buffers, counters loaded
  TrainState state;
  std::string optimizer;  // the kind the moments are for: sgd | adam | adamw
  StFile file;      // the file's tensors (restore_optimizer takes the moments from it)
};
// Reads and checks the file; errors name it and the entry at fault.
LoadedTrainState load_train_state(const std::string& path);
// Copies the stored moments and step count into opt, which must be built over the loaded
// model's parameters with an optimizer of the stored kind.
void restore_optimizer(const LoadedTrainState& s, Optimizer& opt);

}  // namespace normnet
