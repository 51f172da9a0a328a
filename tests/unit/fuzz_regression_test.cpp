// Inputs the fuzzers (fuzz/, scripts/fuzz) found that broke a reader, each run again through the
// entry point its fuzzer calls: the reader must now reject it with a normnet::Error naming the
// fault, or accept it and give a consistent result. The inputs are the fuzzers' files, kept in
// fuzz/regressions/ (docs/robustness.md, "Fuzzing", lists each bug).
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "normnet/checkpoint.h"
#include "normnet/data.h"
#include "normnet/error.h"
#include "normnet/model.h"
#include "normnet/safetensors.h"
#ifdef NORMNET_HAVE_ONNX
#include "io/onnx_import.h"
#endif

namespace normnet {
namespace {

std::vector<uint8_t> regression(const std::string& name) {
  const std::string path = std::string(NORMNET_SOURCE_DIR) + "/fuzz/regressions/" + name;
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "missing " << path;
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "expected normnet::Error mentioning '" << parts.front() << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << "message lacks '" << p << "': " << msg;
  }
}

// IDX (n, h, w) = (0, 2894814472, 4294967222): no payload, so read_idx accepts it; h * w
// overflowed int64 in idx_to_images before the check (UBSan: signed integer overflow).
TEST(FuzzRegression, IdxImagePlaneOverflow) {
  const std::vector<uint8_t> b = regression("idx-image-plane-overflow");
  const IdxArray a = parse_idx(b.data(), b.size(), "crash");
  ASSERT_EQ(a.dims.size(), 3u);
  EXPECT_EQ(a.dims[0], 0);
  expect_error([&] { idx_to_images(a, "crash"); }, {"crash", "overflow int64", "2894814472"});
}

// A model description whose "name" is not a string: json::value threw nlohmann's type_error,
// which is not a normnet::Error (fuzz_model; the program would have died).
TEST(FuzzRegression, ModelNameNotString) {
  const std::vector<uint8_t> b = regression("model-name-not-string.json");
  expect_error([&] { build_model(std::string(b.begin(), b.end()), "crash.json"); },
               {"crash.json", "'name' must be a string"});
  expect_error([&] { build_model(R"({"input": [1, 2, 2], "classes": 2, "layers": [{"type": "Residual",
      "body": [], "shortcut_name": 7}, {"type": "Flatten"}, {"type": "Linear", "in_features": 4,
      "out_features": 2}]})", "s.json"); },
               {"s.json", "'shortcut_name' must be a non-empty string"});
}

