// Backward of Backend::Embedding / AddEmbedding: the rows of dy are added
// into the table gradient at the ids they were read from (repeated ids sum).
#pragma once

#include "runtime/core/tensor.h"

namespace baton {

// ids [N] I32, dy [N, H], dtable [rows, H] accumulates.
void EmbeddingBackward(const Tensor& ids, const Tensor& dy, Tensor& dtable);

}  // namespace baton
