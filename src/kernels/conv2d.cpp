// Conv2d by im2col + GEMM, NCHW / OIHW.
//
// Forward, per sample and group g:   out_g (Co_g x P) = W_g (Co_g x K) * col_g (K x P)
//   with K = Ci_g*kh*kw, P = oh*ow, col_g[(c*kh + i)*kw + j][y*ow + x] = in[c, y*sh-ph+i*dh, x*sw-pw+j*dw].
// Backward:  dcol_g = W_g^T * dout_g, scattered back (the adjoint of im2col) -> din
//            dW_g^T = sum_n col_{n,g} * dout_{n,g}^T, then added to dW transposed
//            dbias += sum_{n,p} dout
// Float layers with stride 1 or dilation 1 skip im2col: conv2d_direct.h computes the same sums from the padded
// input in place (forward, the flipped convolution of the input gradient, the weight gradient).
// Under ConvAlgorithm::kFast, float 3x3 stride-1 layers with enough channels (conv2d_uses_winograd)
// run by Winograd F(2x2, 3x3) instead (conv2d_winograd.h), with the same threading and chunks.
// Threads: samples are independent in forward and din; dW is summed over fixed chunks of 8
// samples (one task each, samples in order inside a chunk), then over the chunks in order, so
// results are identical for any thread count.
#include "kernels/conv2d.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "kernels/conv2d_direct.h"
#include "kernels/conv2d_winograd.h"
#include "kernels/gemm.h"
#include "normnet/error.h"

namespace normnet {

namespace {
std::atomic<ConvAlgorithm> g_algorithm{ConvAlgorithm::kFast};
}  // namespace

void set_conv_algorithm(ConvAlgorithm a) { g_algorithm.store(a, std::memory_order_relaxed); }
ConvAlgorithm conv_algorithm() { return g_algorithm.load(std::memory_order_relaxed); }

}  // namespace normnet

