#include "launch/server/generation_service.h"

#include <chrono>
#include <cstdio>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>

#include "launch/server/request_conversion.h"
#include "sdk/cpp/grpc_status.h"

namespace baton::server {

std::string StatusLabel(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "ok";
    case grpc::StatusCode::CANCELLED:
      return "cancelled";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "invalid_argument";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "deadline_exceeded";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "resource_exhausted";
    case grpc::StatusCode::UNAVAILABLE:
      return "unavailable";
    default:
      return "error";
  }
}

namespace {

using Clock = std::chrono::system_clock;

// One Generate call. The engine's sink reaches it through `Link`, which
// outlives it: events that arrive after the call is over (a cancelled
// request's final event) still count in metrics and logs, then are dropped.
class GenerateStream final : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  struct Link {
    // Recursive: gRPC may run a reaction inline from StartWrite/Finish.
    std::recursive_mutex mu;
    GenerateStream* stream = nullptr;  // null once the call is done
    Engine::RequestId id = 0;
    bool submitted = false;
    bool cancel_requested = false;
    Clock::time_point deadline;
    Clock::time_point last_token;
    std::string request_id;
    std::vector<int32_t> prompt_ids;  // as the model sees them (echoed in the final event)
    ServerMetrics* metrics = nullptr;
  };

  GenerateStream(grpc::CallbackServerContext* context, Engine& engine, ServerMetrics* metrics,
                 const std::string& request_id)
      : engine_(engine), link_(std::make_shared<Link>()) {
    link_->stream = this;
    link_->deadline = context->deadline();
    link_->request_id = request_id;
    link_->metrics = metrics;
  }

  void Start(StatusOr<GenerationRequest> request) {
    std::shared_ptr<Link> link = link_;  // keeps the mutex alive if the call ends inside
    StatusOr<Engine::RequestId> id = request.status();
    if (request.ok()) {
      link->last_token = Clock::now();
      link->prompt_ids = request->prompt_ids;
      id = engine_.Submit(std::move(*request), [link](const RequestEvent& e) { Deliver(*link, e); });
    }
    std::lock_guard lock(link->mu);
    if (!id.ok()) {
      const grpc::Status status = ToGrpcStatus(id.status());
      if (link_->metrics) link_->metrics->RequestRejected(StatusLabel(status.error_code()));
      FinishOnce(status);
      return;
    }
    link_->id = *id;
    link_->submitted = true;
    if (link_->cancel_requested) engine_.Cancel(*id);
  }

  void OnCancel() override {
    std::shared_ptr<Link> link = link_;  // keeps the mutex alive if the call ends inside
    std::lock_guard lock(link->mu);
    link_->cancel_requested = true;
    if (link_->submitted) engine_.Cancel(link_->id);
    if (!writing_) FinishOnce(grpc::Status::CANCELLED);
  }

  void OnWriteDone(bool ok) override {
    std::shared_ptr<Link> link = link_;  // keeps the mutex alive if the call ends inside
    std::lock_guard lock(link->mu);
    pending_.pop_front();
    writing_ = false;
    if (!ok || link_->cancel_requested) {
      FinishOnce(grpc::Status::CANCELLED);
    } else if (!pending_.empty()) {
      StartNextWrite();
    } else if (final_queued_) {
      FinishOnce(final_status_);
    }
  }

  void OnDone() override {
    {
      std::lock_guard lock(link_->mu);
      link_->stream = nullptr;
    }
    delete this;
  }

 private:
  // On the engine's thread.
  static void Deliver(Link& link, const RequestEvent& event) {
    std::lock_guard lock(link.mu);
    grpc::Status status = grpc::Status::OK;
    if (event.final) {
      status = FinalStatus(link, event);
      Account(link, event, status);
    } else if (link.metrics) {
      const auto now = Clock::now();
      link.metrics->TokenProduced(std::chrono::duration<double>(now - link.last_token).count(),
                                  static_cast<int>(event.token_ids.size()));
      link.last_token = now;
    }
    if (!link.stream) return;
    v1::GenerateResponse response = ToProto(event);
    if (event.final) response.mutable_final()->mutable_prompt_ids()->Add(link.prompt_ids.begin(), link.prompt_ids.end());
    link.stream->Enqueue(std::move(response), event.final, status);
  }

