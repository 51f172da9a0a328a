// ONNX import of a network (`normnet import`; docs/onnx.md, "Import").
//
// Represents: the reverse of src/io/onnx_export.cpp: an ONNX graph of supported operators in
// inference form becomes a normnet model description (docs/model-format.md) and the values of
// its state_dict, ready for save_checkpoint.
// Requires: one graph input of element type FLOAT, (N, C, ...) with a fixed per-sample shape;
// one output (N, classes); operators of the default domain from the supported list (docs/onnx.md)
// arranged as a nesting of sequences, residual additions and channel concatenations.
// Ensures: normnet's evaluation-mode forward of the result gives the graph's output up to float
// rounding (tests/torch/test_onnx_import.py checks torch.onnx.export files and normnet export
// files). Anything else is a normnet::Error naming the file and the node, tensor or attribute at
// fault; every length, count, rank and dimension read from the file is bounded before use
// (the limits below), so no input makes the reader allocate beyond a small multiple of its size.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "normnet/data.h"
#include "normnet/model.h"

namespace normnet {

// Limits on what the importer reads (docs/robustness.md).
inline constexpr int64_t kOnnxMaxFileBytes = (int64_t{1} << 31) - 1;  // protobuf's message limit
inline constexpr int kOnnxMaxNodes = 10000;
inline constexpr int kOnnxMaxInitializers = 10000;
inline constexpr int kOnnxMaxNodeInputs = 1024;
inline constexpr int kOnnxMaxRank = 5;
inline constexpr int kOnnxMaxBlockDepth = 64;  // residual / concat blocks nested in each other
inline constexpr int64_t kOnnxMinOpset = 11, kOnnxMaxOpset = 18;

struct OnnxImportOptions {
  std::string name;              // the model's name; empty: the graph's name, else "imported"
  std::optional<float> mean, std;  // normalization; default: the file's "normnet.normalization"
                                   // metadata (normnet export writes it), else 0 and 1
};

struct OnnxImportReport {
  int64_t nodes = 0, initializers = 0, opset = 0;
  std::string producer;          // "pytorch 1.13.1", "normnet 0.1.0"
  std::vector<std::string> notes;  // conventions converted, patterns recognized
};

struct ImportedOnnx {
  Model model;                   // built from the description (model.spec), tensors loaded
  Normalization norm;
  OnnxImportReport report;
};

// `what` names the source in messages (the file name).
ImportedOnnx import_onnx(const uint8_t* data, size_t size, const std::string& what,
                         const OnnxImportOptions& opt = {});
// Checks the file size against kOnnxMaxFileBytes before reading.
ImportedOnnx import_onnx_file(const std::string& path, const OnnxImportOptions& opt = {});

}  // namespace normnet
