#include "stages/step_plan_codec.h"

#include <string>

#include "stages/word_stream.h"

namespace baton {

// "BTP3": version 2 added sample, logprobs and sampler_draws_done; 3 the
// stages' busy times.
static constexpr int32_t kMagic = 0x33505442;

std::vector<uint8_t> EncodeStepPlan(const StepPlan& plan) {
  WordWriter w;
  w.Put(kMagic);
  w.Put(plan.block_size);
  w.Put(plan.micro_batch);
  w.Put(static_cast<int32_t>(plan.seqs.size()));
  for (const SequenceStep& s : plan.seqs) {
    w.Put64(s.seq_id);
    w.Put(s.num_new_tokens);
    w.Put(s.context_len);
    w.Put(s.all_logits ? 1 : 0);
    w.Put(s.sample ? 1 : 0);
    w.PutAll(s.block_table);
    w.Put(s.has_sampling ? 1 : 0);
    if (s.has_sampling) {
      const SamplingParams& p = s.sampling;
      for (float f : {p.temperature, p.top_p, p.min_p, p.repetition_penalty}) w.PutFloat(f);
      w.Put(p.top_k);
      w.Put64(static_cast<int64_t>(p.seed));
      w.Put(s.logprobs);
      w.Put(s.sampler_draws_done);
    }
  }
  w.PutAll(plan.token_ids);
  w.Put(plan.return_logits ? 1 : 0);
  w.Put(static_cast<int32_t>(plan.released_seqs.size()));
  for (int64_t id : plan.released_seqs) w.Put64(id);
  w.PutAll64(plan.stage_busy_us);
  return w.Bytes();
}

StatusOr<StepPlan> DecodeStepPlan(const std::vector<uint8_t>& bytes) {
  WordReader r(bytes);
  if (r.Get() != kMagic) return Status::DataLoss("step plan message does not start with the plan marker");
  StepPlan plan;
  plan.block_size = r.Get();
  plan.micro_batch = r.Get();
  const int32_t num_seqs = r.Get();
  if (num_seqs < 0 || static_cast<size_t>(num_seqs) > bytes.size()) {
    return Status::DataLoss("step plan message claims " + std::to_string(num_seqs) + " sequences");
  }
  for (int32_t i = 0; i < num_seqs && !r.failed(); ++i) {
    SequenceStep s;
    s.seq_id = r.Get64();
    s.num_new_tokens = r.Get();
    s.context_len = r.Get();
    s.all_logits = r.Get() != 0;
    s.sample = r.Get() != 0;
    s.block_table = r.GetAll();
    s.has_sampling = r.Get() != 0;
    if (s.has_sampling) {
      SamplingParams& p = s.sampling;
      for (float* f : {&p.temperature, &p.top_p, &p.min_p, &p.repetition_penalty}) *f = r.GetFloat();
      p.top_k = r.Get();
      p.seed = static_cast<uint64_t>(r.Get64());
      s.logprobs = r.Get();
      s.sampler_draws_done = r.Get();
    }
    plan.seqs.push_back(std::move(s));
  }
  plan.token_ids = r.GetAll();
  plan.return_logits = r.Get() != 0;
  const int32_t released = r.Get();
  for (int32_t i = 0; i < released && !r.failed(); ++i) plan.released_seqs.push_back(r.Get64());
  plan.stage_busy_us = r.GetAll64();
  if (!r.done())
    return Status::DataLoss("step plan message of " + std::to_string(bytes.size()) + " bytes is malformed");
  return plan;
}

}  // namespace baton
