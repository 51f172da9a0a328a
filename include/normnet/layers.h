// The layers. Hyper-parameters and defaults follow torch.nn; each forward/backward pair calls
// the kernels in src/kernels/. Inputs are NCHW (2-d layers) or NCL (1-d layers).
#pragma once
#include <optional>
#include <vector>

#include "normnet/module.h"

namespace normnet {

class Comm;  // distributed.h
class Pool;  // below
namespace kernels {
struct BatchNormShape;  // kernels/batchnorm.h
}

struct ConvOptions {
  int dims = 2;                       // 1: Conv1d (N, C, L); 2: Conv2d (N, C, H, W)
  int64_t in_channels = 1, out_channels = 1;
  int64_t kernel_h = 1, kernel_w = 1;  // Conv1d: kernel_h = 1
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
  bool bias = true;
};

class Conv : public Module {
 public:
  explicit Conv(const ConvOptions& o);
  std::string kind() const override { return opt.dims == 1 ? "Conv1d" : "Conv2d"; }
  std::string describe() const override;
  Shape output_shape(const Shape& in) const override;
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& dy) override;
  void release_saved() override { input_ = Tensor(); }
  void reset_parameters(Rng& rng) override;  // U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as PyTorch
  std::vector<Parameter*> own_parameters() override;
  ConvOptions opt;
  Parameter weight, bias;  // weight (O, I/groups, kh, kw) or (O, I/groups, k)
 private:
  Tensor input_;
};

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  std::string kind() const override { return "Linear"; }
  std::string describe() const override;
  Shape output_shape(const Shape& in) const override;
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& dy) override;
  void release_saved() override { input_ = Tensor(); }
  void reset_parameters(Rng& rng) override;
  std::vector<Parameter*> own_parameters() override;
  int64_t in_features, out_features;
  bool has_bias;
  Parameter weight, bias;  // weight (out, in)
 private:
  Tensor input_;
};

struct BatchNormOptions {
  int dims = 2;                          // 1: BatchNorm1d on (N, C) or (N, C, L); 2: (N, C, H, W)
  int64_t num_features = 1;
  double eps = 1e-5;
  std::optional<double> momentum = 0.1;  // nullopt: cumulative moving average
  bool affine = true;
  bool track_running_stats = true;
};

// Batch normalization with torch.nn.BatchNorm1d/2d semantics (see docs/batchnorm.md).
class BatchNorm : public Module {
 public:
  explicit BatchNorm(const BatchNormOptions& o);
  std::string kind() const override { return opt.dims == 1 ? "BatchNorm1d" : "BatchNorm2d"; }
  std::string describe() const override;
  Shape output_shape(const Shape& in) const override;
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& dy) override;
  void release_saved() override {
    input_ = Tensor();
    std::vector<int32_t>().swap(pool_win_);
  }
  std::vector<Parameter*> own_parameters() override;
  std::vector<Buffer> own_buffers() override;
  BatchNormOptions opt;
  Parameter weight, bias;            // gamma (init 1), beta (init 0), when affine
  Tensor running_mean, running_var;  // init 0 and 1, when track_running_stats
  int64_t num_batches_tracked = 0;
  // Fusion (docs/normalization.md, "Fused kernels"; set by Sequential::fuse): forward returns
  // relu(BN(x)) through one fused kernel, keeping a 1-bit mask instead of a second activation
  // copy, and backward takes the gradient of that; the ReLU that followed is a pass-through.
  // Outputs, gradients and buffers are bit-identical to the unfused pair.
  bool fused_relu = false;
  // Also set by Sequential::fuse, with fused_relu, when a MaxPool2d(kernel 2, stride 2) follows
  // the ReLU: forward returns maxpool(relu(BN(x))) and backward takes that output's gradient;
  // the pool is a pass-through. Bit-identical to the unfused layers (kernels/batchnorm_relu.h).
  Pool* fused_pool = nullptr;
  // relu(BN(x) + residual) and its backward {dx, dresidual}: the end of a fused Residual.
  Tensor forward_add_relu(const Tensor& x, const Tensor& residual);
  std::pair<Tensor, Tensor> backward_add_relu(const Tensor& dy);
  // SyncBatchNorm (set_sync_batchnorm, distributed.h): in training, the statistics and the
  // backward's gradient sums run over the whole global batch of every rank of `sync`, which
  // every rank's forward and backward must then reach (also with no samples); null: this
  // process's batch alone. See kernels/batchnorm_sync.h.
  Comm* sync = nullptr;
 private:
  Tensor run_forward(const Tensor& x, const Tensor* residual, bool relu);
  Tensor run_forward_pooled(const Tensor& x);
  Tensor run_backward_pooled(const Tensor& dy);
  void check_batch_stats(const Shape& in, const kernels::BatchNormShape& s);
  void update_running(const kernels::BatchNormShape& s);
  std::pair<Tensor, Tensor> run_backward(const Tensor& dy, bool residual);
  void run_forward_sync(Tensor& out, const float* residual, uint64_t* mask);  // batchnorm_sync.cpp
  std::pair<Tensor, Tensor> run_backward_sync(const Tensor& dy, bool residual);
  Tensor input_, mean_, var_, invstd_;
  bool used_batch_stats_ = false;
  bool synced_ = false;         // the last forward used sync
  int64_t sync_count_ = 0;      // its values per channel over all ranks
  int epilogue_ = 0;                 // of the last forward: 0 none, 1 ReLU, 2 add + ReLU
  bool pooled_ = false;              // the last forward also ran fused_pool
  Shape pool_in_;                    // then: the shape before pooling,
  std::vector<int32_t> pool_win_;    // and each window's winner (kernels/batchnorm_relu.h)
  std::vector<uint64_t> relu_mask_;  // 1 bit per output element (kernels/batchnorm_relu.h)
};

