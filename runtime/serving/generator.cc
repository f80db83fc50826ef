#include "runtime/serving/generator.h"

#include <algorithm>
#include <deque>
#include <optional>

#include "runtime/sampling/stop_matcher.h"

namespace baton {

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength:
      return "length";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kEos:
      return "eos";
  }
  return "?";
}

struct Generator::Sequence {
  size_t index = 0;
  const GenerationRequest* request = nullptr;
  std::vector<int32_t> tokens;  // prompt, then generated
  size_t cached = 0;            // tokens whose K/V are in the cache
  BlockTable blocks;
  int64_t id = 0;              // the sequence's id in step plans
  bool sampling_sent = false;  // the last stage has its sampler
  std::optional<StreamDecoder> decoder;
  std::optional<StopMatcher> stop;
  GenerationResult result;
  bool done = false;
};

struct Generator::MicroBatch {
  std::vector<Sequence*> seqs;
};

Generator::Generator(ModelRunner& runner, const Tokenizer* tokenizer, KvBlockManager& blocks, int micro_batches)
    : runner_(runner),
      tokenizer_(tokenizer),
      blocks_(blocks),
      micro_batches_(micro_batches > 0 ? micro_batches : std::max(1, runner.preferred_in_flight())) {}

Status Generator::Validate(const GenerationRequest& r) const {
  const ModelConfig& c = runner_.config();
  if (r.prompt_ids.empty()) return Status::InvalidArgument("prompt is empty: give at least one token");
  for (size_t i = 0; i < r.prompt_ids.size(); ++i) {
    if (r.prompt_ids[i] < 0 || r.prompt_ids[i] >= c.vocab_size) {
      return Status::InvalidArgument("prompt token " + std::to_string(i) + " has id " +
                                     std::to_string(r.prompt_ids[i]) + ", outside the vocabulary [0, " +
                                     std::to_string(c.vocab_size) + ")");
    }
  }
  if (r.max_new_tokens < 0) {
    return Status::InvalidArgument("max_new_tokens must be >= 0 (got " + std::to_string(r.max_new_tokens) + ")");
  }
  const int64_t total = static_cast<int64_t>(r.prompt_ids.size()) + r.max_new_tokens;
  if (total > c.max_positions) {
    return Status::InvalidArgument("prompt (" + std::to_string(r.prompt_ids.size()) + " tokens) + max_new_tokens (" +
                                   std::to_string(r.max_new_tokens) + ") exceeds the model's context of " +
                                   std::to_string(c.max_positions) + " tokens");
  }
  if (blocks_.BlocksFor(static_cast<int>(total)) > blocks_.num_blocks()) {
    return Status::InvalidArgument("request of " + std::to_string(total) + " tokens does not fit the KV cache (" +
                                   std::to_string(blocks_.num_blocks() * blocks_.block_size()) + " tokens)");
  }
  BATON_RETURN_IF_ERROR(r.sampling.Validate());
  if (!r.stop.empty() && tokenizer_ == nullptr) {
    return Status::InvalidArgument("stop strings need a tokenizer, and the model has none");
  }
  return ValidateStopStrings(r.stop);
}

// The uncached tokens of every sequence in the micro-batch, as one step.
StepPlan Generator::PlanStep(const MicroBatch& batch, int32_t index) {
  StepPlan plan;
  plan.block_size = blocks_.block_size();
  plan.micro_batch = index;
  plan.released_seqs = std::move(released_);
  released_.clear();
  for (Sequence* s : batch.seqs) {
    SequenceStep step;
    step.seq_id = s->id;
    step.has_sampling = !s->sampling_sent;
    step.sampling = s->request->sampling;
    s->sampling_sent = true;
    step.context_len = static_cast<int32_t>(s->tokens.size());
    step.num_new_tokens = static_cast<int32_t>(s->tokens.size() - s->cached);
    step.block_table = s->blocks;
    plan.token_ids.insert(plan.token_ids.end(), s->tokens.begin() + static_cast<int64_t>(s->cached), s->tokens.end());
    plan.seqs.push_back(std::move(step));
  }
  return plan;
}