namespace normnet::kernels {

void Conv2dShape::validate(const char* who) const {
  check(n >= 0 && c_in > 0 && h > 0 && w > 0 && c_out > 0, who, ": empty or negative sizes");
  check(kernel_h > 0 && kernel_w > 0 && stride_h > 0 && stride_w > 0 && dilation_h > 0 &&
            dilation_w > 0 && pad_h >= 0 && pad_w >= 0,
        who, ": kernel, stride and dilation must be positive, padding non-negative");
  check(groups > 0 && c_in % groups == 0 && c_out % groups == 0, who, ": groups=", groups,
        " must divide in_channels=", c_in, " and out_channels=", c_out);
  check(out_h() > 0 && out_w() > 0, who, ": input ", h, "x", w, " is smaller than the kernel ",
        kernel_h, "x", kernel_w, " (dilation ", dilation_h, "x", dilation_w, ", padding ", pad_h,
        "x", pad_w, ")");
}

bool conv2d_uses_winograd(const Conv2dShape& s) {
  return conv_algorithm() == ConvAlgorithm::kFast && s.kernel_h == 3 && s.kernel_w == 3 &&
         s.stride_h == 1 && s.stride_w == 1 && s.dilation_h == 1 && s.dilation_w == 1 &&
         s.pad_h <= 2 && s.pad_w <= 2 && s.c_in / s.groups >= kWinogradMinChannels &&
         s.c_out / s.groups >= kWinogradMinChannels && s.out_h() * s.out_w() <= kWinogradMaxPositions;
}

namespace {

bool is_pointwise(const Conv2dShape& s) {
  return s.kernel_h == 1 && s.kernel_w == 1 && s.stride_h == 1 && s.stride_w == 1 &&
         s.pad_h == 0 && s.pad_w == 0;
}

// Output columns x whose input column x*stride + offset lies inside [0, in): [lo, hi),
// computed once per kernel tap instead of testing every element.
inline void valid_range(int64_t out, int64_t in, int64_t stride, int64_t offset, int64_t& lo,
                        int64_t& hi) {
  lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  hi = in - offset <= 0 ? 0 : (in - offset + stride - 1) / stride;
  lo = std::min(lo, out);
  hi = std::max(lo, std::min(hi, out));
}

// col (K x P) for the cg input channels of one sample and group:
// col[(c*kh + i)*kw + j][y*ow + x] = in[c, y*sh - ph + i*dh, x*sw - pw + j*dw] (0 outside).
template <typename T>
void im2col(T* col, const T* in, int64_t cg, const Conv2dShape& s) {
  const int64_t oh = s.out_h(), ow = s.out_w();
  for (int64_t c = 0; c < cg; ++c)
    for (int64_t i = 0; i < s.kernel_h; ++i)
      for (int64_t j = 0; j < s.kernel_w; ++j) {
        T* row = col + ((c * s.kernel_h + i) * s.kernel_w + j) * oh * ow;
        const int64_t off = j * s.dilation_w - s.pad_w;
        int64_t lo, hi;
        valid_range(ow, s.w, s.stride_w, off, lo, hi);
        for (int64_t y = 0; y < oh; ++y) {
          const int64_t iy = y * s.stride_h - s.pad_h + i * s.dilation_h;
          T* r = row + y * ow;
          // Plain loops, not std::fill / std::copy: rows are short (7 to 56 values) and a
          // library call per row cost more than the copy.
          if (iy < 0 || iy >= s.h) {
            for (int64_t x = 0; x < ow; ++x) r[x] = T(0);
            continue;
          }
          const T* src = in + (c * s.h + iy) * s.w + off;
          for (int64_t x = 0; x < lo; ++x) r[x] = T(0);
          if (s.stride_w == 1)
            for (int64_t x = lo; x < hi; ++x) r[x] = src[x];
          else
            for (int64_t x = lo; x < hi; ++x) r[x] = src[x * s.stride_w];
          for (int64_t x = hi; x < ow; ++x) r[x] = T(0);
        }
      }
}

// din += the adjoint of im2col applied to dcol (K x P).
template <typename T>
void col2im_add(T* din, const T* col, int64_t cg, const Conv2dShape& s) {
  const int64_t oh = s.out_h(), ow = s.out_w();
  for (int64_t c = 0; c < cg; ++c)
    for (int64_t i = 0; i < s.kernel_h; ++i)
      for (int64_t j = 0; j < s.kernel_w; ++j) {
        const T* row = col + ((c * s.kernel_h + i) * s.kernel_w + j) * oh * ow;
        const int64_t off = j * s.dilation_w - s.pad_w;
        int64_t lo, hi;
        valid_range(ow, s.w, s.stride_w, off, lo, hi);
        for (int64_t y = 0; y < oh; ++y) {
          const int64_t iy = y * s.stride_h - s.pad_h + i * s.dilation_h;
          if (iy < 0 || iy >= s.h) continue;
          const T* r = row + y * ow;
          T* dst = din + (c * s.h + iy) * s.w + off;
          for (int64_t x = lo; x < hi; ++x) dst[x * s.stride_w] += r[x];
        }
      }
}

// dst (cols x rows) = src (rows x cols)^T, in 16 x 16 tiles so that both sides stay in cache.
template <typename T>
void transpose(T* dst, const T* src, int64_t rows, int64_t cols) {
  constexpr int64_t kTile = 16;
  for (int64_t r0 = 0; r0 < rows; r0 += kTile)
    for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
      const int64_t r1 = std::min(rows, r0 + kTile), c1 = std::min(cols, c0 + kTile);
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t r = r0; r < r1; ++r) dst[c * rows + r] = src[r * cols + c];
    }
}

// The direct kernels take float, stride 1 or dilation 1 (any padding and groups).
template <typename T>
bool use_direct(const Conv2dShape& s) {
  return std::is_same_v<T, float> && ((s.stride_h == 1 && s.stride_w == 1) ||
                                      (s.dilation_h == 1 && s.dilation_w == 1));
}

direct::Plan plan_of(const Conv2dShape& s) {
  direct::Plan p;
  p.cin = s.c_in / s.groups, p.h = s.h, p.w = s.w, p.cout = s.c_out / s.groups;
  p.kh = s.kernel_h, p.kw = s.kernel_w, p.ph = s.pad_h, p.pw = s.pad_w;
  p.dh = s.dilation_h, p.dw = s.dilation_w, p.sh = s.stride_h, p.sw = s.stride_w;
  return p;
}