enum class ActivationKind { ReLU, LeakyReLU, ELU };

class Activation : public Module {
 public:
  explicit Activation(ActivationKind k, double param = 0.0);  // slope (0.01) or alpha (1.0)
  std::string kind() const override;
  std::string describe() const override;
  Shape output_shape(const Shape& in) const override { return in; }
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& dy) override;
  void release_saved() override { saved_ = Tensor(); }
  ActivationKind act;
  double param;
  bool pass_through = false;  // a ReLU applied by the fused BatchNorm before it (Sequential::fuse)
 private:
  Tensor saved_;  // output (ReLU, ELU) or input (LeakyReLU)
};

struct PoolOptions {
  int dims = 2;  // 1: MaxPool1d on (N, C, L)
  bool max = true;
  int64_t kernel_h = 2, kernel_w = 2, stride_h = 2, stride_w = 2, pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  bool ceil_mode = false, count_include_pad = true;
};

class Pool : public Module {
 public:
  explicit Pool(const PoolOptions& o) : opt(o) {}
  std::string kind() const override;
  std::string describe() const override;
  Shape output_shape(const Shape& in) const override;
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& dy) override;
  void release_saved() override { std::vector<int32_t>().swap(argmax_); }
  PoolOptions opt;
  bool pass_through = false;  // pooled by the BatchNorm before it (BatchNorm::fused_pool)
  // Whether the BatchNorm + ReLU before this pool can pool too: MaxPool2d, kernel 2x2, stride
  // 2, no padding or dilation, no ceil_mode.
  bool fusable_after_relu() const;
 private:
  Shape in_shape_;
  std::vector<int32_t> argmax_;
};

// (N, C, H, W) or (N, C, L) -> (N, C): the mean over the spatial positions.
class GlobalAvgPool : public Module {
 public:
  std::string kind() const override { return "GlobalAvgPool"; }
  Shape output_shape(const Shape& in) const override;
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& dy) override;
 private:
  Shape in_shape_;
};

// (N, ...) -> (N, prod(...)), like torch.nn.Flatten(); Reshape -> (N, shape...).
class Reshape : public Module {
 public:
  explicit Reshape(std::vector<int64_t> shape = {}) : target(std::move(shape)) {}  // {} = flatten
  std::string kind() const override { return target.empty() ? "Flatten" : "Reshape"; }
  std::string describe() const override;
  Shape output_shape(const Shape& in) const override;
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& dy) override;
  std::vector<int64_t> target;
 private:
  Shape in_shape_;
};

