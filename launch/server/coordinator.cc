#include "launch/server/coordinator.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <thread>

#include "launch/server/finetune_jobs.h"
#include "launch/server/finetuning_service.h"
#include "launch/server/generation_service.h"
#include "launch/server/server_metrics.h"

namespace baton::server {
namespace {

constexpr const char* kServiceName = "baton.v1.Generation";
constexpr const char* kFineTuningServiceName = "baton.v1.FineTuning";

sigset_t ShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

// Waits for SIGTERM/SIGINT; on one, stops admission, lets running requests
// finish for up to the drain timeout, then stops the engine.
class ShutdownWatcher {
 public:
  ShutdownWatcher(Engine& engine, grpc::HealthCheckServiceInterface* health, double drain_timeout_s)
      : thread_([this, &engine, health, drain_timeout_s] { Watch(engine, health, drain_timeout_s); }) {}
  ~ShutdownWatcher() {
    done_ = true;
    thread_.join();
  }
  bool signalled() const { return signalled_; }

 private:
  void Watch(Engine& engine, grpc::HealthCheckServiceInterface* health, double drain_timeout_s) {
    const sigset_t set = ShutdownSignals();
    const timespec poll{0, 200'000'000};
    while (!done_) {
      const int sig = sigtimedwait(&set, nullptr, &poll);
      if (sig < 0) continue;
      signalled_ = true;
      std::fprintf(stderr, "baton-server: signal %d: draining (up to %.0f s)\n", sig, drain_timeout_s);
      health->SetServingStatus(false);
      engine.StopAdmission();
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(drain_timeout_s);
      while (!engine.Idle() && std::chrono::steady_clock::now() < deadline && !done_) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (!engine.Idle()) std::fprintf(stderr, "baton-server: drain timeout; ending the requests still running\n");
      engine.Stop();
      return;
    }
  }

  std::atomic<bool> done_{false};
  std::atomic<bool> signalled_{false};
  std::thread thread_;
};

ModelFacts FactsOf(const ServerOptions& options, ModelSession& session) {
  ModelFacts facts;
  facts.model_path = options.model_dir;
  Backend& backend = session.stage().backend();
  facts.dtype = DTypeName(backend.compute_dtype());
  facts.device = backend.name();
  facts.layers_per_stage = options.layers_per_stage;
  facts.kv_block_size = session.blocks().block_size();
  facts.kv_num_blocks = session.blocks().num_blocks();
  return facts;
}

}  // namespace

void BlockShutdownSignals() {
  const sigset_t set = ShutdownSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

Status ServeOnCoordinator(const ServerOptions& options, ModelSession& session) {
  Engine engine(session.runner(), session.tokenizer(), session.blocks(), options.engine);
  std::unique_ptr<ServerMetrics> metrics;
  if (options.metrics_port >= 0) {
    BATON_ASSIGN_OR_RETURN(metrics, ServerMetrics::Start(options.host, options.metrics_port, engine, options.model_dir));
  }
  // Declared before the gRPC server, so it outlives every call in flight.
  std::unique_ptr<FinetuneJobs> jobs;
  if (!options.finetune.dir.empty()) {
    FinetuneConfig config = options.finetune;
    if (config.default_model.empty()) config.default_model = options.model_dir;
    BATON_ASSIGN_OR_RETURN(jobs, FinetuneJobs::Create(std::move(config)));
  }
  FineTuningService finetuning(jobs.get());
  GenerationService service(engine, session.config(), session.tokenizer(), session.default_sampling(),
                            FactsOf(options, session), metrics.get());
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  const std::string address = options.host + ":" + std::to_string(options.port);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.RegisterService(&service);
  builder.RegisterService(&finetuning);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) return Status::Unavailable("cannot listen on " + address + " (port in use?)");
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  health->SetServingStatus(false);
  std::printf("baton-server: listening on %s:%d, metrics on %d, pid %d\n", options.host.c_str(), port,
              metrics ? metrics->port() : -1, static_cast<int>(getpid()));
  std::fflush(stdout);

  Status status = engine.Warmup(options.warmup_requests, 8, 4);
  if (status.ok()) {
    health->SetServingStatus(true);
    health->SetServingStatus(kServiceName, true);
    if (jobs) health->SetServingStatus(kFineTuningServiceName, true);
    std::fprintf(stderr, "baton-server: warmed up, serving\n");
    ShutdownWatcher watcher(engine, health, options.drain_timeout_s);
    status = engine.Run();
    health->SetServingStatus(false);
  }
  if (!status.ok()) std::fprintf(stderr, "baton-server: engine stopped: %s\n", status.ToString().c_str());
  if (jobs) jobs->Shutdown();  // cancels running jobs; their watchers get the final state
  // Let the final events already queued reach their clients.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return status;
}

}  // namespace baton::server
