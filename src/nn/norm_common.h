// Pieces shared by the normalization modules (BatchNorm and its variants, InstanceNorm,
// GroupNorm, LayerNorm): the (N, C, S) view of an input, PyTorch's initial affine parameters
// and running statistics, and the option and input checks they have in common.
#pragma once
#include <optional>
#include <string>

#include "kernels/batchnorm.h"
#include "normnet/error.h"
#include "normnet/module.h"

namespace normnet::norm {

// (N, C, *) -> N, C and S = the product of the trailing sizes.
inline kernels::BatchNormShape channel_shape(const Shape& in) {
  kernels::BatchNormShape s;
  s.n = in[0];
  s.c = in[1];
  s.spatial = 1;
  for (int i = 2; i < in.rank; ++i) s.spatial *= in[i];
  return s;
}

// weight (gamma) = 1, bias (beta) = 0, both excluded from weight decay on request.
inline void init_affine(Parameter& weight, Parameter& bias, const Shape& shape) {
  weight = Parameter("weight", shape, true);
  weight.value.fill(1.0f);
  bias = Parameter("bias", shape, true);
}

// running_mean = 0, running_var = 1.
inline void init_running_stats(Tensor& running_mean, Tensor& running_var, int64_t channels) {
  running_mean = Tensor(Shape{channels});
  running_var = Tensor::full(Shape{channels}, 1.0f);
}

inline void check_batchnorm_options(const char* who, int64_t num_features, double eps,
                                    const std::optional<double>& momentum) {
  check(num_features > 0, who, ": num_features must be positive, got ", num_features);
  check(eps > 0, who, ": eps must be positive, got ", eps);
  check(!momentum || (*momentum >= 0 && *momentum <= 1), who, ": momentum must be in [0, 1] or none");
}

// BatchNorm2d-style layers take (N, C, H, W); BatchNorm1d-style (N, C) or (N, C, L).
inline void check_batchnorm_input(const std::string& label, int dims, int64_t channels,
                                  const Shape& in) {
  if (dims == 2)
    check(in.rank == 4, label, ": expected 4D input (N, C, H, W), got ", in.str());
  else
    check(in.rank == 2 || in.rank == 3, label, ": expected 2D or 3D input (N, C) or (N, C, L), got ",
          in.str());
  check(in[1] == channels, label, ": expected ", channels, " channels, got input ", in.str());
}

}  // namespace normnet::norm
