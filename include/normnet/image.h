// PNG input for prediction (libpng): grayscale, gray+alpha, RGB, RGBA, palette, 8 or 16 bit.
#pragma once
#include <string>

#include "normnet/tensor.h"

namespace normnet {

// Reads a PNG as (channels, height, width) floats in [0, 1]. channels 1 converts colour to
// gray (libpng's weights), 3 gives RGB. The image must be exactly height x width.
Tensor read_png(const std::string& path, int64_t channels, int64_t height, int64_t width);
// The same on a PNG file's bytes in memory; `what` names it in messages.
Tensor decode_png(const uint8_t* data, size_t size, const std::string& what, int64_t channels,
                  int64_t height, int64_t width);

// Writes a (1 or 3, H, W) tensor in [0, 1] as an 8-bit PNG (atomically).
void write_png(const std::string& path, const Tensor& chw);

}  // namespace normnet
