// Winograd F(2x2, 3x3) convolutions (kernels/conv2d_winograd.h, through conv2d_forward and
// conv2d_backward) vs the double reference, over a sweep of shapes.
//
// Tolerance: expect_close's 2 * FLT_EPSILON * sqrt(terms) * mag, where mag is the sum of the
// magnitudes this algorithm adds, not the direct convolution's sum |w * x|: an output is
// A^T (sum_c U_c .* V_c) A, so a rounding error in any product or transform term is bounded
// by |A^T| (sum_c |G||g_c||G^T| .* |B^T||d_c||B|) |A| (+ |bias|), computed here in double on
// absolute values. That sum covers every input of the 4x4 patch, which is why Winograd's error
// can be larger than the direct convolution's. terms counts the roundings on the longest path:
//   forward / input gradient: U rounded once, V two additions, the product, cin accumulations,
//     two levels of the output transform with two additions each, the bias: cin + 9;
//   weight gradient: every product of every sample (as the direct test counts) plus the
//     transforms and the final additions: n * tiles + 7.
#include <gtest/gtest.h>

#include <sstream>

#include "kernel_test_util.h"
#include "kernels/conv2d.h"
#include "ref/reference.h"

namespace normnet {
namespace {

using kernels::Conv2dShape;
using test::abs_of;
using test::expect_close;
using test::random_floats;
using test::to_double;

constexpr double kG[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
constexpr double kBT[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
constexpr double kAT[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};

// |U| for one 3x3 kernel g (absolute values): |G| |g| |G^T|.
void abs_u(double u[16], const double* g) {
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) {
      double acc = 0;
      for (int k = 0; k < 3; ++k)
        for (int l = 0; l < 3; ++l) acc += std::fabs(kG[i][k]) * std::fabs(g[k * 3 + l]) * std::fabs(kG[j][l]);
      u[i * 4 + j] = acc;
    }
}

// |V| for the 4x4 patch at padded (r0, c0) of one channel plane x (H x W, zero outside):
// |B^T| |d| |B|.
void abs_v(double v[16], const double* x, int64_t H, int64_t W, int64_t r0, int64_t c0) {
  double d[4][4];
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b) {
      const int64_t y = r0 + a, z = c0 + b;
      d[a][b] = y >= 0 && y < H && z >= 0 && z < W ? std::fabs(x[y * W + z]) : 0.0;
    }
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) {
      double acc = 0;
      for (int a = 0; a < 4; ++a)
        for (int b = 0; b < 4; ++b) acc += std::fabs(kBT[i][a]) * d[a][b] * std::fabs(kBT[j][b]);
      v[i * 4 + j] = acc;
    }
}

// mag (n x O*G x oh x ow) of Winograd's forward over x (n x C*G x H x W) with weights
// w (O*G x C x 3 x 3), padding (ph, pw), plus |bias|.
void forward_magnitude(std::vector<double>& mag, const std::vector<double>& x,
                       const std::vector<double>& w, const std::vector<double>& bias, int64_t n,
                       int64_t C, int64_t H, int64_t W, int64_t O, int64_t G, int64_t ph, int64_t pw) {
  const int64_t oh = H + 2 * ph - 2, ow = W + 2 * pw - 2;
  mag.assign(static_cast<size_t>(n * O * G * oh * ow), 0.0);
  std::vector<double> u(static_cast<size_t>(O * G * C * 16));
  for (int64_t k = 0; k < O * G * C; ++k) abs_u(&u[k * 16], &w[k * 9]);
  for (int64_t s = 0; s < n; ++s)
    for (int64_t g = 0; g < G; ++g)
      for (int64_t ty = 0; ty < (oh + 1) / 2; ++ty)
        for (int64_t tx = 0; tx < (ow + 1) / 2; ++tx) {
          std::vector<double> v(static_cast<size_t>(C * 16));
          for (int64_t c = 0; c < C; ++c)
            abs_v(&v[c * 16], &x[((s * G + g) * C + c) * H * W], H, W, 2 * ty - ph, 2 * tx - pw);
          for (int64_t o = 0; o < O; ++o) {
            double m[16] = {};
            for (int64_t c = 0; c < C; ++c)
              for (int e = 0; e < 16; ++e) m[e] += u[((g * O + o) * C + c) * 16 + e] * v[c * 16 + e];
            for (int a = 0; a < 2; ++a)
              for (int b = 0; b < 2; ++b) {
                const int64_t y = 2 * ty + a, z = 2 * tx + b;
                if (y >= oh || z >= ow) continue;
                double acc = bias.empty() ? 0.0 : std::fabs(bias[g * O + o]);
                for (int i = 0; i < 4; ++i)
                  for (int j = 0; j < 4; ++j) acc += std::fabs(kAT[a][i]) * std::fabs(kAT[b][j]) * m[i * 4 + j];
                mag[((s * G + g) * O + o) * oh * ow + y * ow + z] = acc;
              }
          }
        }
}

// mag of the weight gradient: |G^T| (sum over samples and tiles of |A||dY||A^T| .* |V|) |G|.
void weight_grad_magnitude(std::vector<double>& mag, const std::vector<double>& x,
                           const std::vector<double>& dy, const Conv2dShape& s) {
  const int64_t G = s.groups, C = s.c_in / G, O = s.c_out / G, oh = s.out_h(), ow = s.out_w();
  std::vector<double> du(static_cast<size_t>(G * O * C * 16), 0.0);
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t g = 0; g < G; ++g)
      for (int64_t ty = 0; ty < (oh + 1) / 2; ++ty)
        for (int64_t tx = 0; tx < (ow + 1) / 2; ++tx) {
          std::vector<double> v(static_cast<size_t>(C * 16));
          for (int64_t c = 0; c < C; ++c)
            abs_v(&v[c * 16], &x[((n * G + g) * C + c) * s.h * s.w], s.h, s.w, 2 * ty - s.pad_h,
                  2 * tx - s.pad_w);
          for (int64_t o = 0; o < O; ++o) {
            const double* d = &dy[((n * G + g) * O + o) * oh * ow];
            double mg[16] = {};
            for (int a = 0; a < 2; ++a)
              for (int b = 0; b < 2; ++b) {
                const int64_t y = 2 * ty + a, z = 2 * tx + b;
                if (y >= oh || z >= ow) continue;
                for (int e = 0; e < 16; ++e)
                  mg[e] += std::fabs(kAT[a][e / 4]) * std::fabs(kAT[b][e % 4]) * std::fabs(d[y * ow + z]);
              }
            for (int64_t c = 0; c < C; ++c)
              for (int e = 0; e < 16; ++e) du[((g * O + o) * C + c) * 16 + e] += mg[e] * v[c * 16 + e];
          }
        }
  for (int64_t k = 0; k < G * O * C; ++k)
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) {
        double acc = 0;
        for (int e = 0; e < 16; ++e) acc += std::fabs(kG[e / 4][i]) * std::fabs(kG[e % 4][j]) * du[k * 16 + e];
        mag[k * 9 + i * 3 + j] += acc;
      }
}