void forward_direct(float* out, const float* in, const float* weight, const float* bias,
                    const Conv2dShape& s) {
  const int64_t G = s.groups, cig = s.c_in / G, cog = s.c_out / G, P = s.out_h() * s.out_w();
  const direct::Plan p = plan_of(s);
  std::vector<std::vector<float>> packed(static_cast<size_t>(G));
  for (int64_t g = 0; g < G; ++g) direct::pack_weights(packed[g], weight + g * cog * p.taps(), p);
  std::vector<int64_t> off;
  direct::tap_offsets(off, p);
#pragma omp parallel
  {
    std::vector<float> xpad, tile;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t g = 0; g < G; ++g)
        direct::forward(out + (n * s.c_out + g * cog) * P, in + (n * s.c_in + g * cig) * s.h * s.w,
                        packed[g].data(), off.data(), bias ? bias + g * cog : nullptr, p, xpad, tile);
  }
}

winograd::Plan winograd_plan_of(const Conv2dShape& s) {
  winograd::Plan p;
  p.cin = s.c_in / s.groups, p.h = s.h, p.w = s.w, p.cout = s.c_out / s.groups;
  p.ph = s.pad_h, p.pw = s.pad_w;
  return p;
}

void forward_winograd(float* out, const float* in, const float* weight, const float* bias,
                      const Conv2dShape& s) {
  const int64_t G = s.groups, cig = s.c_in / G, cog = s.c_out / G, P = s.out_h() * s.out_w();
  const winograd::Plan p = winograd_plan_of(s);
  std::vector<std::vector<float>> u(static_cast<size_t>(G));
  for (int64_t g = 0; g < G; ++g) winograd::transform_weights(u[g], weight + g * cog * cig * 9, p);
  const float* in_end = in + s.n * s.c_in * s.h * s.w;
#pragma omp parallel
  {
    winograd::Scratch scratch;
#pragma omp for schedule(static)
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t g = 0; g < G; ++g)
        winograd::forward(out + (n * s.c_out + g * cog) * P, in + (n * s.c_in + g * cig) * s.h * s.w,
                          in_end, u[g].data(), bias ? bias + g * cog : nullptr, p, scratch);
  }
}

// dbias[o] += the sum of dout over samples and positions: each sample's plane by sum16 (or in
// order for double), the planes added in double.
template <typename T>
void bias_grad(T* dbias, const T* dout, const Conv2dShape& s) {
  const int64_t P = s.out_h() * s.out_w();
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < s.c_out; ++o) {
    double acc = 0.0;
    for (int64_t n = 0; n < s.n; ++n) {
      const T* d = dout + (n * s.c_out + o) * P;
      if constexpr (std::is_same_v<T, float>)
        acc += direct::sum16(d, P);
      else
        for (int64_t p = 0; p < P; ++p) acc += d[p];
    }
    dbias[o] += static_cast<T>(acc);
  }
}

// The weights of the input gradient's convolution (stride 1, dilation 1): the kernel flipped,
// input and output channels swapped: wt[g][c][(o*kh + i)*kw + j] = W_g[o][c][kh-1-i][kw-1-j].
template <typename T>
void flip_weights(T* wt, const T* weight, const Conv2dShape& s) {
  const int64_t G = s.groups, cig = s.c_in / G, cog = s.c_out / G, kh = s.kernel_h, kw = s.kernel_w;
  const int64_t khw = kh * kw, K2 = cog * khw;
  for (int64_t g = 0; g < G; ++g)
    for (int64_t c = 0; c < cig; ++c)
      for (int64_t o = 0; o < cog; ++o)
        for (int64_t i = 0; i < kh; ++i)
          for (int64_t j = 0; j < kw; ++j)
            wt[(g * cig + c) * K2 + (o * kh + i) * kw + j] =
                weight[((g * cog + o) * cig + c) * khw + (kh - 1 - i) * kw + (kw - 1 - j)];
}

// Samples per weight-gradient task: each task adds its samples' gradients into its own partial,
// in sample order, and the partials are added in chunk order. The chunks do not depend on the
// thread count, so neither does any sum.
constexpr int64_t kChunk = 8;