class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5) : p(p) {}
  std::string kind() const override { return "Dropout"; }
  std::string describe() const override;
  Shape output_shape(const Shape& in) const override { return in; }
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& dy) override;
  void reset_parameters(Rng& rng) override { seed = rng.next_u64(); }
  std::vector<std::pair<std::string, uint64_t*>> own_counters() override {
    return {{"seed", &seed}, {"calls", &calls}};
  }
  double p;
  uint64_t seed = 0, calls = 0;  // mask of call k: hash(seed + k, element index)
 private:
  std::vector<uint8_t> mask_;
  bool dropped_ = false;
};

class Identity : public Module {
 public:
  std::string kind() const override { return "Identity"; }
  Shape output_shape(const Shape& in) const override { return in; }
  Tensor forward(const Tensor& x) override { return x; }
  Tensor backward(const Tensor& dy) override { return dy; }
};

// Runs children in order; names them as given ("conv1") or by position ("0", "1").
class Sequential : public Module {
 public:
  std::string kind() const override { return "Sequential"; }
  Shape output_shape(const Shape& in) const override;
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& dy) override;
  std::vector<std::pair<std::string, Module*>> children() override;
  void add(std::string name, ModulePtr m);
  // Fuses (on) or unfuses (off), recursively: BatchNorm immediately followed by ReLU runs as
  // one kernel, and a Residual with activation ReLU whose body ends in BatchNorm runs the
  // BN + add + ReLU kernel. Names and numbers are unchanged. build_model fuses.
  void fuse(bool on = true);
  size_t size() const { return layers_.size(); }
  Module& at(size_t i) { return *layers_[i].second; }
 private:
  std::vector<std::pair<std::string, ModulePtr>> layers_;
};

// out = body(x) + shortcut(x), then an optional activation: a residual block. The body's
// layers are named directly under the block (conv1, bn1, ...), the shortcut under its own name
// ("shortcut"; an empty shortcut is the identity).
class Residual : public Module {
 public:
  Residual(std::unique_ptr<Sequential> body, std::unique_ptr<Sequential> shortcut,
           std::string shortcut_name, ModulePtr post);
  std::string kind() const override { return "Residual"; }
  Shape output_shape(const Shape& in) const override;
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& dy) override;
  std::vector<std::pair<std::string, Module*>> children() override;
  void fuse(bool on);  // see Sequential::fuse
  // The parts, for code that walks the graph (ONNX export): shortcut null or empty is the
  // identity; post null is no activation.
  Sequential& body() { return *body_; }
  Sequential* shortcut() { return shortcut_.get(); }
  Module* post() { return post_.get(); }
 private:
  std::unique_ptr<Sequential> body_, shortcut_;
  std::string shortcut_name_;
  ModulePtr post_;  // may be null
  BatchNorm* fused_bn_ = nullptr;  // the body's last layer, when it runs BN + add + ReLU
};

// out = concat(branch_0(x), branch_1(x), ...) along dimension 1 (channels), as
// torch.cat([b(x) for b in branches], 1): Inception's parallel branches, DenseNet's dense
// connections (an empty branch is the identity). Each branch's layers are named under the
// branch's name ("mixed1.b3x3.conv.weight"). Requires every branch to give the same shape except
// in dimension 1.
class Concat : public Module {
 public:
  explicit Concat(std::vector<std::pair<std::string, std::unique_ptr<Sequential>>> branches);
  std::string kind() const override { return "Concat"; }
  Shape output_shape(const Shape& in) const override;
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& dy) override;
  std::vector<std::pair<std::string, Module*>> children() override;
  // The branches in order, for code that walks the graph (an empty branch is the identity;
  // children() leaves empty ones out).
  const std::vector<std::pair<std::string, std::unique_ptr<Sequential>>>& branches() const {
    return branches_;
  }
 private:
  std::vector<std::pair<std::string, std::unique_ptr<Sequential>>> branches_;
  std::vector<int64_t> widths_;  // each branch's channels in the last forward
};

struct GroupNormOptions {
  int64_t num_groups = 1, num_channels = 1;  // num_channels % num_groups == 0
  double eps = 1e-5;
  bool affine = true;
};

// Group normalization with torch.nn.GroupNorm semantics (see docs/normalization.md).
// Represents: (N, C, *) normalized per (sample, group of C / num_groups consecutive channels)
// over the group's channels and positions, then a per-channel affine. No running statistics:
// training and evaluation compute the same thing. Requires C == num_channels.
class GroupNorm : public Module {
 public:
  explicit GroupNorm(const GroupNormOptions& o);
  std::string kind() const override { return "GroupNorm"; }
  std::string describe() const override;
  Shape output_shape(const Shape& in) const override;
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& dy) override;
  void release_saved() override { input_ = Tensor(); }
  std::vector<Parameter*> own_parameters() override;
  GroupNormOptions opt;
  Parameter weight, bias;  // (C,): init 1 and 0, when affine
 private:
  Tensor input_, mean_, var_, invstd_;  // statistics (N, G)
};

