// BatchNorm1d/2d with torch.nn semantics; see docs/batchnorm.md for every mode.
#include <sstream>

#include "kernels/batchnorm.h"
#include "kernels/batchnorm_relu.h"
#include "kernels/pool2d.h"
#include "normnet/error.h"
#include "normnet/layers.h"
#include "nn/norm_common.h"

namespace normnet {

using norm::channel_shape;

BatchNorm::BatchNorm(const BatchNormOptions& o) : opt(o) {
  norm::check_batchnorm_options("BatchNorm", o.num_features, o.eps, o.momentum);
  if (opt.affine) norm::init_affine(weight, bias, Shape{o.num_features});
  if (opt.track_running_stats) norm::init_running_stats(running_mean, running_var, o.num_features);
}

std::string BatchNorm::describe() const {
  std::ostringstream s;
  s << kind() << "(" << opt.num_features;
  if (opt.eps != 1e-5) s << ", eps=" << opt.eps;
  if (!opt.momentum) s << ", momentum=None";
  else if (*opt.momentum != 0.1) s << ", momentum=" << *opt.momentum;
  if (!opt.affine) s << ", affine=False";
  if (!opt.track_running_stats) s << ", track_running_stats=False";
  s << ")";
  return s.str();
}

Shape BatchNorm::output_shape(const Shape& in) const {
  norm::check_batchnorm_input(label(), opt.dims, opt.num_features, in);
  return in;
}

Tensor BatchNorm::forward(const Tensor& x) {
  if (fused_relu && fused_pool) return run_forward_pooled(x);
  return run_forward(x, nullptr, fused_relu);
}

Tensor BatchNorm::forward_add_relu(const Tensor& x, const Tensor& residual) {
  check(residual.shape() == x.shape(), label(), ": the residual is ", residual.shape().str(),
        " but the input is ", x.shape().str());
  return run_forward(x, &residual, true);
}

Tensor BatchNorm::backward(const Tensor& dy) {
  check(epilogue_ != 2, label(), ": backward after forward_add_relu (use backward_add_relu)");
  if (pooled_) return run_backward_pooled(dy);
  return run_backward(dy, false).first;
}

// The gradient of maxpool(relu(BN(x))): the fused kernel in training (not synchronized), else
// the full-size gradient at the BN output and the BN + ReLU backward on it.
Tensor BatchNorm::run_backward_pooled(const Tensor& dy) {
  check(input_.defined(), label(), ": backward called before forward");
  const Shape want = fused_pool->output_shape(pool_in_);
  check(dy.shape() == want, label(), ": the gradient is ", dy.shape().str(), ", expected ", want.str());
  const Tensor dp = dy.contiguous();
  const int64_t h = pool_in_[2], w = pool_in_[3];
  const kernels::BatchNormShape s = channel_shape(pool_in_);
  if (used_batch_stats_ && !synced_ && s.count() > 0) {
    Tensor dx = Tensor::empty(pool_in_);  // the kernel writes all of it
    kernels::batchnorm_relu_maxpool_backward_train(
        dx.data(), opt.affine ? weight.grad.data() : nullptr, opt.affine ? bias.grad.data() : nullptr,
        dp.data(), pool_win_.data(), input_.data(), mean_.data(), invstd_.data(),
        opt.affine ? weight.value.data() : nullptr, s, h, w);
    return dx;
  }
  Tensor g = Tensor::empty(pool_in_);
  kernels::relu_maxpool_scatter(g.data(), dp.data(), pool_win_.data(), s.n * s.c, h, w);
  if (synced_) return run_backward(g, false).first;  // with the ReLU mask, which g already obeys
  // g is the BN output's gradient: the plain BN backward (epilogue 0), then back to 1.
  struct Plain {
    int& e;
    ~Plain() { e = 1; }
  } plain{epilogue_};
  epilogue_ = 0;
  return run_backward(g, false).first;
}

std::pair<Tensor, Tensor> BatchNorm::backward_add_relu(const Tensor& dy) {
  check(epilogue_ == 2, label(), ": backward_add_relu without forward_add_relu");
  return run_backward(dy, true);
}

// maxpool(relu(BN(x))) (fused_pool): the fused kernel where it applies, else relu(BN(x)) at
// full size (synchronized BatchNorm) and the pooling kernel after it. Either way pool_win_
// holds the winners, -1 where the pooled value is <= 0 (kernels/batchnorm_relu.h).
Tensor BatchNorm::run_forward_pooled(const Tensor& x) {
  output_shape(x.shape());
  const Shape out_shape = fused_pool->output_shape(x.shape());  // checks the size, naming the pool
  Tensor out = Tensor::empty(out_shape);  // every path below writes all of it
  // and all of the winners: the buffer is reused from step to step, not refilled.
  pool_win_.resize(static_cast<size_t>(out.numel()));
  const int64_t h = x.shape()[2], w = x.shape()[3];
  if ((sync && training_) || channel_shape(x.shape()).count() == 0) {
    const Tensor full = run_forward(x, nullptr, true);
    pool_in_ = x.shape();
    pooled_ = true;
    if (out.numel() == 0) return out;
    kernels::Pool2dShape ps;
    ps.n = x.shape()[0], ps.c = x.shape()[1], ps.h = h, ps.w = w;
    ps.kernel_h = ps.kernel_w = ps.stride_h = ps.stride_w = 2;
    kernels::maxpool2d_forward(out.data(), pool_win_.data(), full.data(), ps);
    for (int64_t j = 0; j < out.numel(); ++j)
      if (out.data()[j] <= 0.0f) pool_win_[j] = -1;
    return out;
  }
  const kernels::BatchNormShape s = channel_shape(x.shape());
  input_ = x.contiguous();
  pool_in_ = x.shape();
  pooled_ = true;
  epilogue_ = 1;
  synced_ = false;
  relu_mask_.clear();
  const float* gamma = opt.affine ? weight.value.data() : nullptr;
  const float* beta = opt.affine ? bias.value.data() : nullptr;
  used_batch_stats_ = training_ || !opt.track_running_stats;
  if (!used_batch_stats_) {
    kernels::batchnorm_relu_maxpool_forward_eval(out.data(), pool_win_.data(), input_.data(),
                                                 running_mean.data(), running_var.data(), gamma,
                                                 beta, opt.eps, s, h, w);
    return out;
  }
  check_batch_stats(x.shape(), s);
  kernels::batchnorm_relu_maxpool_forward_train(out.data(), pool_win_.data(), mean_.data(),
                                                var_.data(), invstd_.data(), input_.data(), gamma,
                                                beta, opt.eps, s, h, w);
  update_running(s);
  return out;
}

// As PyTorch: batch statistics (training, or eval without running stats) need more than one
// value per channel. Allocates mean_, var_, invstd_.
void BatchNorm::check_batch_stats(const Shape& in, const kernels::BatchNormShape& s) {
  check(s.count() > 1, label(), ": expected more than 1 value per channel when ",
        training_ ? "training" : "using batch statistics (track_running_stats off)", ", got input ",
        in.str());
  mean_ = Tensor(Shape{s.c});
  var_ = Tensor(Shape{s.c});
  invstd_ = Tensor(Shape{s.c});
}

void BatchNorm::update_running(const kernels::BatchNormShape& s) {
  if (!training_ || !opt.track_running_stats) return;
  ++num_batches_tracked;
  const double factor = opt.momentum ? *opt.momentum : 1.0 / static_cast<double>(num_batches_tracked);
  kernels::batchnorm_update_running(running_mean.data(), running_var.data(), mean_.data(),
                                    var_.data(), s.c, s.count(), factor);
}

// out = BN(x), relu(BN(x)) or relu(BN(x) + residual); the fused kernels give the same bits as
// the unfused sequence (kernels/batchnorm_relu.h).
Tensor BatchNorm::run_forward(const Tensor& x, const Tensor* residual, bool relu) {
  output_shape(x.shape());
  pooled_ = false;
  const kernels::BatchNormShape s = channel_shape(x.shape());
  input_ = x.contiguous();
  Tensor res = residual ? residual->contiguous() : Tensor();
  const float* r = residual ? res.data() : nullptr;
  epilogue_ = residual ? 2 : relu ? 1 : 0;
  Tensor out = Tensor::empty(x.shape());  // every kernel below writes all of it
  const float* gamma = opt.affine ? weight.value.data() : nullptr;
  const float* beta = opt.affine ? bias.value.data() : nullptr;
  used_batch_stats_ = training_ || !opt.track_running_stats;
  relu_mask_.assign(epilogue_ ? kernels::relu_mask_words(x.numel()) : 0, 0);
  uint64_t* mask = relu_mask_.data();
  synced_ = sync && training_;
  if (synced_) {  // every rank gets here, also one with an empty batch
    run_forward_sync(out, r, mask);
    return out;
  }
  if (s.count() == 0) {
    // Empty batch, as PyTorch: an empty output, running statistics untouched, but the batch
    // is still counted in training (torch increments num_batches_tracked before normalizing).
    if (training_ && opt.track_running_stats) ++num_batches_tracked;
    return out;
  }
  if (!used_batch_stats_) {
    if (epilogue_ == 0)
      kernels::batchnorm_forward_eval(out.data(), input_.data(), running_mean.data(),
                                      running_var.data(), gamma, beta, opt.eps, s);
    else if (epilogue_ == 1)
      kernels::batchnorm_relu_forward_eval(out.data(), mask, input_.data(), running_mean.data(),
                                           running_var.data(), gamma, beta, opt.eps, s);
    else
      kernels::batchnorm_add_relu_forward_eval(out.data(), mask, input_.data(), r,
                                               running_mean.data(), running_var.data(), gamma,
                                               beta, opt.eps, s);
    return out;
  }
  check_batch_stats(x.shape(), s);
  if (epilogue_ == 0)
    kernels::batchnorm_forward_train(out.data(), mean_.data(), var_.data(), invstd_.data(),
                                     input_.data(), gamma, beta, opt.eps, s);
  else if (epilogue_ == 1)
    kernels::batchnorm_relu_forward_train(out.data(), mask, mean_.data(), var_.data(),
                                          invstd_.data(), input_.data(), gamma, beta, opt.eps, s);
  else
    kernels::batchnorm_add_relu_forward_train(out.data(), mask, mean_.data(), var_.data(),
                                              invstd_.data(), input_.data(), r, gamma, beta,
                                              opt.eps, s);
  update_running(s);
  return out;
}

std::pair<Tensor, Tensor> BatchNorm::run_backward(const Tensor& dy, bool residual) {
  check(input_.defined(), label(), ": backward called before forward");
  if (synced_) return run_backward_sync(dy, residual);
  const kernels::BatchNormShape s = channel_shape(input_.shape());
  if (s.count() == 0) return {Tensor(input_.shape()), residual ? Tensor(input_.shape()) : Tensor()};
  Tensor dx = Tensor::empty(input_.shape());  // every kernel below writes all of it
  Tensor dres = residual ? Tensor::empty(input_.shape()) : Tensor();
  Tensor g = dy.contiguous();
  float* dgamma = opt.affine ? weight.grad.data() : nullptr;
  float* dbeta = opt.affine ? bias.grad.data() : nullptr;
  const float* gamma = opt.affine ? weight.value.data() : nullptr;
  const uint64_t* mask = relu_mask_.data();
  float* dr = residual ? dres.data() : nullptr;
  if (used_batch_stats_) {
    if (epilogue_ == 0)
      kernels::batchnorm_backward_train(dx.data(), dgamma, dbeta, g.data(), input_.data(),
                                        mean_.data(), invstd_.data(), gamma, s);
    else if (epilogue_ == 1)
      kernels::batchnorm_relu_backward_train(dx.data(), dgamma, dbeta, g.data(), mask,
                                             input_.data(), mean_.data(), invstd_.data(), gamma, s);
    else
      kernels::batchnorm_add_relu_backward_train(dx.data(), dr, dgamma, dbeta, g.data(), mask,
                                                 input_.data(), mean_.data(), invstd_.data(),
                                                 gamma, s);
  } else {
    if (epilogue_ == 0)
      kernels::batchnorm_backward_eval(dx.data(), dgamma, dbeta, g.data(), input_.data(),
                                       running_mean.data(), running_var.data(), gamma, opt.eps, s);
    else if (epilogue_ == 1)
      kernels::batchnorm_relu_backward_eval(dx.data(), dgamma, dbeta, g.data(), mask,
                                            input_.data(), running_mean.data(), running_var.data(),
                                            gamma, opt.eps, s);
    else
      kernels::batchnorm_add_relu_backward_eval(dx.data(), dr, dgamma, dbeta, g.data(), mask,
                                                input_.data(), running_mean.data(),
                                                running_var.data(), gamma, opt.eps, s);
  }
  return {dx, dres};
}

std::vector<Parameter*> BatchNorm::own_parameters() {
  if (opt.affine) return {&weight, &bias};
  return {};
}

std::vector<Buffer> BatchNorm::own_buffers() {
  if (!opt.track_running_stats) return {};
  return {Buffer{"running_mean", &running_mean, nullptr}, Buffer{"running_var", &running_var, nullptr},
          Buffer{"num_batches_tracked", nullptr, &num_batches_tracked}};
}

}  // namespace normnet