// The backward of a Winograd layer: the input gradient as the flipped convolution (padding
// 2 - pad, also by Winograd), the weight gradient in the transformed domain (summed over each
// chunk's samples, then the chunks in order, then transformed back once).
void backward_winograd(float* din, float* dweight, float* dbias, const float* dout,
                       const float* in, const float* weight, const Conv2dShape& s) {
  const int64_t G = s.groups, cig = s.c_in / G, cog = s.c_out / G;
  const int64_t oh = s.out_h(), ow = s.out_w(), P = oh * ow;
  if (dbias) bias_grad(dbias, dout, s);
  const winograd::Plan p = winograd_plan_of(s);
  winograd::Plan pf;  // the input gradient's convolution: dout in, din out
  pf.cin = cog, pf.h = oh, pf.w = ow, pf.cout = cig, pf.ph = 2 - s.pad_h, pf.pw = 2 - s.pad_w;
  std::vector<std::vector<float>> uf(din ? static_cast<size_t>(G) : 0);
  if (din) {
    std::vector<float> wt(static_cast<size_t>(G * cig * cog * 9));
    flip_weights(wt.data(), weight, s);
    for (int64_t g = 0; g < G; ++g) winograd::transform_weights(uf[g], wt.data() + g * cig * cog * 9, pf);
  }
  const int64_t chunks = (s.n + kChunk - 1) / kChunk;
  const int64_t usize = winograd::weight_grad_size(p);
  const int64_t wsize = G * usize;
  const float* in_end = in + s.n * s.c_in * s.h * s.w;
  const float* dout_end = dout + s.n * s.c_out * P;
  std::unique_ptr<float[]> partial(new float[static_cast<size_t>(chunks * wsize)]);
#pragma omp parallel
  {
    winograd::Scratch scratch;
    std::vector<float> dy_grid;
#pragma omp for schedule(static)
    for (int64_t j = 0; j < chunks; ++j) {
      for (int64_t n = j * kChunk; n < std::min(s.n, (j + 1) * kChunk); ++n)
        for (int64_t g = 0; g < G; ++g) {  // the chunk's first sample sets the partial
          const float* dy = dout + (n * s.c_out + g * cog) * P;
          const float* x = in + (n * s.c_in + g * cig) * s.h * s.w;
          // With din, dy's grid comes from its convolution (padded by 2 - pad, which is where the
          // weight gradient reads it too); moved out of the scratch that weight_grad overwrites.
          winograd::Grid grid;
          if (din) {
            winograd::forward(din + (n * s.c_in + g * cig) * s.h * s.w, dy, dout_end, uf[g].data(),
                              nullptr, pf, scratch);
            grid = winograd::input_grid(pf, scratch);
            std::swap(scratch.xt, dy_grid);
          } else {
            grid = winograd::output_grid(dy_grid, dy, dout_end, p);
          }
          winograd::weight_grad(partial.get() + j * wsize + g * usize, x, in_end, grid, p, scratch,
                                n > j * kChunk);
        }
    }
  }
  // Each transformed weight's chunk partials in chunk order, then back to 3x3 per group.
  std::vector<float> du(static_cast<size_t>(wsize));
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < wsize; ++k) {
    float acc = 0.0f;
    for (int64_t j = 0; j < chunks; ++j) acc += partial[j * wsize + k];
    du[k] = acc;
  }
  for (int64_t g = 0; g < G; ++g)
    winograd::weight_grad_finish(dweight + g * cog * cig * 9, du.data() + g * usize, p);
}

}  // namespace

template <typename T>
void conv2d_forward(T* out, const T* in, const T* weight, const T* bias, const Conv2dShape& s) {
  const int64_t G = s.groups, cig = s.c_in / G, cog = s.c_out / G;
  const int64_t K = cig * s.kernel_h * s.kernel_w, P = s.out_h() * s.out_w();
  const bool pointwise = is_pointwise(s);
  if constexpr (std::is_same_v<T, float>) {
    if (conv2d_uses_winograd(s)) return forward_winograd(out, in, weight, bias, s);
    if (use_direct<T>(s)) return forward_direct(out, in, weight, bias, s);
  }
#pragma omp parallel
  {
    std::vector<T> col(pointwise ? 0 : static_cast<size_t>(K * P));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t g = 0; g < G; ++g) {
        const T* x = in + (n * s.c_in + g * cig) * s.h * s.w;
        T* y = out + (n * s.c_out + g * cog) * P;
        const T* cols = x;
        if (!pointwise) {
          im2col(col.data(), x, cig, s);
          cols = col.data();
        }
        gemm(false, false, cog, P, K, weight + g * cog * K, K, cols, P, T(0), y, P);
        if (bias)
          for (int64_t o = 0; o < cog; ++o) {
            const T b = bias[g * cog + o];
            for (int64_t p = 0; p < P; ++p) y[o * P + p] += b;
          }
      }
  }
}

