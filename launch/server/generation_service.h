// The baton.v1.Generation gRPC service (callback API) in front of the
// Engine. Generate streams engine events to the client as they come: each
// call's events are queued and written one at a time, so the engine thread
// never waits on a slow client. A client that cancels, disconnects or
// passes its deadline has its request cancelled in the engine, which frees
// its KV blocks within one iteration.
#pragma once

#include <string>
#include <vector>

#include "baton/v1/generation.grpc.pb.h"
#include "launch/server/server_metrics.h"
#include "runtime/model/model_config.h"
#include "runtime/serving/engine.h"
#include "runtime/tokenizer/tokenizer.h"

namespace baton::server {

// What GetModelInfo reports beyond the config.
struct ModelFacts {
  std::string model_path;
  std::string dtype;
  std::string device = "cpu";
  std::vector<int> layers_per_stage;
  int kv_block_size = 0;
  int kv_num_blocks = 0;
};

class GenerationService final : public v1::Generation::CallbackService {
 public:
  // All referenced objects must outlive the service. `metrics` may be null.
  GenerationService(Engine& engine, const ModelConfig& config, const Tokenizer* tokenizer,
                    const SamplingParams& default_sampling, ModelFacts facts, ServerMetrics* metrics);

  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(grpc::CallbackServerContext* context,
                                                           const v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context, const v1::TokenizeRequest* request,
                                     v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* Detokenize(grpc::CallbackServerContext* context, const v1::DetokenizeRequest* request,
                                       v1::DetokenizeResponse* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context, const v1::GetModelInfoRequest* request,
                                         v1::ModelInfo* response) override;

 private:
  Engine& engine_;
  const ModelConfig& config_;
  const Tokenizer* tokenizer_;
  SamplingParams default_sampling_;
  ModelFacts facts_;
  ServerMetrics* metrics_;
};

// "ok", "invalid_argument", ... for metrics and logs.
std::string StatusLabel(grpc::StatusCode code);

}  // namespace baton::server
