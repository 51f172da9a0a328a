// What a training-mode forward changes besides the caches: the buffers (running statistics,
// num_batches_tracked) and the counters (Dropout). Saved before and put back after a forward
// that must leave no trace (the divergence diagnosis).
#pragma once
#include <cstdint>
#include <vector>

#include "normnet/module.h"

namespace normnet {

class ForwardSideEffects {
 public:
  explicit ForwardSideEffects(Module& m) : buffers_(m.named_buffers()), counters_(m.named_counters()) {}
  void save() {
    f32_.clear();
    i64_.clear();
    counts_.clear();
    for (auto& [name, b] : buffers_) {
      if (b.f32) f32_.push_back(b.f32->clone());
      else i64_.push_back(*b.i64);
    }
    for (auto& [name, c] : counters_) counts_.push_back(*c);
  }
  void restore() {
    size_t fi = 0, ii = 0;
    for (auto& [name, b] : buffers_) {
      if (b.f32) b.f32->copy_from(f32_[fi++]);
      else *b.i64 = i64_[ii++];
    }
    for (size_t k = 0; k < counters_.size(); ++k) *counters_[k].second = counts_[k];
  }

 private:
  std::vector<std::pair<std::string, Buffer>> buffers_;
  std::vector<std::pair<std::string, uint64_t*>> counters_;
  std::vector<Tensor> f32_;
  std::vector<int64_t> i64_;
  std::vector<uint64_t> counts_;
};

}  // namespace normnet