template <typename T>
void conv2d_backward(T* din, T* dweight, T* dbias, const T* dout, const T* in, const T* weight,
                     const Conv2dShape& s) {
  const int64_t G = s.groups, cig = s.c_in / G, cog = s.c_out / G;
  const int64_t K = cig * s.kernel_h * s.kernel_w, P = s.out_h() * s.out_w();
  if constexpr (std::is_same_v<T, float>)
    if (conv2d_uses_winograd(s)) return backward_winograd(din, dweight, dbias, dout, in, weight, s);

  // The direct path takes each sample's sums from its transpose of dout (weight_grad_t) into
  // bsum[n][o]; they are added over n below, in double, as here.
  const bool direct_path = use_direct<T>(s);
  std::vector<float> bsum(dbias && direct_path ? static_cast<size_t>(s.n * s.c_out) : 0);
  if (dbias && !direct_path) bias_grad(dbias, dout, s);

  // The input gradient. Stride 1 without dilation (most 3x3 layers): din is itself a
  // convolution, of dout with the kernel flipped and in/out channels swapped, padding kh-1-ph:
  //   din_g (Ci_g x H*W) = Wf_g (Ci_g x Co_g*kh*kw) * col(dout_g) (Co_g*kh*kw x H*W),
  //   Wf_g[c][(o*kh + i)*kw + j] = W_g[o][c][kh-1-i][kw-1-j],
  // a GEMM as long in its inner dimension as the forward's, written straight into din. Otherwise
  // dcol = W_g^T * dout_g (K x P) scattered back by the adjoint of im2col.
  const bool flipped = din && s.stride_h == 1 && s.stride_w == 1 && s.dilation_h == 1 &&
                       s.dilation_w == 1 && s.pad_h <= s.kernel_h - 1 && s.pad_w <= s.kernel_w - 1;
  const int64_t khw = s.kernel_h * s.kernel_w, K2 = cog * khw;
  Conv2dShape sf = s;  // the shape of the flipped convolution: dout in, din out
  sf.c_in = s.c_out, sf.h = s.out_h(), sf.w = s.out_w(), sf.c_out = s.c_in;
  sf.pad_h = s.kernel_h - 1 - s.pad_h, sf.pad_w = s.kernel_w - 1 - s.pad_w;
  std::vector<T> wt(din ? static_cast<size_t>(G * K * cog) : 0);
  if (flipped) {
    flip_weights(wt.data(), weight, s);
  } else if (din) {  // W_g^T (K x Co_g), for dcol = W_g^T * dout_g
    for (int64_t g = 0; g < G; ++g) transpose(wt.data() + g * K * cog, weight + g * cog * K, cog, K);
    std::memset(din, 0, sizeof(T) * static_cast<size_t>(s.n * s.c_in * s.h * s.w));
  }
  // The weight gradient, per group: with Co_g >= 32 (and always on the direct path) as
  // dW_g^T (K x Co_g) += col (K x P) * dout_g^T (P x Co_g); with fewer output channels (a GEMM
  // of width Co_g would waste most of the 32-wide tile) as dW_g (Co_g x K) += dout_g (Co_g x P) *
  // col^T (P x K).
  const bool dw_t = direct_path || cog >= 32;
  // The direct path's operands: the forward plan (weight gradient), and the flipped
  // convolution's plan and packed weights (input gradient).
  const direct::Plan plan = plan_of(s);
  direct::Plan plan_f = plan_of(sf);
  std::vector<std::vector<float>> wt_packed;
  std::vector<int64_t> off, off_f;
  if (direct_path) direct::tap_offsets(off, plan);
  if (direct_path && flipped) direct::tap_offsets(off_f, plan_f);
  if constexpr (std::is_same_v<T, float>)
    if (direct_path && flipped) {
      wt_packed.resize(static_cast<size_t>(G));
      for (int64_t g = 0; g < G; ++g) direct::pack_weights(wt_packed[g], wt.data() + g * cig * K2, plan_f);
    }
  // Samples in fixed chunks of kChunk, one task each: a task builds each sample's columns once
  // and adds into its own dW partial. Only one sample's columns per thread are ever held.
  const int64_t chunks = (s.n + kChunk - 1) / kChunk;
  const int64_t wsize = G * K * cog;
  std::unique_ptr<T[]> partial(new T[static_cast<size_t>(chunks * wsize)]);  // each task zeroes its own
#pragma omp parallel
  {
    std::vector<T> col(direct_path ? 0 : static_cast<size_t>(K * P));
    std::vector<T> scratch(direct_path ? 0 : static_cast<size_t>(dw_t ? P * cog : K * P));
    std::vector<T> dcol(din && !(direct_path && flipped) ? static_cast<size_t>(flipped ? K2 * s.h * s.w : K * P) : 0);
    std::vector<float> xpad, dyt, tile;
#pragma omp for schedule(static)
    for (int64_t j = 0; j < chunks; ++j) {
      std::fill(partial.get() + j * wsize, partial.get() + (j + 1) * wsize, T(0));
      for (int64_t n = j * kChunk; n < std::min(s.n, (j + 1) * kChunk); ++n)
        for (int64_t g = 0; g < G; ++g) {
          const T* dy = dout + (n * s.c_out + g * cog) * P;
          const T* x = in + (n * s.c_in + g * cig) * s.h * s.w;
          T* dx = din ? din + (n * s.c_in + g * cig) * s.h * s.w : nullptr;
          T* pw = partial.get() + j * wsize + g * K * cog;
          bool done_dw = false, done_dx = false;
          if constexpr (std::is_same_v<T, float>)
            if (direct_path) {
              direct::weight_grad_t(pw, bsum.empty() ? nullptr : bsum.data() + n * s.c_out + g * cog, x,
                                    dy, off.data(), plan, xpad, dyt);
              done_dw = true;
              if (flipped) {
                direct::forward(dx, dy, wt_packed[g].data(), off_f.data(), nullptr, plan_f, xpad, tile);
                done_dx = true;
              }
            }
          if (!done_dw) im2col(col.data(), x, cig, s);
          if (!done_dw && dw_t) {
            transpose(scratch.data(), dy, cog, P);
            gemm(false, false, K, cog, P, col.data(), P, scratch.data(), cog, T(1), pw, cog);
          } else if (!done_dw) {
            transpose(scratch.data(), col.data(), K, P);
            gemm(false, false, cog, K, P, dy, P, scratch.data(), K, T(1), pw, K);
          }
          if (done_dx) continue;
          if (flipped) {
            im2col(dcol.data(), dy, cog, sf);
            gemm(false, false, cig, s.h * s.w, K2, wt.data() + g * cig * K2, K2, dcol.data(), s.h * s.w,
                 T(0), dx, s.h * s.w);
          } else if (din) {
            gemm(false, false, K, P, cog, wt.data() + g * K * cog, cog, dy, P, T(0), dcol.data(), P);
            col2im_add(dx, dcol.data(), cig, s);
          }
        }
    }
  }
  if (dbias && direct_path)
    for (int64_t o = 0; o < s.c_out; ++o) {
      double acc = 0.0;
      for (int64_t n = 0; n < s.n; ++n) acc += bsum[n * s.c_out + o];
      dbias[o] += static_cast<T>(acc);
    }
  // Each weight's chunk partials in chunk order; weights in parallel.
#pragma omp parallel for schedule(static) collapse(2)
  for (int64_t g = 0; g < G; ++g)
    for (int64_t o = 0; o < cog; ++o)
      for (int64_t k = 0; k < K; ++k) {
        T acc = T(0);
        const int64_t at = dw_t ? (g * K + k) * cog + o : (g * cog + o) * K + k;
        for (int64_t j = 0; j < chunks; ++j) acc += partial[j * wsize + at];
        dweight[(g * cog + o) * K + k] += acc;
      }
}

template void conv2d_forward<float>(float*, const float*, const float*, const float*, const Conv2dShape&);
template void conv2d_forward<double>(double*, const double*, const double*, const double*, const Conv2dShape&);
template void conv2d_backward<float>(float*, float*, float*, const float*, const float*, const float*, const Conv2dShape&);
template void conv2d_backward<double>(double*, double*, double*, const double*, const double*, const double*, const Conv2dShape&);

}  // namespace normnet::kernels
