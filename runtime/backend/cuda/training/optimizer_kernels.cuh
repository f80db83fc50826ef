// The optimizer's elementwise work on float32 flat vectors on the device:
// the AdamW update, the sum of squares behind global gradient-norm
// clipping, and the scaling that applies it. Casting the float32 master
// weights to the compute dtype is LaunchConvert (runtime/backend/cuda/
// convert.cuh), not repeated here.
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
};

// `step` is the 1-based step number t (AdamW::step() after its increment).
AdamWStepArgs MakeAdamWStepArgs(double lr, double beta1, double beta2, double eps, double weight_decay, int64_t step);

// param, grad, exp_avg, exp_avg_sq: F32 tensors of one size, updated in
// place (grad is read only):
//   p *= decay;  m += (g - m) * (1 - beta1);  v = v * beta2 + (1 - beta2) * g * g
//   p -= step_size * (m / (sqrt(v) / sqrt(1 - beta2^t) + eps))
void LaunchAdamWStep(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const AdamWStepArgs& args,
                     cudaStream_t stream);

// *device_out += sum of x[i]^2 over the F32 tensor x, each square and sum in
// double (the caller zeroes *device_out once, then may add several tensors
// into it). Blocks meet through a double atomicAdd, so the last bits depend
// on their order.
void LaunchSumSquares(const Tensor& x, double* device_out, cudaStream_t stream);

// x *= factor, F32 x.
void LaunchScale(Tensor& x, float factor, cudaStream_t stream);

}  // namespace baton::cuda
