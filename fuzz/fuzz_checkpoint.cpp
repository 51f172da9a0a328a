// libFuzzer target: checkpoint loading (src/io/checkpoint.cpp). The bytes as a state_dict for a
// fixed model (load_state_dict: names, dtypes, shapes against the model), then as a whole
// checkpoint (parse_checkpoint: metadata, the model description it holds, the state_dict).
// A normnet::Error is a rejection; anything else is a bug.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "normnet/checkpoint.h"
#include "normnet/error.h"

namespace {
// fuzz/make_corpus.py writes checkpoints of this model (keep the two in step).
const char* kModel = R"({"name": "fuzz", "input": [1, 8, 8], "classes": 3, "layers": [
  {"type": "Conv2d", "name": "conv", "in_channels": 1, "out_channels": 4, "kernel_size": 3, "padding": 1},
  {"type": "BatchNorm2d", "name": "bn", "num_features": 4},
  {"type": "ReLU", "name": "relu"},
  {"type": "Residual", "name": "block", "body": [
    {"type": "Conv2d", "name": "conv", "in_channels": 4, "out_channels": 4, "kernel_size": 3, "padding": 1, "bias": false},
    {"type": "BatchNorm2d", "name": "bn", "num_features": 4, "momentum": null}], "activation": "ReLU"},
  {"type": "GlobalAvgPool", "name": "pool"},
  {"type": "Linear", "name": "fc", "in_features": 4, "out_features": 3}]})";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static normnet::Model model = normnet::build_model(kModel, "fuzz model");
  const std::vector<uint8_t> bytes(data, data + size);
  try {
    normnet::load_state_dict(model, normnet::parse_safetensors(bytes, "fuzz.safetensors"), "fuzz.safetensors");
  } catch (const normnet::Error&) {
  }
  try {
    normnet::parse_checkpoint(bytes, "fuzz.safetensors");
  } catch (const normnet::Error&) {
  }
  return 0;
}
