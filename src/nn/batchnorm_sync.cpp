// BatchNorm's SyncBatchNorm path (BatchNorm::sync set, training): statistics over the global
// batch of every rank, merged from per-rank (count, mean, M2) in rank order, and a backward whose
// two per-channel gradient sums are added over the ranks. The math is in
// kernels/batchnorm_sync.h; every rank computes the same statistics and sums bit for bit.
// A rank with an empty batch still takes part in both exchanges, so nothing waits forever.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/batchnorm.h"
#include "kernels/batchnorm_sync.h"
#include "normnet/distributed.h"
#include "normnet/error.h"
#include "normnet/layers.h"
#include "nn/norm_common.h"

namespace normnet {

using norm::channel_shape;

void BatchNorm::run_forward_sync(Tensor& out, const float* residual, uint64_t* mask) {
  const kernels::BatchNormShape s = channel_shape(input_.shape());
  const int64_t C = s.c, K = sync->size(), per_rank = 2 * C + 1;
  // This rank's mean[C], M2[C], count; then every rank's, in rank order.
  std::vector<double> mine(static_cast<size_t>(per_rank), 0.0);
  if (s.count() > 0) kernels::batchnorm_local_moments(mine.data(), mine.data() + C, input_.data(), s);
  mine[2 * C] = static_cast<double>(s.count());
  std::vector<double> all(static_cast<size_t>(per_rank * K));
  sync->allgather(mine.data(), all.data(), per_rank * static_cast<int64_t>(sizeof(double)));
  double total = 0.0;
  for (int64_t r = 0; r < K; ++r) total += all[r * per_rank + 2 * C];
  sync_count_ = static_cast<int64_t>(total);
  check(sync_count_ > 1, label(), ": expected more than 1 value per channel over all ", K,
        " ranks when training with --sync-bn, got ", sync_count_, " (this rank's input ",
        input_.shape().str(), ")");
  mean_ = Tensor(Shape{C});
  var_ = Tensor(Shape{C});
  invstd_ = Tensor(Shape{C});
  std::vector<double> invstd(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    double n = 0.0, mean = 0.0, m2 = 0.0;
    for (int64_t r = 0; r < K; ++r) {
      const double* p = all.data() + r * per_rank;
      kernels::merge_moments(n, mean, m2, p[2 * C], p[c], p[C + c]);
    }
    const double var = std::max(0.0, m2 / n);
    mean_.data()[c] = static_cast<float>(mean);
    var_.data()[c] = static_cast<float>(var);
    invstd[c] = 1.0 / std::sqrt(var + opt.eps);
    invstd_.data()[c] = static_cast<float>(invstd[c]);
  }
  const float* gamma = opt.affine ? weight.value.data() : nullptr;
  const float* beta = opt.affine ? bias.value.data() : nullptr;
  if (s.count() > 0)  // rounded as the one-process kernels round it
    kernels::batchnorm_normalize_given(out.data(), mask, input_.data(), residual, mean_.data(),
                                       invstd.data(), gamma, beta, epilogue_, s);
  if (opt.track_running_stats) {
    ++num_batches_tracked;
    const double factor = opt.momentum ? *opt.momentum : 1.0 / static_cast<double>(num_batches_tracked);
    kernels::batchnorm_update_running(running_mean.data(), running_var.data(), mean_.data(),
                                      var_.data(), C, sync_count_, factor);
  }
}

std::pair<Tensor, Tensor> BatchNorm::run_backward_sync(const Tensor& dy, bool residual) {
  const kernels::BatchNormShape s = channel_shape(input_.shape());
  check(dy.shape() == input_.shape(), label(), ": the output gradient is ", dy.shape().str(),
        " but the input was ", input_.shape().str());
  const int64_t C = s.c;
  Tensor dx = Tensor::empty(input_.shape());
  Tensor dres = residual ? Tensor::empty(input_.shape()) : Tensor();
  const Tensor g = dy.contiguous();
  const uint64_t* mask = epilogue_ ? relu_mask_.data() : nullptr;
  // This rank's sum g[C], sum g * (x - mean)[C]; then the sums over the ranks.
  std::vector<double> local(static_cast<size_t>(2 * C), 0.0);
  if (s.count() > 0)
    kernels::batchnorm_grad_sums(local.data(), local.data() + C, g.data(), mask, input_.data(),
                                 mean_.data(), s);
  std::vector<double> global = local;
  sum_over_ranks(*sync, global.data(), 2 * C);
  kernels::batchnorm_backward_given_sums(
      dx.data(), residual ? dres.data() : nullptr, opt.affine ? weight.grad.data() : nullptr,
      opt.affine ? bias.grad.data() : nullptr, g.data(), mask, input_.data(), mean_.data(),
      invstd_.data(), opt.affine ? weight.value.data() : nullptr, local.data(), local.data() + C,
      global.data(), global.data() + C, sync_count_, s);
  return {dx, dres};
}

}  // namespace normnet
