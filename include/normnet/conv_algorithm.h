// Which algorithm float 3x3 convolutions with stride 1 and dilation 1 use (Conv2d; Conv1d has
// kernel height 1 and never qualifies). docs/performance.md, "Fourth tuning round", has the figures.
//   kFast  (default) Winograd F(2x2, 3x3) where the layer has at least 16 input and 16 output
//          channels per group, padding at most 2 and at most 64x64 outputs per plane: forward,
//          input gradient and weight gradient.
//          Same results for any thread count; they differ from kExact's by rounding only.
//   kExact the direct convolution everywhere: every output and gradient element is the sum of
//          the same products, in the same order, as im2col + GEMM.
// Process-wide. Set it before training or evaluating, not while a convolution runs.
#pragma once

namespace normnet {

enum class ConvAlgorithm { kFast, kExact };
void set_conv_algorithm(ConvAlgorithm a);
ConvAlgorithm conv_algorithm();

}  // namespace normnet
