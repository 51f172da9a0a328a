// normnet::Rng: a small seeded generator (xoshiro256** seeded through splitmix64) whose whole
// state is four 64-bit words, so checkpoints can save and restore it exactly.
// Draws are made on one thread in a fixed order; per-element randomness inside kernels
// (dropout) uses hash(seed, index) instead so it cannot depend on the thread count.
#pragma once
#include <array>
#include <cstdint>

namespace normnet {

uint64_t splitmix64(uint64_t& state);
uint64_t hash64(uint64_t seed, uint64_t index);  // counter-based: same inputs, same output

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { seed_with(seed); }
  void seed_with(uint64_t seed);
  uint64_t next_u64();
  double uniform();                          // [0, 1)
  float uniform(float lo, float hi);         // [lo, hi)
  uint64_t below(uint64_t n);                // [0, n), unbiased
  double normal();                           // standard normal (Box-Muller)
  std::array<uint64_t, 4> state() const { return s_; }
  void set_state(const std::array<uint64_t, 4>& s) { s_ = s; }

 private:
  std::array<uint64_t, 4> s_{};
};

}  // namespace normnet
