// libFuzzer target: model descriptions (build_model, src/nn/model_builder.cpp). What the builder
// accepts must run: for a small model (few parameters, a small input), one forward in
// evaluation mode and one training step's forward and backward on a batch of 2. A
// normnet::Error is a rejection; anything else is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "normnet/error.h"
#include "normnet/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  normnet::Model m;
  try {
    m = normnet::build_model(std::string(reinterpret_cast<const char*>(data), size), "fuzz.json");
  } catch (const normnet::Error&) {
    return 0;
  }
  int64_t input = 1;
  for (int64_t d : m.input) input *= d;
  if (input > 256 || m.net->parameter_count() > 4096) return 0;
  normnet::Tensor x = normnet::Tensor::full(m.batch_shape(2), 0.5f);
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(i % 7) * 0.25f - 0.5f;
  try {
    m.net->eval();
    m.net->forward(x);
    m.net->train();
    const normnet::Tensor y = m.net->forward(x);
    m.net->backward(normnet::Tensor::full(y.shape(), 1.0f));
  } catch (const normnet::Error&) {
  }
  return 0;
}
