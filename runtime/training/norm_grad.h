// Backward of LayerNorm and RMSNorm (float32 host tensors). The forward's
// statistics are recomputed from x in double, as the CPU forward computes
// them, instead of being stored: two numbers per row are cheaper to redo
// than to keep for every layer.
#pragma once

#include "runtime/core/tensor.h"
#include "runtime/model/model_config.h"

namespace baton {

// x, dy, dx [N, H]; weight [H]. dx is overwritten; dw and db (LayerNorm,
// skipped when null or undefined) accumulate.
void LayerNormBackward(const Tensor& x, const Tensor& weight, float eps, const Tensor& dy, Tensor& dx, Tensor& dw,
                       Tensor* db);
void RmsNormBackward(const Tensor& x, const Tensor& weight, float eps, const Tensor& dy, Tensor& dx, Tensor& dw);

// The model's own norm (config.norm): LayerNorm with its bias, or RMSNorm.
void ModelNormBackward(const ModelConfig& config, const Tensor& x, const Tensor& weight, const Tensor& dy, Tensor& dx,
                       Tensor& dw, Tensor& db);

}  // namespace baton