// Found by review next to the fuzzer's first model-description crash, before the fuzzer got
// there: sizes that ask for terabytes (the allocation was attempted), sizes whose products
// overflowed int64 in the convolution's and Reshape's shape arithmetic (UBSan).
TEST(FuzzRegression, ModelSizesBounded) {
  auto model = [](const std::string& layer, int64_t flat) {
    return R"({"input": [1, 4, 4], "classes": 2, "layers": [)" + layer +
           R"(, {"type": "Flatten"}, {"type": "Linear", "in_features": )" + std::to_string(flat) +
           R"(, "out_features": 2}]})";
  };
  expect_error([&] { build_model(model(R"({"type": "Conv2d", "in_channels": 1, "out_channels": 1000000000000,
      "kernel_size": 1})", 16), "m.json"); }, {"m.json", "'out_channels' is 1000000000000, out of range"});
  expect_error([&] { build_model(model(R"({"type": "Conv2d", "in_channels": 1, "out_channels": 2000000000,
      "kernel_size": 3, "padding": 1})", 16), "m.json"); },
               {"m.json", "layers[0]", "more than 134217728 parameter and buffer values"});
  expect_error([&] { build_model(model(R"({"type": "Conv2d", "in_channels": 1, "out_channels": 1,
      "kernel_size": 1, "padding": 9223372036854775807})", 16), "m.json"); },
               {"m.json", "'padding' is 9223372036854775807, out of range"});
  expect_error([&] { build_model(model(R"({"type": "Reshape", "shape": [2147483648, 2147483648, 2147483648, 4]})", 16),
                                 "m.json"); }, {"m.json", "target shape overflows int64"});
  expect_error([&] { build_model(model(R"({"type": "Reshape", "shape": [4611686018427387904, 4]})", 16), "m.json"); },
               {"m.json", "bad size 4611686018427387904"});
  // The largest dilation is in range and its arithmetic exact: the kernel does not fit.
  expect_error([&] { build_model(model(R"({"type": "Conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 3,
      "padding": 1, "dilation": 2147483647})", 32), "m.json"); },
               {"m.json", "is smaller than the kernel 3x3 (dilation 2147483647x2147483647"});
  EXPECT_NO_THROW(build_model(model(R"({"type": "Conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 3,
      "padding": 1})", 32), "m.json"));
}

// Deep nesting, which mutation rarely builds, tried by hand through the fuzz targets (ASan:
// stack-overflow; the Release program died with SIGSEGV): nlohmann's parser is iterative, but
// dump() and the block builder recurse. Now the nesting is bounded while parsing.
TEST(FuzzRegression, ModelDeepNesting) {
  const int d = 200000;  // 400 KB of nested arrays in "notes"
  const std::string notes = R"({"input": [1, 2, 2], "classes": 2, "notes": )" + std::string(d, '[') +
                            std::string(d, ']') + R"(, "layers": []})";
  expect_error([&] { build_model(notes, "deep.json"); }, {"deep.json", "nests deeper than 512 levels"});
  ModelTransform t;
  t.activation = "elu";
  expect_error([&] { transform_model(notes, t, "deep.json"); }, {"deep.json", "nests deeper than 512 levels"});
  std::string body = R"({"type": "Identity"})";
  for (int i = 0; i < 3000; ++i) body = R"({"type": "Residual", "body": [)" + body + "]}";
  expect_error([&] { build_model(R"({"input": [1, 2, 2], "classes": 4, "layers": [)" + body +
                                     R"(, {"type": "Flatten"}]})", "res.json"); },
               {"res.json", "nests deeper than 512 levels"});
  // 200 nested blocks (400 levels) still build.
  body = R"({"type": "Identity"})";
  for (int i = 0; i < 200; ++i) body = R"({"type": "Residual", "body": [)" + body + "]}";
  EXPECT_NO_THROW(build_model(R"({"input": [1, 2, 2], "classes": 4, "layers": [)" + body + R"(, {"type": "Flatten"}]})",
                              "ok.json"));
}

TEST(FuzzRegression, SafetensorsDeepNesting) {
  const int d = 300000;
  const std::string header = R"({"t": {"dtype": "F32", "shape": [], "data_offsets": )" + std::string(d, '[') +
                             std::string(d, ']') + "}}";
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(static_cast<uint64_t>(header.size()) >> (8 * i));
  bytes += header;
  const std::vector<uint8_t> file(bytes.begin(), bytes.end());
  expect_error([&] { parse_safetensors(file, "deep.safetensors"); },
               {"deep.safetensors", "header nests deeper than 16 levels"});
}

#ifdef NORMNET_HAVE_ONNX
// An ONNX model whose producer_name holds the bytes fe ff ff ...: the description the importer
// writes quoted it, and nlohmann's dump threw json::type_error (invalid UTF-8), which is not a
// normnet::Error. Now file text is written as printable ASCII.
TEST(FuzzRegression, OnnxProducerNotUtf8) {
  const std::vector<uint8_t> b = regression("onnx-producer-not-utf8.onnx");
  const ImportedOnnx r = import_onnx(b.data(), b.size(), "crash.onnx");
  const nlohmann::json spec = nlohmann::json::parse(r.model.spec);
  EXPECT_NE(spec["description"].get<std::string>().find("producer 'm???????"), std::string::npos)
      << spec["description"];
  EXPECT_EQ(r.report.producer.substr(0, 4), "m???");
}
#endif

}  // namespace
}  // namespace normnet
