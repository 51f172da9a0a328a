// normnet::Module: a layer or a container of layers.
//
// Represents: one node of a module tree whose parameters and buffers have dotted names exactly
// as PyTorch's state_dict() names them ("bn1.weight", "bn1.running_var",
// "bn1.num_batches_tracked"; conv weights OIHW).
// forward(x) keeps what backward needs (the saved state is the module's cache, replaced by each
// forward); backward(dy) returns dx and ADDS parameter gradients into Parameter::grad (PyTorch's
// accumulation rule: call zero_grad() between steps).
// Mode is explicit: train() / eval(), recursive, never inferred from the batch.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "normnet/random.h"
#include "normnet/tensor.h"

namespace normnet {

struct Parameter {
  std::string name;        // local name: "weight", "bias"
  Tensor value;
  Tensor grad;             // same shape, zero-initialized
  bool no_decay = false;   // BN/norm affine parameters and biases (weight decay can skip them)
  Parameter() = default;
  Parameter(std::string n, const Shape& s, bool nd = false)
      : name(std::move(n)), value(s), grad(s), no_decay(nd) {}
};

// A buffer: a float tensor (running_mean) or an int64 scalar (num_batches_tracked).
struct Buffer {
  std::string name;
  Tensor* f32 = nullptr;
  int64_t* i64 = nullptr;
};

class Module {
 public:
  virtual ~Module() = default;
  virtual std::string kind() const = 0;               // "Conv2d", "BatchNorm2d", ...
  virtual std::string describe() const { return kind() + "()"; }
  // Checks the per-batch input shape (throws naming this layer) and returns the output shape.
  virtual Shape output_shape(const Shape& in) const = 0;
  virtual Tensor forward(const Tensor& x) = 0;
  virtual Tensor backward(const Tensor& dy) = 0;
  virtual void reset_parameters(Rng&) {}
  // Drops what forward kept for backward (Sequential calls it after each layer's forward when
  // gradients are off, see NoGrad); a backward after it is an error naming the layer.
  virtual void release_saved() {}

  virtual std::vector<Parameter*> own_parameters() { return {}; }
  virtual std::vector<Buffer> own_buffers() { return {}; }
  virtual std::vector<std::pair<std::string, Module*>> children() { return {}; }
  // Integers outside the state_dict that training advances and an exact resume must restore
  // (Dropout's mask seed and call count), as (local name, pointer).
  virtual std::vector<std::pair<std::string, uint64_t*>> own_counters() { return {}; }

  void train(bool on = true);
  void eval() { train(false); }
  bool training() const { return training_; }

  // Depth-first, children in order, own entries first: the order of PyTorch's state_dict().
  std::vector<std::pair<std::string, Parameter*>> named_parameters(const std::string& prefix = "");
  std::vector<std::pair<std::string, Buffer>> named_buffers(const std::string& prefix = "");
  std::vector<std::pair<std::string, uint64_t*>> named_counters(const std::string& prefix = "");
  void zero_grad();
  int64_t parameter_count();

  // False for a layer whose input is the data (set_input_is_data): its backward may skip the
  // input gradient and return an undefined tensor, as PyTorch does for inputs that do not
  // require grad. Convolutions use it.
  bool needs_input_grad = true;

  std::string path;  // dotted path in the tree ("" for the root), for error messages
  std::string label() const;  // "BatchNorm2d 'features.bn1'"

 protected:
  bool training_ = true;
};

using ModulePtr = std::unique_ptr<Module>;

// Gradients off, as torch.no_grad(): while a NoGrad lives (on this thread), Sequential drops
// each layer's saved activations right after its forward, so inference holds a couple of
// activations at a time instead of the whole network's. evaluate() uses it.
bool grad_enabled();
class NoGrad {
 public:
  NoGrad();
  ~NoGrad();
  NoGrad(const NoGrad&) = delete;
  NoGrad& operator=(const NoGrad&) = delete;
 private:
  bool previous_;
};

// Marks the first layer that sees the network's input (following first children of
// containers; not through a Residual or Concat, whose input feeds several branches) as not
// needing the input gradient. The trainer does this: nothing uses the gradient of the data.
void set_input_is_data(Module& root);

}  // namespace normnet
