// ONNX export of a normnet model (`normnet export`; docs/onnx.md has the operator mapping).
//
// Represents: the model's evaluation-mode forward as an ONNX graph at opset 17: input "input"
// (N, input...) with a symbolic batch dimension N, output "logits" (N, classes), weights as
// initializers named by their state_dict names, one node (or a few) per layer named by the
// layer's path. The graph takes the normalized input, as the PyTorch module does; the
// checkpoint's normalization is recorded in the model's metadata_props
// ("normnet.normalization"), with the model description ("normnet.model").
// Requires: every layer has an ONNX mapping (an unsupported layer, or a BatchNorm without
// running statistics, is an Error naming the layer).
// Ensures: onnx.checker accepts the model and onnxruntime gives normnet's evaluation outputs up
// to float rounding (tests/torch/test_onnx_export.py).
#pragma once
#include <string>
#include <vector>

#include "normnet/data.h"
#include "normnet/model.h"

namespace normnet {

struct OnnxExportOptions {
  bool fold = false;  // fold BatchNorm into the Conv/Linear before it first (include/normnet/fold.h)
};

struct OnnxExportReport {
  std::vector<std::string> folded, kept;  // with fold: as FoldReport
  int64_t nodes = 0, initializers = 0, opset = 0;
};

// Writes `path` atomically. `m` is not modified (folding works on a copy).
void export_onnx(const std::string& path, Model& m, const Normalization& norm,
                 const OnnxExportOptions& opt = {}, OnnxExportReport* report = nullptr);

}  // namespace normnet