// Appends a sampled token and decides whether the sequence is finished.
void Generator::AcceptToken(Sequence& s, int32_t token) {
  s.tokens.push_back(token);
  s.result.output_ids.push_back(token);
  std::string delta;
  if (s.decoder) delta = s.stop->Push(s.decoder->Push(token));
  const auto& eos = runner_.config().eos_token_ids;
  if (s.stop && s.stop->stopped()) {
    s.result.finish_reason = FinishReason::kStop;
    s.done = true;
  } else if (!s.request->ignore_eos && std::find(eos.begin(), eos.end(), token) != eos.end()) {
    s.result.finish_reason = FinishReason::kEos;
    s.done = true;
  } else if (static_cast<int>(s.result.output_ids.size()) >= s.request->max_new_tokens) {
    s.result.finish_reason = FinishReason::kLength;
    s.done = true;
  }
  if (s.done && s.decoder && !s.stop->stopped()) delta += s.stop->Push(s.decoder->Flush()) + s.stop->Flush();
  s.result.text += delta;
  if (on_token_) on_token_(s.index, token, delta);
}

StatusOr<std::vector<GenerationResult>> Generator::Generate(const std::vector<GenerationRequest>& requests,
                                                            const TokenCallback& on_token) {
  for (size_t i = 0; i < requests.size(); ++i) {
    Status st = Validate(requests[i]);
    if (!st.ok()) return requests.size() == 1 ? st : st.WithContext("request " + std::to_string(i));
  }
  on_token_ = on_token;
  std::vector<Sequence> seqs(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    Sequence& s = seqs[i];
    s.index = i;
    s.request = &requests[i];
    s.tokens = requests[i].prompt_ids;
    s.id = next_seq_id_++;
    if (tokenizer_) {
      s.decoder.emplace(*tokenizer_);
      s.stop.emplace(requests[i].stop);
    }
    s.done = requests[i].max_new_tokens == 0;
  }

  size_t next = 0;  // first request not yet admitted
  // Admits the next waiting request into `batch` if its whole generation
  // fits the free KV blocks.
  auto admit_one = [&](MicroBatch& batch) {
    while (next < seqs.size() && seqs[next].done) ++next;
    if (next == seqs.size()) return false;
    Sequence& s = seqs[next];
    if (!blocks_.Reserve(s.blocks, static_cast<int>(s.tokens.size()) + s.request->max_new_tokens).ok()) return false;
    batch.seqs.push_back(&s);
    ++next;
    return true;
  };

  std::vector<MicroBatch> batches(static_cast<size_t>(micro_batches_));
  std::deque<size_t> in_flight;  // micro-batches submitted, in submission order
  Status status;
  while (status.ok()) {
    if (in_flight.empty()) {
      // Deal waiting requests round-robin over the idle micro-batches.
      for (bool admitted = true; admitted;) {
        admitted = false;
        for (MicroBatch& b : batches) admitted = admit_one(b) || admitted;
      }
      for (size_t i = 0; i < batches.size() && status.ok(); ++i) {
        if (batches[i].seqs.empty()) continue;
        status = runner_.Submit(PlanStep(batches[i], static_cast<int32_t>(i)));
        in_flight.push_back(i);
      }
      if (in_flight.empty()) break;
      continue;
    }
    const size_t id = in_flight.front();
    in_flight.pop_front();
    MicroBatch& batch = batches[id];
    auto out = runner_.Collect();
    if (out.ok() && out->tokens.size() != batch.seqs.size()) {
      out = Status::Internal("step returned " + std::to_string(out->tokens.size()) + " tokens for " +
                             std::to_string(batch.seqs.size()) + " sequences");
    }
    if (!out.ok()) {
      status = out.status();
      break;
    }
    for (size_t i = 0; i < batch.seqs.size(); ++i) {
      Sequence& s = *batch.seqs[i];
      s.cached = s.tokens.size();
      AcceptToken(s, out->tokens[i]);
      if (s.done) {
        blocks_.Release(s.blocks);
        released_.push_back(s.id);
      }
    }
    std::erase_if(batch.seqs, [](Sequence* s) { return s->done; });
    while (admit_one(batch)) {
    }
    if (!batch.seqs.empty()) {
      status = runner_.Submit(PlanStep(batch, static_cast<int32_t>(id)));
      in_flight.push_back(id);
    }
  }
  on_token_ = nullptr;
  for (Sequence& s : seqs) blocks_.Release(s.blocks);
  BATON_RETURN_IF_ERROR(status);
  std::vector<GenerationResult> results;
  for (Sequence& s : seqs) results.push_back(std::move(s.result));
  return results;
}

}  // namespace baton
