#include "stages/sampled_step_codec.h"

#include <string>

#include "stages/word_stream.h"

namespace baton {

// Layout, in int32 words: the stages' busy times (count, int64 each);
// tokens[num_seqs]; then, with logprobs, per sequence: top count k, the
// token's logprob, k x (id, logprob). Floats travel as their bits.
std::vector<uint8_t> EncodeSampledStep(const StepOutput& out) {
  WordWriter w;
  w.PutAll64(out.stage_busy_us);
  for (int32_t t : out.tokens) w.Put(t);
  for (const TokenLogprobs& lp : out.logprobs) {
    w.Put(static_cast<int32_t>(lp.top.size()));
    w.PutFloat(lp.logprob);
    for (const auto& [id, logprob] : lp.top) {
      w.Put(id);
      w.PutFloat(logprob);
    }
  }
  return w.Bytes();
}

StatusOr<StepOutput> DecodeSampledStep(const std::vector<uint8_t>& bytes, size_t num_seqs) {
  auto malformed = [&] {
    return Status::DataLoss("sampled step message of " + std::to_string(bytes.size()) + " bytes for " +
                            std::to_string(num_seqs) + " sequences is malformed");
  };
  WordReader r(bytes);
  StepOutput out;
  out.stage_busy_us = r.GetAll64();
  out.tokens.resize(num_seqs);
  for (int32_t& t : out.tokens) t = r.Get();
  if (r.failed()) return malformed();
  if (r.done()) return out;  // tokens only: nobody asked for logprobs
  out.logprobs.resize(num_seqs);
  for (TokenLogprobs& lp : out.logprobs) {
    const int32_t k = r.Get();
    if (k < 0 || k > static_cast<int32_t>(bytes.size())) return malformed();
    lp.logprob = r.GetFloat();
    lp.top.resize(static_cast<size_t>(k));
    for (auto& [id, logprob] : lp.top) {
      id = r.Get();
      logprob = r.GetFloat();
    }
    if (r.failed()) return malformed();
  }
  if (!r.done()) return malformed();
  return out;
}

}  // namespace baton
