#include "stages/sampler_bank.h"

#include <span>
#include <string>

#include "runtime/sampling/logprobs.h"

namespace baton {

StatusOr<StepOutput> SamplerBank::Sample(const StepPlan& plan, const Tensor& logits, Backend& backend) {
  return SampleWith(plan, logits, &backend);
}

StatusOr<StepOutput> SamplerBank::Sample(const StepPlan& plan, const Tensor& logits) {
  return SampleWith(plan, logits, nullptr);
}

bool SamplerBank::AllGreedy(const StepPlan& plan) const {
  if (plan.return_logits) return false;
  for (const SequenceStep& s : plan.seqs) {
    if (!s.sample) return false;
    const SamplingParams* params = &s.sampling;
    int32_t logprobs = s.logprobs;
    if (!s.has_sampling) {
      auto it = sequences_.find(s.seq_id);
      if (it == sequences_.end()) return false;  // Prepare reports it
      params = &it->second.sampler.params();
      logprobs = it->second.logprobs;
    }
    if (!params->greedy() || params->repetition_penalty != 1.0f || logprobs >= 0) return false;
  }
  return true;
}

Status SamplerBank::StartGreedy(const StepPlan& plan, const Tensor& logits, const Tensor& picked, Backend& backend,
                                Backend::TokenTicket& ticket) {
  std::vector<Entry*> entries;
  SampleBatch batch;
  BATON_RETURN_IF_ERROR(Prepare(plan, logits, entries, batch));
  if (picked.defined()) {
    backend.StartStepTokens(picked, ticket);
  } else {
    backend.StartGreedyTokens(logits, ticket);
  }
  return Status::Ok();
}

Status SamplerBank::Prepare(const StepPlan& plan, const Tensor& logits, std::vector<Entry*>& entries,
                            SampleBatch& batch) {
  for (int64_t id : plan.released_seqs) sequences_.erase(id);
  if (logits.ndim() != 2 || logits.dim(0) != static_cast<int64_t>(plan.seqs.size())) {
    return Status::Internal("sampling " + std::to_string(plan.seqs.size()) + " sequences from " + logits.DebugString() +
                            " logits");
  }
  const size_t n = plan.seqs.size();
  // Registration and history first: the device needs every row's history.
  entries.assign(n, nullptr);
  batch.rows.assign(n, SampleRow{});
  size_t offset = 0;
  for (size_t i = 0; i < n; ++i) {
    const SequenceStep& s = plan.seqs[i];
    if (s.has_sampling) {
      Entry fresh{Sampler(s.sampling), s.logprobs, {}, std::mt19937_64(s.sampling.seed)};
      fresh.sampler.SkipDraws(static_cast<uint64_t>(s.sampler_draws_done));
      if (!s.sampling.greedy()) fresh.draws.discard(static_cast<uint64_t>(s.sampler_draws_done));
      sequences_.insert_or_assign(s.seq_id, std::move(fresh));
    }
    auto it = sequences_.find(s.seq_id);
    if (it == sequences_.end()) {
      return Status::Internal("no sampler for sequence " + std::to_string(s.seq_id) + " (its first step had none)");
    }
    Entry& e = it->second;
    entries[i] = &e;
    if (e.sampler.params().repetition_penalty != 1.0f) {  // the one reader of the history
      e.history.insert(e.history.end(), plan.token_ids.begin() + static_cast<int64_t>(offset),
                       plan.token_ids.begin() + static_cast<int64_t>(offset + s.num_new_tokens));
    }
    offset += static_cast<size_t>(s.num_new_tokens);
    SampleRow& row = batch.rows[i];
    if (!s.sample) {  // a prompt chunk before the last: history only (a cheap greedy row)
      row.temperature = 0.0f;
      continue;
    }
    const SamplingParams& p = e.sampler.params();
    row.temperature = p.temperature;
    row.top_k = p.top_k;
    row.top_p = p.top_p;
    row.min_p = p.min_p;
    row.repetition_penalty = p.repetition_penalty;
    if (!p.greedy()) row.uniform = static_cast<double>(e.draws() >> 11) * 0x1.0p-53;
    if (p.repetition_penalty != 1.0f) {
      row.context_begin = static_cast<int32_t>(batch.context.size());
      batch.context.insert(batch.context.end(), e.history.begin(), e.history.end());
      row.context_end = static_cast<int32_t>(batch.context.size());
    }
  }
  return Status::Ok();
}

StatusOr<StepOutput> SamplerBank::SampleWith(const StepPlan& plan, const Tensor& logits, Backend* backend) {
  std::vector<Entry*> entries;
  SampleBatch batch;
  BATON_RETURN_IF_ERROR(Prepare(plan, logits, entries, batch));
  const int64_t vocab = logits.dim(1);
  const size_t n = plan.seqs.size();
  std::vector<int32_t> picked;
  if (backend != nullptr) {
    backend->SampleTokens(logits, batch, picked);
  } else {
    picked.assign(n, kSampleOnHost);
  }

  Tensor host;  // float32 host logits, fetched only if some row needs them
  auto host_row = [&](size_t i) {
    if (host.raw() == nullptr) host = backend != nullptr ? backend->ToHostF32(logits) : logits;
    return std::span<const float>(host.data<float>() + static_cast<int64_t>(i) * vocab, static_cast<size_t>(vocab));
  };
  StepOutput out;
  out.tokens.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const SequenceStep& s = plan.seqs[i];
    Entry& e = *entries[i];
    if (!s.sample) {
      out.tokens.push_back(-1);
      continue;
    }
    int32_t token = picked[i];
    if (token == kSampleOnHost) {
      token = e.sampler.Sample(host_row(i), e.history);  // makes the draw `draws` made above
    } else {
      e.sampler.SkipDraws(1);  // the draw the backend used (nothing for greedy)
    }
    out.tokens.push_back(token);
    if (e.logprobs < 0 || token < 0) continue;
    // Entries are made only once someone needs one: a step where nobody
    // asked returns no logprobs at all.
    out.logprobs.resize(n);
    RowLogprobs lp = ComputeLogprobs(host_row(i), token, static_cast<size_t>(e.logprobs));
    TokenLogprobs& entry = out.logprobs[i];
    entry.logprob = lp.token_logprob;
    entry.top.reserve(lp.top.size());
    for (const TokenLogprob& t : lp.top) entry.top.emplace_back(t.id, t.logprob);
  }
  return out;
}

}  // namespace baton
