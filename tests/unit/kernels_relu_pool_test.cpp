// The pooling half of the fused BatchNorm + ReLU + MaxPool2d(2) kernel (kernels/relu_pool2x2.h)
// against maxpool2d_forward, the general tested kernel, on planes of ReLU outputs built to hit
// every rule: ties between equal values and between -0 and +0 (the first wins), NaNs of both
// signs (the first NaN wins), +inf, and windows whose maximum is 0 (winner -1).
//
// Tolerance: none. Pooled values must be maxpool2d_forward's bits and winners its argmax
// (or -1 where the pooled value is <= 0); the float version (vectors) must also equal the
// generic template (the double path's code) bit for bit. Planes from 1x1 to 35x33, even and
// odd, so that rows end at every position of an 8-window group; guard values after every
// buffer must survive (the float version may read past a plane, never write).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <vector>

#include "kernels/pool2d.h"
#include "kernels/relu_pool2x2.h"
#include "normnet/random.h"

namespace normnet {
namespace {

constexpr float kGuard = 12345.0f;
constexpr int32_t kGuardIndex = 777777;

// A ReLU output: mostly small integers (many ties, many zeros), some -0, NaN, -NaN, +inf.
float relu_value(Rng& rng) {
  const uint64_t r = rng.next_u64() % 100;
  if (r < 30) return 0.0f;
  if (r < 38) return -0.0f;
  if (r < 42) {  // NaNs of both signs with different payloads: the first one must win
    const uint32_t bits = 0x7fc00000u | static_cast<uint32_t>(rng.next_u64() % 0x3fffff) | (r < 40 ? 0u : 0x80000000u);
    float v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
  }
  if (r < 44) return std::numeric_limits<float>::infinity();
  if (r < 80) return static_cast<float>(rng.next_u64() % 4);
  return static_cast<float>(rng.next_u64() % 1000) / 7.0f;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

struct Plane {
  int64_t h, w;
  std::vector<float> z;  // h*w values and 16 readable ones after
};

Plane make_plane(Rng& rng, int64_t h, int64_t w) {
  Plane p{h, w, std::vector<float>(static_cast<size_t>(h * w + 16))};
  for (int64_t i = 0; i < h * w; ++i) p.z[i] = relu_value(rng);
  for (int64_t i = h * w; i < h * w + 16; ++i) p.z[i] = relu_value(rng);  // garbage past the end
  return p;
}

std::vector<std::pair<int64_t, int64_t>> sizes() {
  std::vector<std::pair<int64_t, int64_t>> s;
  for (int64_t h : {1, 2, 3, 4, 7, 14, 15, 28})
    for (int64_t w = 1; w <= 35; ++w) s.push_back({h, w});
  s.push_back({35, 33});
  return s;
}

TEST(ReluPool2x2, ForwardMatchesMaxPool) {
  Rng rng(91);
  for (const auto& [h, w] : sizes())
    for (int rep = 0; rep < 3; ++rep) {
      const Plane p = make_plane(rng, h, w);
      const int64_t os = (h / 2) * (w / 2);
      kernels::Pool2dShape ps;
      ps.h = h, ps.w = w, ps.kernel_h = ps.kernel_w = 2, ps.stride_h = ps.stride_w = 2;
      std::vector<float> want(os), got(os + 8, kGuard), tmpl(os + 8, kGuard);
      std::vector<int32_t> want_i(os), got_i(os + 8, kGuardIndex), tmpl_i(os + 8, kGuardIndex);
      if (os > 0) kernels::maxpool2d_forward(want.data(), want_i.data(), p.z.data(), ps);
      kernels::relu_pool2x2_plane(got.data(), got_i.data(), p.z.data(), h, w);
      kernels::relu_pool2x2_plane<float>(tmpl.data(), tmpl_i.data(), p.z.data(), h, w);
      std::ostringstream where;
      where << h << "x" << w << " rep " << rep;
      for (int64_t j = 0; j < os; ++j) {
        const int32_t want_win = want[j] <= 0.0f ? -1 : want_i[j];
        ASSERT_TRUE(same_bits(got[j], want[j])) << where.str() << " output " << j << ": " << got[j] << " vs " << want[j];
        ASSERT_EQ(got_i[j], want_win) << where.str() << " output " << j;
        ASSERT_TRUE(same_bits(tmpl[j], want[j])) << where.str() << " template output " << j;
        ASSERT_EQ(tmpl_i[j], want_win) << where.str() << " template output " << j;
      }
      for (int64_t j = os; j < os + 8; ++j) {
        ASSERT_TRUE(same_bits(got[j], kGuard)) << where.str() << ": wrote past the pooled plane";
        ASSERT_EQ(got_i[j], kGuardIndex) << where.str() << ": wrote past the winners";
      }
    }
}

// The gradient plane: maxpool2d_backward of dout at the winners (the -1 ones blocked).
TEST(ReluPool2x2, GradMatchesMaxPoolBackward) {
  Rng rng(92);
  for (const auto& [h, w] : sizes()) {
    const Plane p = make_plane(rng, h, w);
    const int64_t os = (h / 2) * (w / 2), S = h * w;
    std::vector<float> pooled(os + 8);
    std::vector<int32_t> win(os + 8);
    kernels::relu_pool2x2_plane(pooled.data(), win.data(), p.z.data(), h, w);
    std::vector<float> dout(os);
    for (int64_t j = 0; j < os; ++j) dout[j] = static_cast<float>(rng.next_u64() % 2001) / 1000.0f - 1.0f;
    if (os > 0) dout[0] = -0.0f;  // becomes +0, as maxpool2d_backward adds into a zeroed plane
    // Reference: maxpool2d_backward with the winners, then zero where the winner is -1.
    std::vector<int32_t> am(os);
    std::vector<float> masked(os);
    for (int64_t j = 0; j < os; ++j) {
      am[j] = win[j] < 0 ? 0 : win[j];
      masked[j] = win[j] < 0 ? 0.0f : dout[j];
    }
    kernels::Pool2dShape ps;
    ps.h = h, ps.w = w, ps.kernel_h = ps.kernel_w = 2, ps.stride_h = ps.stride_w = 2;
    std::vector<float> want(S);
    kernels::maxpool2d_backward(want.data(), masked.data(), am.data(), ps);
    std::vector<float> got(S + 16, kGuard), tmpl(S + 16, kGuard);
    kernels::relu_pool2x2_grad(got.data(), dout.data(), win.data(), h, w);
    kernels::relu_pool2x2_grad<float>(tmpl.data(), dout.data(), win.data(), h, w);
    for (int64_t i = 0; i < S; ++i) {
      ASSERT_TRUE(same_bits(got[i], want[i])) << h << "x" << w << " element " << i << ": " << got[i] << " vs " << want[i];
      ASSERT_TRUE(same_bits(tmpl[i], want[i])) << h << "x" << w << " template element " << i;
    }
    for (int64_t i = S; i < S + 16; ++i) ASSERT_TRUE(same_bits(got[i], kGuard)) << h << "x" << w << ": wrote past the plane";
  }
}

}  // namespace
}  // namespace normnet