struct LayerNormOptions {
  std::vector<int64_t> normalized_shape{1};  // the trailing dimensions normalized over
  double eps = 1e-5;
  bool elementwise_affine = true;
};

// Layer normalization with torch.nn.LayerNorm semantics (see docs/normalization.md).
// Represents: each sample's (or row's) values over the trailing dimensions normalized_shape
// normalized by their own mean and variance, then an affine with one weight and bias per
// position of normalized_shape. No running statistics. Requires the input to end in
// normalized_shape with at least one leading (batch) dimension before it.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(const LayerNormOptions& o);
  std::string kind() const override { return "LayerNorm"; }
  std::string describe() const override;
  Shape output_shape(const Shape& in) const override;
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& dy) override;
  void release_saved() override { input_ = Tensor(); }
  std::vector<Parameter*> own_parameters() override;
  LayerNormOptions opt;
  Parameter weight, bias;  // normalized_shape: init 1 and 0, when elementwise_affine
 private:
  Tensor input_, mean_, var_, invstd_;  // statistics, one per row
};

struct InstanceNormOptions {
  int dims = 2;  // 1: InstanceNorm1d on (N, C, L); 2: InstanceNorm2d on (N, C, H, W)
  int64_t num_features = 1;
  double eps = 1e-5;
  double momentum = 0.1;  // no cumulative average: PyTorch's InstanceNorm refuses momentum=None
  bool affine = false;
  bool track_running_stats = false;
};

// Instance normalization with torch.nn.InstanceNorm1d/2d semantics (see
// docs/normalization.md): per (sample, channel) over the positions, the GroupNorm kernels with
// one group per channel. With track_running_stats, training updates running_mean/running_var
// (the batch average of the per-instance statistics, unbiased variance) and evaluation
// normalizes with them; without, the instance statistics are used in evaluation too.
// num_batches_tracked exists (state_dict compatibility) but, as in PyTorch, is never advanced.
class InstanceNorm : public Module {
 public:
  explicit InstanceNorm(const InstanceNormOptions& o);
  std::string kind() const override { return opt.dims == 1 ? "InstanceNorm1d" : "InstanceNorm2d"; }
  std::string describe() const override;
  Shape output_shape(const Shape& in) const override;
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& dy) override;
  void release_saved() override { input_ = Tensor(); }
  std::vector<Parameter*> own_parameters() override;
  std::vector<Buffer> own_buffers() override;
  InstanceNormOptions opt;
  Parameter weight, bias;            // (C,): init 1 and 0, when affine
  Tensor running_mean, running_var;  // init 0 and 1, when track_running_stats
  int64_t num_batches_tracked = 0;
 private:
  Tensor input_, mean_, var_, invstd_;  // instance statistics (N, C)
  bool used_input_stats_ = false;
};

struct BatchRenormOptions {
  int dims = 2;                           // 1: BatchRenorm1d on (N, C) or (N, C, L); 2: (N, C, H, W)
  int64_t num_features = 1;
  double eps = 1e-5;
  std::optional<double> momentum = 0.01;  // weight of the new batch; nullopt: cumulative average
  double r_max = 3.0, d_max = 5.0;
  bool affine = true;
  // Clipping schedule over training steps t = num_batches_tracked before the batch: plain
  // BatchNorm (r = 1, d = 0) for t < warmup_start, then the limits rise linearly (r_max from 1,
  // d_max from 0) and reach their values at t = warmup_end. 0, 0: the full limits from step 0.
  int64_t warmup_start = 0, warmup_end = 0;
};

