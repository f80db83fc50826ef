// Backward of LayerNorm and RMSNorm on the device, as runtime/training/
// norm_grad.h defines it: dx is overwritten (in x's dtype), the weight and
// bias gradients are float32 and ACCUMULATE (+=), so micro-batches add into
// the same buffers. The row statistics are recomputed from x in float32
// rather than stored by the forward.
#pragma once

#include <cuda_runtime_api.h>

#include "runtime/core/tensor.h"

namespace baton::cuda {

// x, dy, dx [N, H] and weight [H] share one float dtype; dweight (and
// dbias, skipped when null or undefined) are F32 [H]. dx may alias dy.
void LaunchLayerNormBackward(const Tensor& x, const Tensor& weight, float eps, const Tensor& dy, Tensor& dx,
                             Tensor& dweight, Tensor* dbias, cudaStream_t stream);
void LaunchRmsNormBackward(const Tensor& x, const Tensor& weight, float eps, const Tensor& dy, Tensor& dx,
                           Tensor& dweight, cudaStream_t stream);

}  // namespace baton::cuda
