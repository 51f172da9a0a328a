// BatchRenorm1d/2d: Batch Renormalization (Ioffe 2017); see docs/normalization.md and the
// derivation in src/kernels/batchrenorm.h.
#include <sstream>

#include "kernels/batchrenorm.h"
#include "normnet/error.h"
#include "normnet/layers.h"
#include "nn/norm_common.h"

namespace normnet {

using norm::channel_shape;

BatchRenorm::BatchRenorm(const BatchRenormOptions& o) : opt(o) {
  norm::check_batchnorm_options("BatchRenorm", o.num_features, o.eps, o.momentum);
  check(o.r_max >= 1, "BatchRenorm: r_max must be at least 1, got ", o.r_max);
  check(o.d_max >= 0, "BatchRenorm: d_max must be at least 0, got ", o.d_max);
  check(o.warmup_start >= 0 && o.warmup_end >= o.warmup_start,
        "BatchRenorm: warmup must be [start, end] with 0 <= start <= end, got [", o.warmup_start,
        ", ", o.warmup_end, "]");
  if (opt.affine) norm::init_affine(weight, bias, Shape{o.num_features});
  norm::init_running_stats(running_mean, running_var, o.num_features);
}

std::string BatchRenorm::describe() const {
  std::ostringstream s;
  s << kind() << "(" << opt.num_features;
  if (opt.eps != 1e-5) s << ", eps=" << opt.eps;
  if (!opt.momentum) s << ", momentum=None";
  else if (*opt.momentum != 0.01) s << ", momentum=" << *opt.momentum;
  if (opt.r_max != 3.0) s << ", r_max=" << opt.r_max;
  if (opt.d_max != 5.0) s << ", d_max=" << opt.d_max;
  if (opt.warmup_end > 0) s << ", warmup=[" << opt.warmup_start << ", " << opt.warmup_end << "]";
  if (!opt.affine) s << ", affine=False";
  s << ")";
  return s.str();
}

Shape BatchRenorm::output_shape(const Shape& in) const {
  norm::check_batchnorm_input(label(), opt.dims, opt.num_features, in);
  return in;
}

// Fraction of the full limits in force at step t = num_batches_tracked: 0 before warmup_start,
// rising linearly to 1 at warmup_end.
static double warmup_fraction(const BatchRenormOptions& o, int64_t t) {
  if (t < o.warmup_start) return 0.0;
  if (t >= o.warmup_end) return 1.0;
  return static_cast<double>(t - o.warmup_start) / static_cast<double>(o.warmup_end - o.warmup_start);
}

double BatchRenorm::current_r_max() const {
  return 1.0 + (opt.r_max - 1.0) * warmup_fraction(opt, num_batches_tracked);
}

double BatchRenorm::current_d_max() const {
  return opt.d_max * warmup_fraction(opt, num_batches_tracked);
}

Tensor BatchRenorm::forward(const Tensor& x) {
  output_shape(x.shape());
  const kernels::BatchNormShape s = channel_shape(x.shape());
  input_ = x.contiguous();
  Tensor out(x.shape());
  const float* gamma = opt.affine ? weight.value.data() : nullptr;
  const float* beta = opt.affine ? bias.value.data() : nullptr;
  used_batch_stats_ = training_;
  // An empty batch changes nothing (not counted either: the count drives the warmup).
  if (s.count() == 0) return out;
  if (!training_) {
    kernels::batchnorm_forward_eval(out.data(), input_.data(), running_mean.data(),
                                    running_var.data(), gamma, beta, opt.eps, s);
    return out;
  }
  check(s.count() > 1, label(), ": expected more than 1 value per channel when training, got input ",
        x.shape().str());
  mean_ = Tensor(Shape{s.c});
  var_ = Tensor(Shape{s.c});
  invstd_ = Tensor(Shape{s.c});
  last_r = Tensor(Shape{s.c});
  last_d = Tensor(Shape{s.c});
  const kernels::RenormLimits lim{current_r_max(), current_d_max()};
  kernels::batchrenorm_forward_train(out.data(), mean_.data(), var_.data(), invstd_.data(),
                                     last_r.data(), last_d.data(), input_.data(), gamma, beta,
                                     running_mean.data(), running_var.data(), opt.eps, lim, s);
  ++num_batches_tracked;
  const double factor =
      opt.momentum ? *opt.momentum : 1.0 / static_cast<double>(num_batches_tracked);
  kernels::batchnorm_update_running(running_mean.data(), running_var.data(), mean_.data(),
                                    var_.data(), s.c, s.count(), factor);
  return out;
}

Tensor BatchRenorm::backward(const Tensor& dy) {
  check(input_.defined(), label(), ": backward called before forward");
  const kernels::BatchNormShape s = channel_shape(input_.shape());
  Tensor dx(input_.shape());
  if (s.count() == 0) return dx;
  Tensor g = dy.contiguous();
  float* dgamma = opt.affine ? weight.grad.data() : nullptr;
  float* dbeta = opt.affine ? bias.grad.data() : nullptr;
  const float* gamma = opt.affine ? weight.value.data() : nullptr;
  if (used_batch_stats_)
    kernels::batchrenorm_backward_train(dx.data(), dgamma, dbeta, g.data(), input_.data(),
                                        mean_.data(), invstd_.data(), last_r.data(),
                                        last_d.data(), gamma, s);
  else
    kernels::batchnorm_backward_eval(dx.data(), dgamma, dbeta, g.data(), input_.data(),
                                     running_mean.data(), running_var.data(), gamma, opt.eps, s);
  return dx;
}

std::vector<Parameter*> BatchRenorm::own_parameters() {
  if (opt.affine) return {&weight, &bias};
  return {};
}

std::vector<Buffer> BatchRenorm::own_buffers() {
  return {Buffer{"running_mean", &running_mean, nullptr}, Buffer{"running_var", &running_var, nullptr},
          Buffer{"num_batches_tracked", nullptr, &num_batches_tracked}};
}

}  // namespace normnet
