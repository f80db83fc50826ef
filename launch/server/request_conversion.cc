#include "launch/server/request_conversion.h"

#include <string>

namespace baton::server {

StatusOr<GenerationRequest> FromProto(const v1::GenerateRequest& request, const Tokenizer* tokenizer,
                                      const SamplingParams& defaults) {
  GenerationRequest r;
  switch (request.prompt_case()) {
    case v1::GenerateRequest::kText:
      if (tokenizer == nullptr) {
        return Status::InvalidArgument("text: the model has no tokenizer.json; send token_ids instead");
      }
      r.prompt_ids = tokenizer->Encode(request.text());
      break;
    case v1::GenerateRequest::kTokenIds:
      r.prompt_ids.assign(request.token_ids().ids().begin(), request.token_ids().ids().end());
      break;
    default:
      return Status::InvalidArgument("prompt: give text or token_ids");
  }
  if (r.prompt_ids.empty()) return Status::InvalidArgument("prompt: it has no tokens");
  r.max_new_tokens = request.max_new_tokens();
  if (request.logprobs() < 0 || request.logprobs() > kMaxLogprobs) {
    return Status::InvalidArgument("logprobs must be in [0, " + std::to_string(kMaxLogprobs) + "] (got " +
                                   std::to_string(request.logprobs()) + ")");
  }
  r.logprobs = request.logprobs();
  r.ignore_eos = request.ignore_eos();
  r.stop.assign(request.stop().begin(), request.stop().end());

  SamplingParams& p = r.sampling;
  p = defaults;
  const v1::SamplingParameters& s = request.sampling();
  if (s.has_temperature()) p.temperature = s.temperature();
  if (s.has_top_k()) p.top_k = s.top_k();
  if (s.has_top_p()) p.top_p = s.top_p();
  if (s.has_min_p()) p.min_p = s.min_p();
  if (s.has_repetition_penalty()) p.repetition_penalty = s.repetition_penalty();
  p.seed = s.has_seed() ? s.seed() : 0;
  return r;
}

v1::FinishReason ToProto(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength:
      return v1::FINISH_REASON_LENGTH;
    case FinishReason::kStop:
      return v1::FINISH_REASON_STOP;
    case FinishReason::kEos:
      return v1::FINISH_REASON_EOS;
    case FinishReason::kCancelled:
      return v1::FINISH_REASON_CANCELLED;
    case FinishReason::kError:
      return v1::FINISH_REASON_ERROR;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

v1::GenerateResponse ToProto(const RequestEvent& event) {
  v1::GenerateResponse response;
  if (!event.final) {
    v1::TokenEvent* t = response.mutable_token();
    t->mutable_token_ids()->Add(event.token_ids.begin(), event.token_ids.end());
    t->set_text(event.text_delta);
    for (const TokenLogprobs& lp : event.logprobs) {
      t->add_logprobs(lp.logprob);
      v1::TopLogprobs* top = t->add_top_logprobs();
      for (const auto& [id, logprob] : lp.top) {
        v1::TopLogprob* e = top->add_entries();
        e->set_token_id(id);
        e->set_logprob(logprob);
      }
    }
    return response;
  }
  v1::FinalEvent* f = response.mutable_final();
  f->set_finish_reason(ToProto(event.result.finish_reason));
  f->set_text(event.result.text);
  f->mutable_output_ids()->Add(event.result.output_ids.begin(), event.result.output_ids.end());
  if (!event.error.ok()) f->set_error(event.error.ToString());
  v1::Usage* u = f->mutable_usage();
  u->set_prompt_tokens(event.prompt_tokens);
  u->set_completion_tokens(static_cast<int32_t>(event.result.output_ids.size()));
  u->set_cached_prompt_tokens(event.result.cached_prompt_tokens);
  v1::Timings* t = f->mutable_timings();
  t->set_queue_seconds(event.timings.queue_seconds);
  t->set_time_to_first_token_seconds(event.timings.first_token_seconds);
  t->set_total_seconds(event.timings.total_seconds);
  return response;
}

}  // namespace baton::server
