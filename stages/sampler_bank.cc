#include "stages/sampler_bank.h"

#include <span>
#include <string>

#include "runtime/sampling/logprobs.h"

namespace baton {

StatusOr<StepOutput> SamplerBank::Sample(const StepPlan& plan, const Tensor& logits) {
  for (int64_t id : plan.released_seqs) sequences_.erase(id);
  if (logits.dim(0) != static_cast<int64_t>(plan.seqs.size())) {
    return Status::Internal("sampling " + std::to_string(plan.seqs.size()) + " sequences from " +
                            std::to_string(logits.dim(0)) + " logit rows");
  }
  const int64_t vocab = logits.dim(1);
  StepOutput out;
  out.tokens.reserve(plan.seqs.size());
  size_t offset = 0;
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const SequenceStep& s = plan.seqs[i];
    if (s.has_sampling) {
      Entry fresh{Sampler(s.sampling), s.logprobs, {}};
      fresh.sampler.SkipDraws(static_cast<uint64_t>(s.sampler_draws_done));
      sequences_.insert_or_assign(s.seq_id, std::move(fresh));
    }
    auto it = sequences_.find(s.seq_id);
    if (it == sequences_.end()) {
      return Status::Internal("no sampler for sequence " + std::to_string(s.seq_id) + " (its first step had none)");
    }
    Entry& e = it->second;
    e.history.insert(e.history.end(), plan.token_ids.begin() + static_cast<int64_t>(offset),
                     plan.token_ids.begin() + static_cast<int64_t>(offset + s.num_new_tokens));
    offset += static_cast<size_t>(s.num_new_tokens);
    if (!s.sample) {  // a prompt chunk before the last: history only
      out.tokens.push_back(-1);
      continue;
    }
    std::span<const float> row(logits.data<float>() + static_cast<int64_t>(i) * vocab, static_cast<size_t>(vocab));
    const int32_t token = e.sampler.Sample(row, e.history);
    out.tokens.push_back(token);
    if (e.logprobs < 0 || token < 0) continue;
    // Entries are made only once someone needs one: a step where nobody
    // asked returns no logprobs at all.
    out.logprobs.resize(plan.seqs.size());
    RowLogprobs lp = ComputeLogprobs(row, token, static_cast<size_t>(e.logprobs));
    TokenLogprobs& entry = out.logprobs[i];
    entry.logprob = lp.token_logprob;
    entry.top.reserve(lp.top.size());
    for (const TokenLogprob& t : lp.top) entry.top.emplace_back(t.id, t.logprob);
  }
  return out;
}

}  // namespace baton