// Sets the process-wide algorithm for one test and restores the default after.
struct AlgorithmGuard {
  explicit AlgorithmGuard(ConvAlgorithm a) { set_conv_algorithm(a); }
  ~AlgorithmGuard() { set_conv_algorithm(ConvAlgorithm::kFast); }
};

class WinogradTester {
 public:
  WinogradTester& batch(int64_t n) { return s_.n = n, *this; }
  WinogradTester& channels(int64_t in, int64_t out) { return s_.c_in = in, s_.c_out = out, *this; }
  WinogradTester& input(int64_t h, int64_t w) { return s_.h = h, s_.w = w, *this; }
  WinogradTester& pad(int64_t ph, int64_t pw) { return s_.pad_h = ph, s_.pad_w = pw, *this; }
  WinogradTester& pad(int64_t p) { return pad(p, p); }
  WinogradTester& groups(int64_t g) { return s_.groups = g, *this; }
  WinogradTester& bias(bool b) { return bias_ = b, *this; }
  WinogradTester& input_grad(bool b) { return input_grad_ = b, *this; }
  WinogradTester& seed(uint64_t seed) { return seed_ = seed, *this; }

  void Test() {
    s_.kernel_h = s_.kernel_w = 3;
    s_.validate("WinogradTester");
    const AlgorithmGuard fast(ConvAlgorithm::kFast);
    const std::string what = describe();
    ASSERT_TRUE(kernels::conv2d_uses_winograd(s_)) << what;
    const int64_t G = s_.groups, cig = s_.c_in / G, cog = s_.c_out / G;
    const int64_t oh = s_.out_h(), ow = s_.out_w();
    const int64_t in_n = s_.n * s_.c_in * s_.h * s_.w, out_n = s_.n * s_.c_out * oh * ow;
    const int64_t w_n = s_.c_out * cig * 9;

    Rng rng(seed_);
    const auto in = random_floats(rng, in_n), weight = random_floats(rng, w_n);
    const auto bias = random_floats(rng, bias_ ? s_.c_out : 0);
    const auto dout = random_floats(rng, out_n);
    const auto dweight0 = random_floats(rng, w_n), dbias0 = random_floats(rng, s_.c_out);
    const auto in_d = to_double(in), w_d = to_double(weight), b_d = to_double(bias);
    const auto dout_d = to_double(dout);

    std::vector<float> out(out_n, NAN);
    kernels::conv2d_forward(out.data(), in.data(), weight.data(), bias_ ? bias.data() : nullptr, s_);
    std::vector<double> out_ref(out_n), out_mag;
    ref::conv2d_forward(out_ref.data(), in_d.data(), w_d.data(), bias_ ? b_d.data() : nullptr, s_);
    forward_magnitude(out_mag, in_d, w_d, b_d, s_.n, cig, s_.h, s_.w, cog, G, s_.pad_h, s_.pad_w);
    expect_close(out, out_ref, out_mag, double(cig + 9), what + " forward");

    std::vector<float> din(in_n, 1e30f), dweight = dweight0, dbias = dbias0;
    kernels::conv2d_backward(input_grad_ ? din.data() : nullptr, dweight.data(),
                             bias_ ? dbias.data() : nullptr, dout.data(), in.data(), weight.data(), s_);
    std::vector<double> din_ref(in_n), dw_ref = to_double(dweight0), db_ref = to_double(dbias0);
    ref::conv2d_backward(din_ref.data(), dw_ref.data(), db_ref.data(), dout_d.data(), in_d.data(),
                         w_d.data(), s_);
    if (input_grad_) {
      // The flipped convolution: dout in, weights wf[c][o][i][j] = w[o][c][2-i][2-j].
      std::vector<double> wf(static_cast<size_t>(w_n)), din_mag;
      for (int64_t g = 0; g < G; ++g)
        for (int64_t c = 0; c < cig; ++c)
          for (int64_t o = 0; o < cog; ++o)
            for (int k = 0; k < 9; ++k)
              wf[((g * cig + c) * cog + o) * 9 + k] = w_d[((g * cog + o) * cig + c) * 9 + 8 - k];
      forward_magnitude(din_mag, dout_d, wf, {}, s_.n, cog, oh, ow, cig, G, 2 - s_.pad_h, 2 - s_.pad_w);
      expect_close(din, din_ref, din_mag, double(cog + 9), what + " din");
    }
    std::vector<double> dw_mag = abs_of(to_double(dweight0));
    weight_grad_magnitude(dw_mag, in_d, dout_d, s_);
    const int64_t tiles = (oh + 1) / 2 * ((ow + 1) / 2);
    expect_close(dweight, dw_ref, dw_mag, double(s_.n * tiles + 7), what + " dweight");
    if (bias_) {
      std::vector<double> db_mag = abs_of(to_double(dbias0));  // + sum |dout| per channel
      for (int64_t k = 0; k < out_n; ++k) db_mag[(k / (oh * ow)) % s_.c_out] += std::fabs(dout_d[k]);
      expect_close(dbias, db_ref, db_mag, double(s_.n * oh * ow + 1), what + " dbias");
    } else {
      EXPECT_EQ(dbias, dbias0) << what << ": dbias written although null was passed";
    }
  }