  static grpc::Status FinalStatus(const Link& link, const RequestEvent& e) {
    if (e.result.finish_reason == FinishReason::kCancelled) {
      return Clock::now() >= link.deadline ? grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "deadline exceeded")
                                           : grpc::Status::CANCELLED;
    }
    if (e.result.finish_reason == FinishReason::kError) return ToGrpcStatus(e.error);
    return grpc::Status::OK;
  }

  // Metrics and the request's log line.
  static void Account(const Link& link, const RequestEvent& e, const grpc::Status& status) {
    const std::string label = StatusLabel(status.error_code());
    if (link.metrics) link.metrics->RequestFinished(label, e);
    nlohmann::json line = {{"event", "request"},
                           {"request_id", link.request_id},
                           {"id", link.id},
                           {"status", label},
                           {"finish_reason", FinishReasonName(e.result.finish_reason)},
                           {"prompt_tokens", e.prompt_tokens},
                           {"completion_tokens", e.result.output_ids.size()},
                           {"cached_prompt_tokens", e.result.cached_prompt_tokens},
                           {"queue_s", e.timings.queue_seconds},
                           {"ttft_s", e.timings.first_token_seconds},
                           {"total_s", e.timings.total_seconds}};
    if (!e.error.ok()) line["error"] = e.error.ToString();
    std::fprintf(stderr, "%s\n", line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  }

  // Under link_->mu.
  void Enqueue(v1::GenerateResponse response, bool final, const grpc::Status& status) {
    if (finished_ || final_queued_) return;
    pending_.push_back(std::move(response));
    if (final) {
      final_queued_ = true;
      final_status_ = status;
    }
    if (!writing_) StartNextWrite();
  }

  void StartNextWrite() {
    writing_ = true;
    StartWrite(&pending_.front());
  }

  void FinishOnce(const grpc::Status& status) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  Engine& engine_;
  std::shared_ptr<Link> link_;
  std::deque<v1::GenerateResponse> pending_;  // front is being written while writing_
  bool writing_ = false;
  bool final_queued_ = false;
  bool finished_ = false;
  grpc::Status final_status_;
};

}  // namespace

GenerationService::GenerationService(Engine& engine, const ModelConfig& config, const Tokenizer* tokenizer,
                                     const SamplingParams& default_sampling, ModelFacts facts, ServerMetrics* metrics)
    : engine_(engine),
      config_(config),
      tokenizer_(tokenizer),
      default_sampling_(default_sampling),
      facts_(std::move(facts)),
      metrics_(metrics) {}

grpc::ServerWriteReactor<v1::GenerateResponse>* GenerationService::Generate(grpc::CallbackServerContext* context,
                                                                           const v1::GenerateRequest* request) {
  auto* stream = new GenerateStream(context, engine_, metrics_, request->request_id());
  stream->Start(FromProto(*request, tokenizer_, default_sampling_));
  return stream;
}

grpc::ServerUnaryReactor* GenerationService::Tokenize(grpc::CallbackServerContext* context,
                                                      const v1::TokenizeRequest* request,
                                                      v1::TokenizeResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (tokenizer_ == nullptr) {
    reactor->Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "the model has no tokenizer.json"));
    return reactor;
  }
  const std::vector<int32_t> ids = tokenizer_->Encode(request->text(), request->add_special_tokens());
  response->mutable_token_ids()->Add(ids.begin(), ids.end());
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* GenerationService::Detokenize(grpc::CallbackServerContext* context,
                                                        const v1::DetokenizeRequest* request,
                                                        v1::DetokenizeResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (tokenizer_ == nullptr) {
    reactor->Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "the model has no tokenizer.json"));
    return reactor;
  }
  std::vector<int32_t> ids(request->token_ids().begin(), request->token_ids().end());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= config_.vocab_size) {
      reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                   "token_ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) +
                                       " is outside the vocabulary [0, " + std::to_string(config_.vocab_size) + ")"));
      return reactor;
    }
  }
  response->set_text(tokenizer_->Decode(ids, request->skip_special_tokens()));
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* GenerationService::GetModelInfo(grpc::CallbackServerContext* context,
                                                          const v1::GetModelInfoRequest*, v1::ModelInfo* info) {
  info->set_architecture(config_.model_type);
  info->set_model_path(facts_.model_path);
  info->set_num_layers(config_.num_layers);
  info->set_num_stages(static_cast<int32_t>(facts_.layers_per_stage.size()));
  info->mutable_layers_per_stage()->Add(facts_.layers_per_stage.begin(), facts_.layers_per_stage.end());
  info->set_context_length(config_.max_positions);
  info->set_vocab_size(config_.vocab_size);
  info->set_dtype(facts_.dtype);
  info->set_device(facts_.device);
  info->set_kv_block_size(facts_.kv_block_size);
  info->set_kv_num_blocks(facts_.kv_num_blocks);
  info->mutable_eos_token_ids()->Add(config_.eos_token_ids.begin(), config_.eos_token_ids.end());
  info->set_max_batch_tokens(engine_.options().max_batch_tokens);
  info->set_micro_batches(engine_.options().micro_batches);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace baton::server
