// The training loop. Each step: gather the batch (and augment it), check it is finite, set the
// scheduled learning rate, forward and loss (check), backward (check the gradient norm, clip),
// update (check parameters and buffers), then callbacks. Everything random comes from one
// generator drawn in a fixed order, and the run's position is a TrainProgress, so a run
// continued from a checkpoint repeats the uninterrupted one bit for bit. Data parallel
// (cfg.comm, distributed.h), each rank runs its shard of the batch and the gradients, metrics
// and buffers are exchanged at fixed points, so every rank draws and updates identically.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <sstream>

#include "normnet/distributed.h"
#include "normnet/error.h"
#include "normnet/train.h"
#include "train/model_state.h"

namespace normnet {

double train_step(Model& m, CrossEntropyLoss& loss, Optimizer& opt, const Tensor& x,
                  const std::vector<int32_t>& y, int64_t* correct) {
  opt.zero_grad();
  Tensor logits = m.net->forward(x);
  const double l = loss.forward(logits, y);
  m.net->backward(loss.backward());
  opt.step();
  if (correct) {
    const int64_t K = logits.dim(1);
    const float* z = logits.data();
    int64_t c = 0;
    for (size_t i = 0; i < y.size(); ++i)
      c += (std::max_element(z + i * K, z + (i + 1) * K) - (z + i * K)) == y[i];
    *correct = c;
  }
  return l;
}

TrainProgress initial_progress(const TrainConfig& cfg) {
  TrainProgress p;
  p.rng = p.rng_epoch = Rng(cfg.seed).state();
  return p;
}

namespace {

// Index of the first element of t (contiguous) that is not finite, or -1.
int64_t first_nonfinite(const Tensor& t) {
  const float* v = t.data();
  for (int64_t i = 0, n = t.numel(); i < n; ++i)
    if (!std::isfinite(v[i])) return i;
  return -1;
}

std::string value_str(double v) {
  if (std::isnan(v)) return "nan";
  std::ostringstream s;
  s << v;
  return s.str();
}

// "epoch 2, step 5 of 32 (step 37 of the run)"
std::string where(int64_t epoch, int64_t s, int64_t steps_per_epoch, int64_t step) {
  return "epoch " + std::to_string(epoch) + ", step " + std::to_string(s + 1) + " of " +
         std::to_string(steps_per_epoch) + " (step " + std::to_string(step + 1) + " of the run)";
}

constexpr const char* kAdvice = " (try a lower learning rate or --clip-grad-norm)";

}  // namespace

std::vector<EpochMetrics> train(Model& m, const Dataset& data, const Dataset& test,
                                const TrainConfig& cfg, const TrainCallbacks& cb) {
  Optimizer opt(m.net->named_parameters(), cfg.optimizer);
  return train(m, data, test, cfg, cb, opt, initial_progress(cfg));
}

std::vector<EpochMetrics> train(Model& m, const Dataset& data, const Dataset& test,
                                const TrainConfig& cfg, const TrainCallbacks& cb, Optimizer& opt,
                                TrainProgress p) {
  check(cfg.batch_size > 0, "batch size must be positive, got ", cfg.batch_size);
  check(cfg.epochs >= 0, "epochs must be non-negative, got ", cfg.epochs);
  check(cfg.augment == "none" || cfg.augment == "crop-flip", "unknown augmentation '", cfg.augment,
        "' (expected none or crop-flip)");
  check(cfg.clip_grad_norm >= 0 && std::isfinite(cfg.clip_grad_norm),
        "gradient clipping: the maximum norm must be positive and finite, got ", cfg.clip_grad_norm);
  check(cfg.checkpoint_every >= 0, "checkpoint interval must be non-negative, got ", cfg.checkpoint_every);
  check(data.size() > 0, "the training set is empty");
  Shape want = m.batch_shape(data.size());
  check(data.images.shape() == want, "training images have shape ", data.images.shape().str(),
        " but the model takes ", want.str());
  for (size_t i = 0; i < data.labels.size(); ++i)
    check(data.labels[i] >= 0 && data.labels[i] < m.classes, "training label ", data.labels[i],
          " at index ", i, " is outside [0, ", m.classes, ") for a model of ", m.classes, " classes");
  using clock = std::chrono::steady_clock;
  const int64_t N = data.size();
  const int64_t steps_per_epoch = (N + cfg.batch_size - 1) / cfg.batch_size;
  const int64_t total_steps = steps_per_epoch * cfg.epochs;
  check(p.epoch >= 0 && p.step_in_epoch >= 0 && p.step_in_epoch < steps_per_epoch &&
            p.step == p.epoch * steps_per_epoch + p.step_in_epoch &&
            static_cast<int64_t>(p.history.size()) == p.epoch &&
            (p.epoch < cfg.epochs || (p.epoch == cfg.epochs && p.step_in_epoch == 0)),
        "cannot continue training from epoch ", p.epoch, " + ", p.step_in_epoch, " steps (step ", p.step,
        ", ", p.history.size(), " epochs of metrics) with ", steps_per_epoch, " steps per epoch and ",
        cfg.epochs, " epochs");
  check(opt.steps() == p.step, "cannot continue training at step ", p.step, ": the optimizer has taken ",
        opt.steps(), " steps");
  // Parameters are initialized by the caller (Model::init_parameters or a checkpoint).
  const auto params = m.net->named_parameters();
  const auto buffers = m.net->named_buffers();
  ForwardSideEffects before_step(*m.net);  // for the diagnosis of a non-finite loss
  CrossEntropyLoss loss(cfg.label_smoothing);
  m.net->train();
  set_input_is_data(*m.net);  // conv1 skips the gradient of the images
  Rng rng;
  rng.set_state(p.rng);
  Tensor batch, full_batch;
  std::vector<int32_t> labels, full_labels;
  std::vector<int64_t> order(static_cast<size_t>(N));
  const int ranks = cfg.comm ? cfg.comm->size() : 1;
  const bool dist = ranks > 1;
#ifdef NDEBUG
  const bool check_hash = dist && cfg.check_replicas;
#else
  const bool check_hash = dist;
#endif
  std::vector<float> grad_scratch;
  for (int64_t epoch = p.epoch + 1; epoch <= cfg.epochs; ++epoch) {
    if (p.step_in_epoch == 0) {
      p.rng_epoch = rng.state();
      p.loss_sum = 0.0;
      p.correct = p.seen = 0;
    }
    // The epoch's order from the generator as it was at the epoch's start; mid-epoch, the
    // generator then goes back to where it stood.
    rng.set_state(p.rng_epoch);
    if (cfg.shuffle) order = shuffled_indices(N, rng);
    else
      for (int64_t i = 0; i < N; ++i) order[i] = i;
    if (p.step_in_epoch > 0) rng.set_state(p.rng);
    const auto t0 = clock::now();
    const int64_t seen_before = p.seen;
    for (int64_t s = p.step_in_epoch; s < steps_per_epoch; ++s) {
      const int64_t b = s * cfg.batch_size, count = std::min(cfg.batch_size, N - b);
      // This rank's part of the global batch (all of it on one process). To augment, the whole
      // batch is gathered and augmented, so the generator advances as on one process.
      const Shard part = dist ? shard_of(count, cfg.comm->rank(), ranks) : Shard{0, count};
      if (dist && cfg.augment == "crop-flip") {
        gather_batch(full_batch, full_labels, data, order.data() + b, count);
        augment_crop_flip(full_batch, cfg.crop_pad, rng);
        batch = full_batch.slice(part.begin, part.begin + part.count);
        labels.assign(full_labels.begin() + part.begin, full_labels.begin() + part.begin + part.count);
      } else {
        gather_batch(batch, labels, data, order.data() + b + part.begin, part.count);
        if (cfg.augment == "crop-flip") augment_crop_flip(batch, cfg.crop_pad, rng);
      }
      if (const int64_t bad = first_nonfinite(batch); bad >= 0) {
        const int64_t per = batch.numel() / part.count, i = part.begin + bad / per;
        fail("training stopped at ", where(epoch, s, steps_per_epoch, p.step), ": training image ",
             order[b + i], " (sample ", i, " of the batch) holds ", value_str(batch.data()[bad]),
             " (value ", bad % per, " of its ", per, ")");
      }
      opt.set_lr(scheduled_lr(cfg.schedule, cfg.optimizer.lr, p.step, total_steps, steps_per_epoch));
      opt.zero_grad();
      before_step.save();
      Tensor logits = m.net->forward(batch);
      double l = part.count > 0 ? loss.forward(logits, labels) : 0.0;
      int64_t correct = 0;
      const int64_t K = logits.dim(1);
      const float* z = logits.data();
      for (int64_t i = 0; i < part.count; ++i)
        correct += (std::max_element(z + i * K, z + (i + 1) * K) - (z + i * K)) == labels[i];
      if (dist) {  // the global batch's mean loss and correct count, the same on every rank
        double sums[2] = {l * static_cast<double>(part.count), static_cast<double>(correct)};
        sum_over_ranks(*cfg.comm, sums, 2);
        l = sums[0] / static_cast<double>(count);
        correct = static_cast<int64_t>(sums[1]);
      }
      if (!std::isfinite(l)) {
        // Run the forward again layer by layer, from the state it started from (on this rank's
        // part alone: the ranks may stop at different layers, so no exchange).
        if (dist) set_sync_batchnorm(*m.net, nullptr);
        before_step.restore();
        const std::string first = first_nonfinite_module(m, batch);
        fail("training stopped at ", where(epoch, s, steps_per_epoch, p.step), ": the loss is ",
             value_str(l), "; ",
             first.empty() ? std::string("every layer's output is finite (the logits are too large)")
                           : "the first non-finite output is that of " + first,
             kAdvice);
      }
      Tensor dlogits = part.count > 0 ? loss.backward() : Tensor(logits.shape());
      if (dist && part.count != count) {
        // d(global mean loss)/d(logits) = (part / count) d(this part's mean loss)/d(logits).
        const double w = static_cast<double>(part.count) / static_cast<double>(count);
        float* g = dlogits.data();
        for (int64_t i = 0; i < dlogits.numel(); ++i) g[i] = static_cast<float>(g[i] * w);
      }
      m.net->backward(dlogits);
      if (dist) sum_gradients(*cfg.comm, params, grad_scratch);
      const double norm = cfg.clip_grad_norm > 0 ? clip_grad_norm(params, cfg.clip_grad_norm)
                                                 : grad_norm(params);
      if (!std::isfinite(norm)) {
        std::string first;
        for (auto it = params.rbegin(); it != params.rend() && first.empty(); ++it)
          if (first_nonfinite(it->second->grad) >= 0) first = it->first;
        // A layer may hide a non-finite value from the loss (a max pool can drop an inf, a
        // gradient can be non-finite while every output is finite): look for it.
        if (dist) set_sync_batchnorm(*m.net, nullptr);
        before_step.restore();
        const std::string first_out = first_nonfinite_module(m, batch);
        fail("training stopped at ", where(epoch, s, steps_per_epoch, p.step),
             ": the gradients are not finite (the loss is ", value_str(l), "); ",
             first_out.empty() ? std::string("every layer's output is finite")
                               : "the first non-finite output is that of " + first_out +
                                     " (a later layer hid it from the loss)",
             "; the first non-finite gradient in backward order is that of parameter '", first, "'",
             kAdvice);
      }
      opt.step();
      for (auto& [name, prm] : params)
        if (const int64_t bad = first_nonfinite(prm->value); bad >= 0)
          fail("training stopped at ", where(epoch, s, steps_per_epoch, p.step), ": the update (lr ",
               value_str(opt.lr()), ", gradient norm ", value_str(norm), ") made parameter '", name,
               "' non-finite (", value_str(prm->value.data()[bad]), " at index ", bad, ")", kAdvice);
      for (auto& [name, buf] : buffers)
        if (buf.f32)
          if (const int64_t bad = first_nonfinite(*buf.f32); bad >= 0)
            fail("training stopped at ", where(epoch, s, steps_per_epoch, p.step), ": buffer '", name,
                 "' became non-finite (", value_str(buf.f32->data()[bad]), " at index ", bad, ")",
                 kAdvice);
      if (check_hash) check_replicas(*cfg.comm, params, where(epoch, s, steps_per_epoch, p.step));
      p.loss_sum += l * static_cast<double>(count);
      p.correct += correct;
      p.seen += count;
      ++p.step;
      p.step_in_epoch = s + 1;
      if (cb.on_step) {
        const double secs = std::chrono::duration<double>(clock::now() - t0).count();
        const double rate = secs > 0 ? static_cast<double>(p.seen - seen_before) / secs : 0.0;
        cb.on_step({epoch, s + 1, steps_per_epoch, p.seen, p.loss_sum / p.seen,
                    static_cast<double>(p.correct) / p.seen, rate, secs});
      }
      if (cfg.checkpoint_every > 0 && p.step % cfg.checkpoint_every == 0 && s + 1 < steps_per_epoch) {
        if (dist) average_buffers(*cfg.comm, *m.net);
        if (cb.on_checkpoint) {
          p.rng = rng.state();
          cb.on_checkpoint(p, opt);
        }
      }
    }
    const double secs = std::chrono::duration<double>(clock::now() - t0).count();
    EpochMetrics em;
    em.epoch = epoch;
    em.train_loss = p.loss_sum / static_cast<double>(p.seen);
    em.train_accuracy = static_cast<double>(p.correct) / static_cast<double>(p.seen);
    em.seconds = secs;
    em.images_per_second = secs > 0 ? static_cast<double>(p.seen - seen_before) / secs : 0.0;
    em.lr = opt.lr();
    if (dist) average_buffers(*cfg.comm, *m.net);
    if (test.size() > 0) {
      const EvalResult r = dist ? evaluate_over_ranks(*cfg.comm, m, test) : evaluate(m, test);
      em.test_loss = r.loss;
      em.test_accuracy = r.accuracy;
    }
    p.history.push_back(em);
    p.epoch = epoch;
    p.step_in_epoch = 0;
    p.rng = p.rng_epoch = rng.state();
    p.loss_sum = 0.0;
    p.correct = p.seen = 0;
    if (cb.on_epoch) cb.on_epoch(em, opt, rng);
    if (cb.on_checkpoint) cb.on_checkpoint(p, opt);
  }
  return p.history;
}

}  // namespace normnet