 private:
  std::string describe() const {
    std::ostringstream o;
    o << "winograd n=" << s_.n << " c=" << s_.c_in << "->" << s_.c_out << " in=" << s_.h << "x"
      << s_.w << " p=" << s_.pad_h << "x" << s_.pad_w << " g=" << s_.groups << " bias=" << bias_
      << " din=" << input_grad_;
    return o.str();
  }

  Conv2dShape s_;
  bool bias_ = true, input_grad_ = true;
  uint64_t seed_ = 1;
};

// Channel counts on both sides of the 16-channel blocks and of the GEMM widths (64, 32, 16
// output channels per block: 7, 14 and 28 tiles per micro-kernel), the weight gradient's two
// widths (input channels a multiple of 32 or not), and the smallest count that qualifies.
TEST(kernels_winograd, Channels) {
  for (int64_t c_in : {16, 17, 33, 48})
    for (int64_t c_out : {16, 20, 32, 64, 70})
      WinogradTester().batch(2).channels(c_in, c_out).input(9, 8).pad(1).Test();
}

// Plane sizes: a single output, odd sizes (a last tile half outside), rows shorter than and
// longer than the 16 columns of a store (28, 33), the zoo's 14x14 and 7x7; padding 0, 2 and
// different per axis.
TEST(kernels_winograd, SizesAndPadding) {
  for (int64_t size : {1, 2, 5, 7, 14, 15, 28, 33})
    WinogradTester().batch(2).channels(16, 32).input(size, size).pad(1).Test();
  WinogradTester().batch(2).channels(16, 24).input(17, 20).pad(0).Test();
  WinogradTester().batch(2).channels(16, 24).input(6, 11).pad(2).Test();
  WinogradTester().batch(2).channels(16, 24).input(10, 13).pad(0, 2).Test();
  WinogradTester().batch(2).channels(16, 24).input(3, 40).pad(2, 1).Test();
}