// Batch Renormalization (Ioffe 2017; see docs/normalization.md and src/kernels/batchrenorm.h).
// Represents: BatchNorm whose training output is corrected towards the running statistics,
// y = gamma * ((x - mean_B) / sigma_B * r + d) + beta, r = clip(sigma_B / sigma, 1/r_max,
// r_max), d = clip((mean_B - running_mean) / sigma, -d_max, d_max), r and d constants in
// backward. Always tracks running statistics (updated as BatchNorm's, unbiased variance);
// evaluation is BatchNorm's evaluation. State_dict as BatchNorm's: weight, bias (when affine),
// running_mean, running_var, num_batches_tracked.
class BatchRenorm : public Module {
 public:
  explicit BatchRenorm(const BatchRenormOptions& o);
  std::string kind() const override { return opt.dims == 1 ? "BatchRenorm1d" : "BatchRenorm2d"; }
  std::string describe() const override;
  Shape output_shape(const Shape& in) const override;
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& dy) override;
  void release_saved() override { input_ = Tensor(); }
  std::vector<Parameter*> own_parameters() override;
  std::vector<Buffer> own_buffers() override;
  // The clipping limits the next training batch uses (the warmup schedule at
  // t = num_batches_tracked).
  double current_r_max() const;
  double current_d_max() const;
  BatchRenormOptions opt;
  Parameter weight, bias;            // gamma (init 1), beta (init 0), when affine
  Tensor running_mean, running_var;  // init 0 and 1
  int64_t num_batches_tracked = 0;
  Tensor last_r, last_d;             // (C,): r and d of the last training forward
 private:
  Tensor input_, mean_, var_, invstd_;
  bool used_batch_stats_ = false;
};

struct GhostBatchNormOptions {
  int dims = 2;  // 1: GhostBatchNorm1d on (N, C) or (N, C, L); 2: GhostBatchNorm2d on (N, C, H, W)
  int64_t num_features = 1;
  int64_t virtual_batch_size = 32;
  double eps = 1e-5;
  std::optional<double> momentum = 0.1;  // nullopt: cumulative average
  bool affine = true;
  bool track_running_stats = true;
};

// Ghost batch normalization (Hoffer et al. 2017; see docs/normalization.md).
// Represents: BatchNorm applied separately to consecutive virtual batches of
// virtual_batch_size samples (the last one holds the remainder and may be smaller), each
// normalized by its own statistics; in training the running statistics are updated once per
// virtual batch, in order (num_batches_tracked counts virtual batches). Evaluation with
// running statistics is BatchNorm's; without tracking, evaluation uses the virtual batches'
// statistics as training does. Requires more than one value per channel in every virtual batch
// whose statistics are used.
class GhostBatchNorm : public Module {
 public:
  explicit GhostBatchNorm(const GhostBatchNormOptions& o);
  std::string kind() const override { return opt.dims == 1 ? "GhostBatchNorm1d" : "GhostBatchNorm2d"; }
  std::string describe() const override;
  Shape output_shape(const Shape& in) const override;
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& dy) override;
  void release_saved() override { input_ = Tensor(); }
  std::vector<Parameter*> own_parameters() override;
  std::vector<Buffer> own_buffers() override;
  GhostBatchNormOptions opt;
  Parameter weight, bias;            // gamma (init 1), beta (init 0), when affine
  Tensor running_mean, running_var;  // init 0 and 1, when track_running_stats
  int64_t num_batches_tracked = 0;
 private:
  Tensor input_, mean_, var_, invstd_;  // statistics (virtual batches, C)
  bool used_batch_stats_ = false;
};

// FrozenBatchNorm2d with torchvision.ops.FrozenBatchNorm2d semantics (see
// docs/normalization.md). Represents: a fixed per-channel affine map of (N, C, H, W),
// y = (x - running_mean) * weight / sqrt(running_var + eps) + bias, the same in training and
// evaluation. weight, bias, running_mean, running_var are all buffers (nothing is trained, no
// num_batches_tracked); backward gives dx = dy * weight / sqrt(running_var + eps).
class FrozenBatchNorm : public Module {
 public:
  explicit FrozenBatchNorm(int64_t num_features, double eps = 1e-5);
  std::string kind() const override { return "FrozenBatchNorm2d"; }
  std::string describe() const override;
  Shape output_shape(const Shape& in) const override;
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& dy) override;
  void release_saved() override { input_ = Tensor(); }
  std::vector<Buffer> own_buffers() override;
  int64_t num_features;
  double eps;
  Tensor weight, bias, running_mean, running_var;  // (C,): init 1, 0, 0, 1
 private:
  Tensor input_;
};

}  // namespace normnet
