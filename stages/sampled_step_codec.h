// The last stage's answer to a sampled step on the wire: one message per
// step back to rank 0: the stages' busy times (a few words), then the
// tokens (4 bytes a sequence), and only when some sequence of the step
// returned logprobs, each sequence's TokenLogprobs.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/serving/model_runner.h"

namespace baton {

// out.tokens, and out.logprobs when not empty (one entry per token).
std::vector<uint8_t> EncodeSampledStep(const StepOutput& out);
// The step had `num_seqs` sequences. DataLoss when the bytes do not hold
// that many tokens and, if anything follows, that many logprob entries.
StatusOr<StepOutput> DecodeSampledStep(const std::vector<uint8_t>& bytes, size_t num_seqs);

}  // namespace baton
