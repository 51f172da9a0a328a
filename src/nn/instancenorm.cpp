// InstanceNorm1d/2d with torch.nn semantics; see docs/normalization.md for every mode.
// Instance statistics go through the GroupNorm kernels with one group per channel; the running
// statistics (evaluation with track_running_stats) through BatchNorm's evaluation kernels,
// which apply given per-channel statistics to (N, C, S) exactly as needed here.
#include <sstream>

#include "kernels/batchnorm.h"
#include "kernels/groupnorm.h"
#include "normnet/error.h"
#include "normnet/layers.h"
#include "nn/norm_common.h"

namespace normnet {

namespace {
kernels::GroupNormShape in_shape(const Shape& in) {
  kernels::GroupNormShape s;
  s.n = in[0];
  s.c = in[1];
  s.spatial = 1;
  for (int i = 2; i < in.rank; ++i) s.spatial *= in[i];
  s.groups = s.c;  // one group per channel
  return s;
}
kernels::BatchNormShape bn_shape(const kernels::GroupNormShape& g) {
  kernels::BatchNormShape s;
  s.n = g.n;
  s.c = g.c;
  s.spatial = g.spatial;
  return s;
}
}  // namespace

InstanceNorm::InstanceNorm(const InstanceNormOptions& o) : opt(o) {
  const char* k = o.dims == 1 ? "InstanceNorm1d" : "InstanceNorm2d";
  check(o.num_features > 0, k, ": num_features must be positive, got ", o.num_features);
  check(o.eps > 0, k, ": eps must be positive, got ", o.eps);
  check(o.momentum >= 0 && o.momentum <= 1, k, ": momentum must be in [0, 1], got ", o.momentum);
  if (opt.affine) norm::init_affine(weight, bias, Shape{o.num_features});
  if (opt.track_running_stats) norm::init_running_stats(running_mean, running_var, o.num_features);
}

std::string InstanceNorm::describe() const {
  std::ostringstream s;
  s << kind() << "(" << opt.num_features;
  if (opt.eps != 1e-5) s << ", eps=" << opt.eps;
  if (opt.momentum != 0.1) s << ", momentum=" << opt.momentum;
  if (opt.affine) s << ", affine=True";
  if (opt.track_running_stats) s << ", track_running_stats=True";
  s << ")";
  return s.str();
}

Shape InstanceNorm::output_shape(const Shape& in) const {
  if (opt.dims == 2)
    check(in.rank == 4, label(), ": expected 4D input (N, C, H, W), got ", in.str());
  else
    check(in.rank == 3, label(), ": expected 3D input (N, C, L), got ", in.str());
  check(in[1] == opt.num_features, label(), ": expected ", opt.num_features,
        " channels, got input ", in.str());
  return in;
}

Tensor InstanceNorm::forward(const Tensor& x) {
  output_shape(x.shape());
  const kernels::GroupNormShape s = in_shape(x.shape());
  used_input_stats_ = training_ || !opt.track_running_stats;
  // As PyTorch: instance statistics need more than one value per (sample, channel).
  check(!used_input_stats_ || s.spatial != 1, label(),
        ": expected more than 1 spatial element when ",
        training_ ? "training" : "using instance statistics (track_running_stats off)",
        ", got input ", x.shape().str());
  input_ = x.contiguous();
  Tensor out(x.shape());
  if (x.numel() == 0) return out;  // empty batch: empty output, running statistics untouched
  const float* gamma = opt.affine ? weight.value.data() : nullptr;
  const float* beta = opt.affine ? bias.value.data() : nullptr;
  if (!used_input_stats_) {
    kernels::batchnorm_forward_eval(out.data(), input_.data(), running_mean.data(),
                                    running_var.data(), gamma, beta, opt.eps, bn_shape(s));
    return out;
  }
  mean_ = Tensor(Shape{s.n, s.c});
  var_ = Tensor(Shape{s.n, s.c});
  invstd_ = Tensor(Shape{s.n, s.c});
  kernels::groupnorm_forward(out.data(), mean_.data(), var_.data(), invstd_.data(), input_.data(),
                             gamma, beta, opt.eps, s);
  // PyTorch's InstanceNorm updates the running statistics but never num_batches_tracked.
  if (training_ && opt.track_running_stats)
    kernels::instancenorm_update_running(running_mean.data(), running_var.data(), mean_.data(),
                                         var_.data(), s.n, s.c, s.spatial, opt.momentum);
  return out;
}

Tensor InstanceNorm::backward(const Tensor& dy) {
  check(input_.defined(), label(), ": backward called before forward");
  check(dy.shape() == input_.shape(), label(), ": expected output gradient ", input_.shape().str(),
        ", got ", dy.shape().str());
  Tensor dx(input_.shape());
  if (input_.numel() == 0) return dx;
  const kernels::GroupNormShape s = in_shape(input_.shape());
  Tensor g = dy.contiguous();
  float* dgamma = opt.affine ? weight.grad.data() : nullptr;
  float* dbeta = opt.affine ? bias.grad.data() : nullptr;
  const float* gamma = opt.affine ? weight.value.data() : nullptr;
  if (used_input_stats_)
    kernels::groupnorm_backward(dx.data(), dgamma, dbeta, g.data(), input_.data(), mean_.data(),
                                invstd_.data(), gamma, s);
  else
    kernels::batchnorm_backward_eval(dx.data(), dgamma, dbeta, g.data(), input_.data(),
                                     running_mean.data(), running_var.data(), gamma, opt.eps,
                                     bn_shape(s));
  return dx;
}

std::vector<Parameter*> InstanceNorm::own_parameters() {
  if (opt.affine) return {&weight, &bias};
  return {};
}

std::vector<Buffer> InstanceNorm::own_buffers() {
  if (!opt.track_running_stats) return {};
  return {Buffer{"running_mean", &running_mean, nullptr},
          Buffer{"running_var", &running_var, nullptr},
          Buffer{"num_batches_tracked", nullptr, &num_batches_tracked}};
}

}  // namespace normnet
