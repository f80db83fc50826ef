#include "runtime/serving/sequence.h"

#include <algorithm>
#include <utility>

namespace baton {
namespace {

double Seconds(Sequence::Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

Sequence::Sequence(uint64_t id_in, GenerationRequest request_in, RequestSink sink, const Tokenizer* tokenizer,
                   Clock::time_point accepted_in)
    : id(id_in),
      request(std::move(request_in)),
      accepted(accepted_in),
      tokens(request.prompt_ids),
      sink_(std::move(sink)) {
  if (tokenizer) {
    decoder_.emplace(*tokenizer);
    stop_.emplace(request.stop);
  }
}

void Sequence::MarkScheduled() {
  if (scheduled_) return;
  scheduled_ = true;
  first_scheduled_ = Clock::now();
}

bool Sequence::Accept(int32_t token, const TokenLogprobs* logprobs, const std::vector<int32_t>& eos_ids) {
  if (result.output_ids.empty()) first_token_ = Clock::now();
  tokens.push_back(token);
  result.output_ids.push_back(token);
  RequestEvent event;
  event.token_ids.push_back(token);
  if (logprobs) event.logprobs.push_back(*logprobs);
  if (decoder_) event.text_delta = stop_->Push(decoder_->Push(token));
  bool done = true;
  if (stop_ && stop_->stopped()) {
    result.finish_reason = FinishReason::kStop;
  } else if (!request.ignore_eos && std::find(eos_ids.begin(), eos_ids.end(), token) != eos_ids.end()) {
    result.finish_reason = FinishReason::kEos;
  } else if (num_generated() >= request.max_new_tokens) {
    result.finish_reason = FinishReason::kLength;
  } else {
    done = false;
  }
  // The text held back (a pending character, a possible stop string start)
  // is final once the sequence ends without a stop string.
  if (done && decoder_ && !stop_->stopped()) event.text_delta += stop_->Push(decoder_->Flush()) + stop_->Flush();
  result.text += event.text_delta;
  Send(event);
  return done;
}

void Sequence::End(FinishReason reason, const Status& error) {
  const Clock::time_point now = Clock::now();
  RequestEvent event;
  event.final = true;
  result.finish_reason = reason;
  event.result = result;
  event.prompt_tokens = static_cast<int>(request.prompt_ids.size());
  event.error = error;
  event.timings.queue_seconds = Seconds((scheduled_ ? first_scheduled_ : now) - accepted);
  event.timings.first_token_seconds = result.output_ids.empty() ? 0.0 : Seconds(first_token_ - accepted);
  event.timings.total_seconds = Seconds(now - accepted);
  Send(event);
}

void Sequence::Send(RequestEvent& event) {
  if (sink_) sink_(event);
}

}  // namespace baton
