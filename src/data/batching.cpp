// Normalization, shuffling, batch gathering and crop-flip augmentation.
//
// Everything here runs on one thread in a fixed order, so the results (and the random draws)
// do not depend on the thread count.
#include <cmath>
#include <cstring>
#include <utility>

#include "normnet/data.h"
#include "normnet/error.h"

namespace normnet {

Normalization compute_normalization(const Tensor& images) {
  check(images.defined() && images.numel() > 0,
        "compute_normalization: the images are empty (shape ",
        images.defined() ? images.shape().str() : std::string("undefined"), ")");
  const Tensor c = images.contiguous();
  const float* x = c.data();
  const int64_t n = c.numel();
  // Two passes in double: the mean, then the mean squared deviation (population variance).
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += x[i];
  const double mean = sum / static_cast<double>(n);
  double sq = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = x[i] - mean;
    sq += d * d;
  }
  const double std = std::sqrt(sq / static_cast<double>(n));
  Normalization norm;
  norm.mean = static_cast<float>(mean);
  // Constant data has no spread: only centre it rather than divide by zero.
  norm.std = std > 0.0 ? static_cast<float>(std) : 1.0f;
  return norm;
}

void normalize_inplace(Tensor& images, const Normalization& norm) {
  check(std::isfinite(norm.mean) && std::isfinite(norm.std) && norm.std > 0.0f,
        "normalize_inplace: normalization mean ", norm.mean, " std ", norm.std,
        " (expected finite values and std > 0)");
  check(images.defined() && images.is_contiguous(),
        "normalize_inplace: the images must be a defined, contiguous tensor");
  float* x = images.data();
  const int64_t n = images.numel();
  for (int64_t i = 0; i < n; ++i) x[i] = (x[i] - norm.mean) / norm.std;
}

std::vector<int64_t> shuffled_indices(int64_t n, Rng& rng) {
  check(n >= 0, "shuffled_indices: n is ", n, " (expected n >= 0)");
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[i] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(i) + 1));
    std::swap(idx[i], idx[j]);
  }
  return idx;
}

void gather_batch(Tensor& batch, std::vector<int32_t>& labels, const Dataset& data,
                  const int64_t* idx, int64_t count) {
  check(data.images.defined() && data.images.rank() == 4,
        "gather_batch: the data set images must be (N, C, H, W), got ",
        data.images.defined() ? data.images.shape().str() : std::string("undefined"));
  check(data.images.dim(0) == data.size(), "gather_batch: the data set has ", data.images.dim(0),
        " images but ", data.size(), " labels");
  check(count >= 0 && (count == 0 || idx != nullptr), "gather_batch: count is ", count,
        " (expected >= 0, with indices when > 0)");
  const Shape want{count, data.images.dim(1), data.images.dim(2), data.images.dim(3)};
  // A batch of another shape (the short last batch, or a first call) is reallocated.
  if (!batch.defined() || batch.shape() != want) batch = Tensor(want);
  check(batch.is_contiguous(), "gather_batch: the batch tensor ", batch.shape().str(),
        " must be contiguous");
  labels.resize(static_cast<size_t>(count));

  const Tensor src = data.images.contiguous();
  const int64_t sample = want[1] * want[2] * want[3];
  const int64_t n = data.size();
  for (int64_t b = 0; b < count; ++b) {
    const int64_t i = idx[b];
    check(i >= 0 && i < n, "gather_batch: index ", i, " at batch position ", b,
          " is outside the data set of ", n, " samples");
    std::memcpy(batch.data() + b * sample, src.data() + i * sample,
                static_cast<size_t>(sample) * sizeof(float));
    labels[b] = data.labels[i];
  }
}

void augment_crop_flip(Tensor& batch, int64_t pad, Rng& rng) {
  check(batch.defined() && batch.rank() == 4, "augment_crop_flip: the batch must be (N, C, H, W), got ",
        batch.defined() ? batch.shape().str() : std::string("undefined"));
  check(batch.is_contiguous(), "augment_crop_flip: the batch ", batch.shape().str(),
        " must be contiguous");
  check(pad >= 0, "augment_crop_flip: pad is ", pad, " (expected pad >= 0)");
  const int64_t n = batch.dim(0), c = batch.dim(1), h = batch.dim(2), w = batch.dim(3);
  const int64_t plane = h * w, sample = c * plane;
  std::vector<float> src(static_cast<size_t>(sample));
  for (int64_t s = 0; s < n; ++s) {
    // Draws per sample, in this order: row offset, column offset, flip. The crop at offset
    // (oy, ox) of the padded image is out[y][x] = in[y + oy - pad][x + ox - pad].
    const int64_t dy = static_cast<int64_t>(rng.below(static_cast<uint64_t>(2 * pad + 1))) - pad;
    const int64_t dx = static_cast<int64_t>(rng.below(static_cast<uint64_t>(2 * pad + 1))) - pad;
    const bool flip = rng.below(2) == 1;
    if (dy == 0 && dx == 0 && !flip) continue;
    float* out = batch.data() + s * sample;
    std::memcpy(src.data(), out, static_cast<size_t>(sample) * sizeof(float));
    for (int64_t ch = 0; ch < c; ++ch) {
      const float* in = src.data() + ch * plane;
      float* o = out + ch * plane;
      for (int64_t y = 0; y < h; ++y) {
        const int64_t sy = y + dy;
        float* row = o + y * w;
        if (sy < 0 || sy >= h) {
          std::memset(row, 0, static_cast<size_t>(w) * sizeof(float));
          continue;
        }
        const float* in_row = in + sy * w;
        for (int64_t x = 0; x < w; ++x) {
          // Flipped: out[y][x] = crop[y][w - 1 - x].
          const int64_t sx = (flip ? w - 1 - x : x) + dx;
          row[x] = (sx >= 0 && sx < w) ? in_row[sx] : 0.0f;
        }
      }
    }
  }
}

}  // namespace normnet
