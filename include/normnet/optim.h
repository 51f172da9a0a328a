// Optimizers with PyTorch's update rules (torch.optim.SGD, Adam, AdamW) and learning-rate
// schedules evaluated per step. Parameters are handed over by the trainer as (name, Parameter*)
// pairs; the optimizer keeps its state per parameter in the same order.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "normnet/module.h"

namespace normnet {

struct OptimizerOptions {
  std::string kind = "sgd";    // sgd | adam | adamw
  double lr = 0.01;
  double momentum = 0.9;       // sgd
  double dampening = 0.0;      // sgd
  bool nesterov = false;       // sgd
  double weight_decay = 0.0;   // sgd, adam: added to the gradient; adamw: decoupled
  bool decay_norm_and_bias = true;  // false: no weight decay on BN parameters and biases
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adam, adamw
};

class Optimizer {
 public:
  Optimizer(std::vector<std::pair<std::string, Parameter*>> params, const OptimizerOptions& o);
  void step();          // one update with the current lr
  void zero_grad();
  void set_lr(double lr) { opt_.lr = lr; }
  double lr() const { return opt_.lr; }
  int64_t steps() const { return steps_; }
  const OptimizerOptions& options() const { return opt_; }
  // State for checkpoints: "<param>.momentum_buffer", "<param>.exp_avg", "<param>.exp_avg_sq".
  std::vector<std::pair<std::string, Tensor*>> state();
  void set_steps(int64_t s) { steps_ = s; }

 private:
  std::vector<std::pair<std::string, Parameter*>> params_;
  OptimizerOptions opt_;
  std::vector<Tensor> m_, v_;  // momentum buffer / exp_avg, exp_avg_sq
  int64_t steps_ = 0;
};

// The total 2-norm of the gradients, sqrt(sum of g^2 over every element of every parameter),
// summed in double in parameter order on one thread: the same bits for any thread count. Not
// finite exactly when some gradient element is not (float squares cannot overflow a double sum).
double grad_norm(const std::vector<std::pair<std::string, Parameter*>>& params);
// torch.nn.utils.clip_grad_norm_(params, max_norm) with norm type 2: when
// c = max_norm / (total + 1e-6) is below 1, every gradient is multiplied by c (rounded to
// float). Returns the total norm before clipping; a non-finite total leaves the gradients as
// they are (the trainer stops on it).
double clip_grad_norm(const std::vector<std::pair<std::string, Parameter*>>& params, double max_norm);

struct ScheduleOptions {
  std::string kind = "constant";  // constant | step | cosine | onecycle
  int64_t warmup_steps = 0;       // linear warm-up from lr/warmup to lr, then the schedule
  int64_t step_size = 1;          // step: decay every step_size epochs...
  double gamma = 0.1;             // ... by gamma
  double min_lr = 0.0;            // cosine: final lr
  double pct_start = 0.3;         // onecycle (PyTorch OneCycleLR defaults, cosine annealing)
  double div_factor = 25.0, final_div_factor = 1e4;
};

// lr at optimizer step `step` (0-based) of `total` steps, `steps_per_epoch` for step decay.
double scheduled_lr(const ScheduleOptions& s, double base_lr, int64_t step, int64_t total,
                    int64_t steps_per_epoch);

}  // namespace normnet
