// Rank 0 of baton-server: the gRPC server (Generation, FineTuning, health,
// reflection), the metrics endpoint, the Engine and the fine-tuning jobs,
// from start to a clean exit.
//
// Lifecycle: listen (health NOT_SERVING) -> warm up -> SERVING -> run the
// engine on this thread until SIGTERM/SIGINT (stop admission, drain within
// --drain-timeout, exit 0) or a pipeline failure (every pending request
// ends UNAVAILABLE, health NOT_SERVING, and the error is returned so the
// whole job exits non-zero). Either way, fine-tuning jobs still queued or
// running are cancelled (their processes are gone) before the server stops.
#pragma once

#include <string>

#include "launch/server/finetune_request.h"
#include "runtime/serving/engine.h"
#include "stages/model_session.h"

namespace baton::server {

struct ServerOptions {
  std::string host = "0.0.0.0";
  int port = 50051;          // 0: pick a free port (printed)
  int metrics_port = 9464;   // 0: pick a free port; -1: no metrics
  double drain_timeout_s = 30;
  int warmup_requests = 2;
  int max_message_bytes = 4 << 20;
  std::vector<int> layers_per_stage;  // as the stages were split (for GetModelInfo)
  std::string model_dir;
  EngineOptions engine;
  FinetuneConfig finetune;  // finetune.dir empty: no fine-tuning
};

// Blocks SIGTERM and SIGINT in this thread and every thread it starts, so
// that only the coordinator's watcher sees them (and workers ignore them:
// rank 0 stops them when it has drained). Call first thing in main().
void BlockShutdownSignals();

Status ServeOnCoordinator(const ServerOptions& options, ModelSession& session);

}  // namespace baton::server