// The seed-001 and ResNet layers, batches across the 8-sample chunks of the weight gradient,
// groups, and the optional bias and input gradient.
TEST(kernels_winograd, ModelLayersBatchesGroups) {
  WinogradTester().batch(3).channels(32, 64).input(14, 14).pad(1).bias(false).Test();
  WinogradTester().batch(17).channels(16, 16).input(8, 8).pad(1).Test();
  WinogradTester().batch(1).channels(64, 64).input(7, 7).pad(1).Test();
  WinogradTester().batch(2).channels(32, 64).input(9, 9).pad(1).groups(2).Test();
  WinogradTester().batch(2).channels(48, 96).input(6, 7).pad(1).groups(3).bias(false).Test();
  WinogradTester().batch(2).channels(16, 16).input(9, 7).pad(1).input_grad(false).Test();
}

TEST(kernels_winograd, SeedsSweep) {
  for (uint64_t seed = 2; seed < 6; ++seed)
    WinogradTester().batch(2).channels(17, 19).input(11, 10).pad(1).seed(seed).Test();
}

// Which layers take Winograd: only under kFast, only float 3x3 stride-1 undilated layers with
// enough channels per group, padding at most 2 and output planes up to 64x64.
TEST(kernels_winograd, Eligibility) {
  Conv2dShape s;
  s.n = 2, s.c_in = 32, s.c_out = 64, s.h = s.w = 14, s.kernel_h = s.kernel_w = 3, s.pad_h = s.pad_w = 1;
  {
    const AlgorithmGuard fast(ConvAlgorithm::kFast);
    EXPECT_TRUE(kernels::conv2d_uses_winograd(s));
    Conv2dShape t = s;
    t.c_in = kernels::kWinogradMinChannels - 1;
    EXPECT_FALSE(kernels::conv2d_uses_winograd(t));
    t = s, t.groups = 4;  // 8 input channels per group
    EXPECT_FALSE(kernels::conv2d_uses_winograd(t));
    t = s, t.stride_h = 2;
    EXPECT_FALSE(kernels::conv2d_uses_winograd(t));
    t = s, t.dilation_w = 2;
    EXPECT_FALSE(kernels::conv2d_uses_winograd(t));
    t = s, t.kernel_h = 5;
    EXPECT_FALSE(kernels::conv2d_uses_winograd(t));
    t = s, t.pad_w = 3;
    EXPECT_FALSE(kernels::conv2d_uses_winograd(t));
    t = s, t.h = t.w = 64;  // 64x64 outputs: the largest plane
    EXPECT_TRUE(kernels::conv2d_uses_winograd(t));
    t.w = 65;
    EXPECT_FALSE(kernels::conv2d_uses_winograd(t));
  }
  const AlgorithmGuard exact(ConvAlgorithm::kExact);
  EXPECT_FALSE(kernels::conv2d_uses_winograd(s));
}

}  // namespace
}  // namespace normnet
