// Folding BatchNorm into the layer before it, for deployment (`normnet fold`; see
// docs/normalization.md, "Folding BN for deployment").
//
// Represents: the rewrite of a trained model in which every BatchNorm1d/2d that directly
// follows a Conv1d, Conv2d or Linear in a sequence (the top level, a Residual body or shortcut, a
// Concat branch) and tracks running statistics is merged into that layer. In evaluation BN is
// the fixed per-channel affine map y = (z - rm) * s + beta with s = gamma / sqrt(rv + eps), so for
// z = W x + b:
//   W'[o, ...] = W[o, ...] * s[o]        b'[o] = (b[o] - rm[o]) * s[o] + beta[o]
// (b = 0 when the layer had no bias: it gets one; gamma = 1, beta = 0 without affine), computed
// in double and rounded once to float. The BN layer leaves the description; layers of a
// sequence that lost a layer get explicit names equal to their old positional names, so every
// other tensor keeps its state_dict name.
//
// Requires: nothing about the mode. Checkpoints do not record train/eval, and folding always
// uses the running statistics, i.e. it reproduces the model in evaluation (training the folded
// model is a different model: it has no BN). Kept, each with a reason in the report: a BN that
// is first in its sequence or follows anything but Conv/Linear (e.g. after ReLU, as in
// seed003-keras), and a BN with track_running_stats off (it has no running statistics; it
// normalizes with batch statistics even in evaluation).
// Ensures: fold(m) in eval mode gives m's eval-mode outputs up to float rounding (about 1e-6
// relative); m is not modified.
#pragma once
#include <string>
#include <vector>

#include "normnet/model.h"

namespace normnet {

struct FoldReport {
  std::vector<std::string> folded;  // "BatchNorm2d 'bn1' into Conv2d 'conv1'"
  std::vector<std::string> kept;    // "kept BatchNorm2d 'bn1': follows ReLU 'relu1', ..."
};

// Returns the folded model (description rewritten, parameters and buffers set). Throws
// normnet::Error naming the layer when a tensor the fold needs is missing or mis-shaped.
Model fold_batchnorm(Model& m, FoldReport* report = nullptr);

}  // namespace normnet
