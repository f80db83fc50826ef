// The optimizer's elementwise work on float32 flat vectors on the device:
// the AdamW update (which also applies the clipping coefficient and writes
// the 16-bit compute copy) and the sum of squares behind global
// gradient-norm clipping.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "runtime/core/tensor.h"

namespace baton::cuda {

// The float32 scalars of one AdamW step, formed on the host exactly as
// runtime/training/adamw.cc forms them (in double, then rounded to float),
// so that the device update is the CPU's bit for bit.
struct AdamWStepArgs {
  float decay = 1.0f;            // 1 - lr * weight_decay
  float one_minus_beta1 = 0.1f;  // 1 - beta1
  float beta2 = 0.999f;
  float one_minus_beta2 = 0.001f;      // 1 - beta2
  float step_size = 0.0f;              // lr / (1 - beta1^t)
  float bias_correction2_sqrt = 1.0f;  // sqrt(1 - beta2^t)
  float eps = 1e-8f;
  float grad_scale = 1.0f;  // the global-norm clipping coefficient (1: none)
};

// `step` is the 1-based step number t (AdamW::step() after its increment).
AdamWStepArgs MakeAdamWStepArgs(double lr, double beta1, double beta2, double eps, double weight_decay, int64_t step,
                                float grad_scale = 1.0f);

// param, grad, exp_avg, exp_avg_sq: F32 tensors of one size, updated in
// place (grad is read only):
//   g = grad * grad_scale  (one float multiply, as scaling the gradient first)
//   p *= decay;  m += (g - m) * (1 - beta1);  v = v * beta2 + (1 - beta2) * g * g
//   p -= step_size * (m / (sqrt(v) / sqrt(1 - beta2^t) + eps))
// and, when `compute_copy` is given (F32/F16/BF16, param's size), writes p
// rounded to its dtype there.
void LaunchAdamWStep(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const AdamWStepArgs& args,
                     Tensor* compute_copy, cudaStream_t stream);

// *device_out += sum of x[i]^2 over the F32 tensor x, each square and sum in
// double (the caller zeroes *device_out once, then may add several tensors
// into it). Blocks meet through a double atomicAdd, so the last bits depend
// on their order.
void LaunchSumSquares(const Tensor& x, double* device_out, cudaStream_t stream);

}  // namespace baton::cuda
