#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "normnet/error.h"
#include "normnet/fileio.h"
#include "normnet/image.h"

namespace normnet {

Tensor read_png(const std::string& path, int64_t channels, int64_t height, int64_t width) {
  check(channels == 1 || channels == 3, path, ": the model takes ", channels,
        " input channels; PNG input supports 1 (gray) or 3 (RGB)");
  const std::vector<uint8_t> bytes = read_file(path);
  return decode_png(bytes.data(), bytes.size(), path, channels, height, width);
}

Tensor decode_png(const uint8_t* data, size_t size, const std::string& path, int64_t channels, int64_t height,
                  int64_t width) {
  check(channels == 1 || channels == 3, path, ": the model takes ", channels,
        " input channels; PNG input supports 1 (gray) or 3 (RGB)");
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&img, data, size))
    fail(path, ": not a readable PNG (", img.message, ")");
  if (static_cast<int64_t>(img.height) != height || static_cast<int64_t>(img.width) != width) {
    const std::string got = std::to_string(img.width) + "x" + std::to_string(img.height);
    png_image_free(&img);
    fail(path, ": image is ", got, " (width x height) but the model takes ", width, "x", height);
  }
  img.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  std::vector<uint8_t> px(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, nullptr, px.data(), 0, nullptr))
    fail(path, ": corrupt PNG (", img.message, ")");
  Tensor t(Shape{channels, height, width});
  float* d = t.data();
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t i = 0; i < height * width; ++i) d[c * height * width + i] = px[i * channels + c] / 255.0f;
  return t;
}

void write_png(const std::string& path, const Tensor& chw) {
  check(chw.rank() == 3 && (chw.dim(0) == 1 || chw.dim(0) == 3), "write_png: expected (1 or 3, H, W), got ",
        chw.shape().str());
  const int64_t C = chw.dim(0), H = chw.dim(1), W = chw.dim(2);
  Tensor t = chw.contiguous();
  std::vector<uint8_t> px(static_cast<size_t>(C * H * W));
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < H * W; ++i)
      px[i * C + c] = static_cast<uint8_t>(std::lround(std::clamp(t.data()[c * H * W + i], 0.0f, 1.0f) * 255.0f));
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  img.width = static_cast<png_uint_32>(W);
  img.height = static_cast<png_uint_32>(H);
  img.format = C == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&img, nullptr, &size, 0, px.data(), 0, nullptr))
    fail(path, ": cannot encode PNG (", img.message, ")");
  std::vector<uint8_t> out(size);
  if (!png_image_write_to_memory(&img, out.data(), &size, 0, px.data(), 0, nullptr))
    fail(path, ": cannot encode PNG (", img.message, ")");
  write_file_atomic(path, out.data(), size);
}

}  // namespace normnet
