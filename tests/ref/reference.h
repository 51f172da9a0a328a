// normnet::ref: slow, obviously-correct reference kernels in double precision.
//
// Represents: the semantics written in src/kernels/*.h, implemented as plain nested loops with
// no blocking, no threads and no shared helpers with the library, so that a bug in a kernel
// cannot be copied here. The tests compare the float kernels against these.
// Requires: the same argument conventions as the kernel of the same name (outputs first,
// then inputs, then sizes; din overwritten, parameter gradients accumulated with +=).
// Ensures: every sum runs in double, in the obvious order.
#pragma once
#include <cstdint>

#include "kernels/batchnorm.h"
#include "kernels/conv2d.h"
#include "kernels/pool2d.h"

namespace normnet::ref {

using kernels::BatchNormShape;
using kernels::Conv2dShape;
using kernels::Pool2dShape;

// C (M x N) = op(A) * op(B) + beta * C; beta == 0 means C is not read.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const double* A, int64_t lda,
          const double* B, int64_t ldb, double beta, double* C, int64_t ldc);

// Conv2d, NCHW / OIHW. Output sizes computed here, not by Conv2dShape.
int64_t conv_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dilation);
void conv2d_forward(double* out, const double* in, const double* weight, const double* bias,
                    const Conv2dShape& s);
// din overwritten (may be null); dweight, dbias accumulated (dbias may be null).
void conv2d_backward(double* din, double* dweight, double* dbias, const double* dout,
                     const double* in, const double* weight, const Conv2dShape& s);

// Linear: out (N, O) = in (N, I) * weight^T (O, I) + bias (O).
void linear_forward(double* out, const double* in, const double* weight, const double* bias,
                    int64_t n, int64_t in_f, int64_t out_f);
void linear_backward(double* din, double* dweight, double* dbias, const double* dout,
                     const double* in, const double* weight, int64_t n, int64_t in_f,
                     int64_t out_f);

// BatchNorm over (N, C, S); gamma/beta (and dgamma/dbeta) may be null.
void batchnorm_forward_train(double* out, double* mean, double* var, double* invstd,
                             const double* in, const double* gamma, const double* beta, double eps,
                             const BatchNormShape& s);
void batchnorm_forward_eval(double* out, const double* in, const double* mean, const double* var,
                            const double* gamma, const double* beta, double eps,
                            const BatchNormShape& s);
void batchnorm_backward_train(double* din, double* dgamma, double* dbeta, const double* dout,
                              const double* in, const double* mean, const double* invstd,
                              const double* gamma, const BatchNormShape& s);
void batchnorm_backward_eval(double* din, double* dgamma, double* dbeta, const double* dout,
                             const double* in, const double* mean, const double* var,
                             const double* gamma, double eps, const BatchNormShape& s);
void batchnorm_update_running(double* running_mean, double* running_var, const double* mean,
                              const double* var, int64_t channels, int64_t count, double factor);

// Activations (backward conventions as in kernels/activation.h).
void relu_forward(double* out, const double* in, int64_t n);
void relu_backward(double* din, const double* dout, const double* out, int64_t n);
void leaky_relu_forward(double* out, const double* in, double slope, int64_t n);
void leaky_relu_backward(double* din, const double* dout, const double* in, double slope,
                         int64_t n);
void elu_forward(double* out, const double* in, double alpha, int64_t n);
void elu_backward(double* din, const double* dout, const double* out, double alpha, int64_t n);

// Pooling. Output sizes computed here (PyTorch's pooling_output_shape), not by Pool2dShape.
int64_t pool_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dilation,
                      bool ceil_mode);
void maxpool2d_forward(double* out, int32_t* argmax, const double* in, const Pool2dShape& s);
void maxpool2d_backward(double* din, const double* dout, const int32_t* argmax,
                        const Pool2dShape& s);
void avgpool2d_forward(double* out, const double* in, const Pool2dShape& s);  // dilation 1
void avgpool2d_backward(double* din, const double* dout, const Pool2dShape& s);
void global_avgpool_forward(double* out, const double* in, int64_t n, int64_t c, int64_t hw);
void global_avgpool_backward(double* din, const double* dout, int64_t n, int64_t c, int64_t hw);

// Softmax cross-entropy with label smoothing, mean over the batch. Returns the loss.
double cross_entropy_forward(double* probs, const double* logits, const int32_t* labels, int64_t n,
                             int64_t classes, double label_smoothing);
void cross_entropy_backward(double* dlogits, const double* probs, const int32_t* labels, int64_t n,
                            int64_t classes, double label_smoothing);

}  // namespace normnet::ref
