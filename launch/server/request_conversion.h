// Between the wire and the engine: a GenerateRequest message becomes a
// GenerationRequest (prompt tokenized, unset sampling fields filled from the
// model's generation defaults), and engine events become response messages.
// API-level checks live here (a prompt is given, logprobs within range, stop
// strings bounded); the engine checks the rest against the model. Errors
// name the request field, as the client spelled it.
#pragma once

#include "baton/v1/generation.pb.h"
#include "runtime/sampling/sampling_params.h"
#include "runtime/serving/engine.h"
#include "runtime/tokenizer/tokenizer.h"

namespace baton::server {

inline constexpr int kMaxLogprobs = 20;

StatusOr<GenerationRequest> FromProto(const v1::GenerateRequest& request, const Tokenizer* tokenizer,
                                      const SamplingParams& defaults);

v1::FinishReason ToProto(FinishReason reason);
// A token event, or the final event (with usage and timings).
v1::GenerateResponse ToProto(const RequestEvent& event);

}  // namespace baton::server
