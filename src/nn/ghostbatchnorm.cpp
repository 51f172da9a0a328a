// GhostBatchNorm1d/2d: BatchNorm over consecutive virtual batches; see docs/normalization.md.
// No new math: every virtual batch goes through the BatchNorm kernels on its slice of the
// (contiguous, NCHW) input, which is the contiguous range of samples [b, e).
#include <algorithm>
#include <sstream>

#include "kernels/batchnorm.h"
#include "normnet/error.h"
#include "normnet/layers.h"
#include "nn/norm_common.h"

namespace normnet {

namespace {
// The virtual batch [b, e) of (N, C, S) as a BatchNormShape.
kernels::BatchNormShape chunk_shape(const Shape& in, int64_t b, int64_t e) {
  kernels::BatchNormShape s = norm::channel_shape(in);
  s.n = e - b;
  return s;
}
}  // namespace

GhostBatchNorm::GhostBatchNorm(const GhostBatchNormOptions& o) : opt(o) {
  norm::check_batchnorm_options("GhostBatchNorm", o.num_features, o.eps, o.momentum);
  check(o.virtual_batch_size > 0, "GhostBatchNorm: virtual_batch_size must be positive, got ",
        o.virtual_batch_size);
  if (opt.affine) norm::init_affine(weight, bias, Shape{o.num_features});
  if (opt.track_running_stats) norm::init_running_stats(running_mean, running_var, o.num_features);
}

std::string GhostBatchNorm::describe() const {
  std::ostringstream s;
  s << kind() << "(" << opt.num_features << ", virtual_batch_size=" << opt.virtual_batch_size;
  if (opt.eps != 1e-5) s << ", eps=" << opt.eps;
  if (!opt.momentum) s << ", momentum=None";
  else if (*opt.momentum != 0.1) s << ", momentum=" << *opt.momentum;
  if (!opt.affine) s << ", affine=False";
  if (!opt.track_running_stats) s << ", track_running_stats=False";
  s << ")";
  return s.str();
}

Shape GhostBatchNorm::output_shape(const Shape& in) const {
  norm::check_batchnorm_input(label(), opt.dims, opt.num_features, in);
  return in;
}

Tensor GhostBatchNorm::forward(const Tensor& x) {
  output_shape(x.shape());
  const Shape& shape = x.shape();
  const int64_t N = shape[0], C = shape[1], V = opt.virtual_batch_size;
  input_ = x.contiguous();
  Tensor out(shape);
  const float* gamma = opt.affine ? weight.value.data() : nullptr;
  const float* beta = opt.affine ? bias.value.data() : nullptr;
  used_batch_stats_ = training_ || !opt.track_running_stats;
  const kernels::BatchNormShape whole = chunk_shape(shape, 0, N);
  if (whole.count() == 0) return out;  // no virtual batch: nothing normalized, nothing counted
  if (!used_batch_stats_) {
    kernels::batchnorm_forward_eval(out.data(), input_.data(), running_mean.data(),
                                    running_var.data(), gamma, beta, opt.eps, whole);
    return out;
  }
  const int64_t K = (N + V - 1) / V, per_sample = C * whole.spatial;
  // Every virtual batch needs more than one value per channel; the last (the remainder) is the
  // smallest.
  const int64_t last = N - (K - 1) * V;
  check(last * whole.spatial > 1, label(), ": expected more than 1 value per channel in every virtual batch when ",
        training_ ? "training" : "using batch statistics (track_running_stats off)", ", got input ",
        shape.str(), " whose last virtual batch (virtual_batch_size ", V, ") holds ", last,
        " sample", last == 1 ? "" : "s");
  mean_ = Tensor(Shape{K, C});
  var_ = Tensor(Shape{K, C});
  invstd_ = Tensor(Shape{K, C});
  for (int64_t k = 0; k < K; ++k) {
    const int64_t b = k * V, e = std::min(N, b + V);
    const kernels::BatchNormShape s = chunk_shape(shape, b, e);
    float* mean = mean_.data() + k * C;
    float* var = var_.data() + k * C;
    kernels::batchnorm_forward_train(out.data() + b * per_sample, mean, var, invstd_.data() + k * C,
                                     input_.data() + b * per_sample, gamma, beta, opt.eps, s);
    if (training_ && opt.track_running_stats) {  // once per virtual batch, in order
      ++num_batches_tracked;
      const double factor =
          opt.momentum ? *opt.momentum : 1.0 / static_cast<double>(num_batches_tracked);
      kernels::batchnorm_update_running(running_mean.data(), running_var.data(), mean, var, C,
                                        s.count(), factor);
    }
  }
  return out;
}

Tensor GhostBatchNorm::backward(const Tensor& dy) {
  check(input_.defined(), label(), ": backward called before forward");
  const Shape& shape = input_.shape();
  const int64_t N = shape[0], C = shape[1], V = opt.virtual_batch_size;
  Tensor dx(shape);
  const kernels::BatchNormShape whole = chunk_shape(shape, 0, N);
  if (whole.count() == 0) return dx;
  Tensor g = dy.contiguous();
  float* dgamma = opt.affine ? weight.grad.data() : nullptr;
  float* dbeta = opt.affine ? bias.grad.data() : nullptr;
  const float* gamma = opt.affine ? weight.value.data() : nullptr;
  if (!used_batch_stats_) {
    kernels::batchnorm_backward_eval(dx.data(), dgamma, dbeta, g.data(), input_.data(),
                                     running_mean.data(), running_var.data(), gamma, opt.eps, whole);
    return dx;
  }
  const int64_t per_sample = C * whole.spatial;
  // Parameter gradients are the sum over the virtual batches (each kernel call adds its own).
  for (int64_t k = 0; k * V < N; ++k) {
    const int64_t b = k * V, e = std::min(N, b + V);
    kernels::batchnorm_backward_train(dx.data() + b * per_sample, dgamma, dbeta,
                                      g.data() + b * per_sample, input_.data() + b * per_sample,
                                      mean_.data() + k * C, invstd_.data() + k * C, gamma,
                                      chunk_shape(shape, b, e));
  }
  return dx;
}

std::vector<Parameter*> GhostBatchNorm::own_parameters() {
  if (opt.affine) return {&weight, &bias};
  return {};
}

std::vector<Buffer> GhostBatchNorm::own_buffers() {
  if (!opt.track_running_stats) return {};
  return {Buffer{"running_mean", &running_mean, nullptr}, Buffer{"running_var", &running_var, nullptr},
          Buffer{"num_batches_tracked", nullptr, &num_batches_tracked}};
}

}  // namespace normnet
