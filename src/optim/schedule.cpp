// Learning-rate schedules, evaluated at each optimizer step (0-based):
//   constant: lr
//   step:     lr * gamma^floor(epoch / step_size)
//   cosine:   min + (lr - min) * (1 + cos(pi * t / T)) / 2 over the steps after warm-up
//   onecycle: PyTorch's OneCycleLR (cosine): from lr/div up to lr over pct_start of the run,
//             then down to lr/(div*final_div)
//   warm-up:  the first warmup_steps ramp linearly from lr/warmup_steps to lr (any kind but onecycle)
#include <algorithm>
#include <cmath>

#include "normnet/error.h"
#include "normnet/optim.h"

namespace normnet {

static double cos_anneal(double from, double to, double frac) {
  return to + (from - to) * (1.0 + std::cos(M_PI * frac)) / 2.0;
}

double scheduled_lr(const ScheduleOptions& s, double lr, int64_t step, int64_t total,
                    int64_t steps_per_epoch) {
  total = std::max<int64_t>(total, 1);
  if (s.kind == "onecycle") {
    const double initial = lr / s.div_factor, final_lr = initial / s.final_div_factor;
    // Phase 1 ends at step pct_start * total - 1 (fractional, possibly < 1, as in PyTorch);
    // a phase of zero length (where PyTorch divides by zero) counts as finished.
    const double up = s.pct_start * static_cast<double>(total) - 1.0;
    const double t = static_cast<double>(step);
    if (t <= up) return cos_anneal(initial, lr, up > 0 ? t / up : 1.0);
    const double down = static_cast<double>(total - 1) - up;
    return cos_anneal(lr, final_lr, down > 0 ? std::min(1.0, (t - up) / down) : 1.0);
  }
  if (step < s.warmup_steps) return lr * static_cast<double>(step + 1) / static_cast<double>(s.warmup_steps);
  if (s.kind == "constant") return lr;
  if (s.kind == "step") {
    const int64_t epoch = step / std::max<int64_t>(steps_per_epoch, 1);
    return lr * std::pow(s.gamma, static_cast<double>(epoch / std::max<int64_t>(s.step_size, 1)));
  }
  if (s.kind == "cosine") {
    const int64_t span = std::max<int64_t>(total - s.warmup_steps, 1);
    return cos_anneal(lr, s.min_lr, static_cast<double>(step - s.warmup_steps) / static_cast<double>(span));
  }
  fail("unknown schedule '", s.kind, "' (expected constant, step, cosine or onecycle)");
}

}  // namespace normnet
