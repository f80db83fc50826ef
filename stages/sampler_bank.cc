#include "stages/sampler_bank.h"

#include <span>
#include <string>

namespace baton {

StatusOr<std::vector<int32_t>> SamplerBank::Sample(const StepPlan& plan, const Tensor& logits) {
  for (int64_t id : plan.released_seqs) sequences_.erase(id);
  if (logits.dim(0) != static_cast<int64_t>(plan.seqs.size())) {
    return Status::Internal("sampling " + std::to_string(plan.seqs.size()) + " sequences from " +
                            std::to_string(logits.dim(0)) + " logit rows");
  }
  const int64_t vocab = logits.dim(1);
  std::vector<int32_t> tokens;
  size_t offset = 0;
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const SequenceStep& s = plan.seqs[i];
    if (s.has_sampling) sequences_.insert_or_assign(s.seq_id, Entry{Sampler(s.sampling), {}});
    auto it = sequences_.find(s.seq_id);
    if (it == sequences_.end()) {
      return Status::Internal("no sampler for sequence " + std::to_string(s.seq_id) + " (its first step had none)");
    }
    Entry& e = it->second;
    e.history.insert(e.history.end(), plan.token_ids.begin() + static_cast<int64_t>(offset),
                     plan.token_ids.begin() + static_cast<int64_t>(offset + s.num_new_tokens));
    offset += static_cast<size_t>(s.num_new_tokens);
    std::span<const float> row(logits.data<float>() + static_cast<int64_t>(i) * vocab, static_cast<size_t>(vocab));
    tokens.push_back(e.sampler.Sample(row, e.history));
  }
  return tokens;
}

}  // namespace baton
