// `baton-server`: the serving job. Under `mpirun -np P` every rank runs its
// pipeline stage; rank 0 also runs the gRPC coordinator. Exit codes: 0 after
// a clean shutdown (SIGTERM/SIGINT drain), 2 for bad flags or model input,
// 1 for failures (a dead rank ends the whole job).
#include <cstdio>
#include <filesystem>

#include "launch/cli/cli_common.h"
#include "launch/server/coordinator.h"

namespace {

struct ServerFlags {
  baton::cli::ModelFlags model;
  baton::server::ServerOptions server;
  double kv_cache_bytes = 0;
  bool no_prefix_caching = false;
};

baton::Status Serve(ServerFlags& f) {
  if (f.kv_cache_bytes > 0) f.model.kv_cache_mb = f.kv_cache_bytes / (1 << 20);
  baton::server::ServerOptions options = f.server;
  options.model_dir = f.model.model_dir;
  options.engine.prefix_caching = !f.no_prefix_caching;
  if (options.engine.max_batch_tokens < 1) return baton::Status::InvalidArgument("--max-batch-tokens must be >= 1");
  if (options.engine.max_waiting < 1) return baton::Status::InvalidArgument("--max-waiting must be >= 1");
  if (!(options.drain_timeout_s >= 0)) return baton::Status::InvalidArgument("--drain-timeout must be >= 0");
  if (options.finetune.max_running_jobs < 1) return baton::Status::InvalidArgument("--max-finetune-jobs must be >= 1");
  if (options.finetune.baton_binary.empty()) {
    // The `baton` built and installed next to this baton-server.
    std::error_code error;
    const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
    options.finetune.baton_binary = (self.parent_path() / "baton").string();
  }
  return baton::cli::RunOnPipeline(f.model, [&](baton::ModelSession& session) -> baton::Status {
    BATON_ASSIGN_OR_RETURN(auto ranges, baton::cli::StageLayout(f.model, session));
    options.layers_per_stage = ranges;
    return baton::server::ServeOnCoordinator(options, session);
  });
}

}  // namespace

int main(int argc, char** argv) {
  baton::server::BlockShutdownSignals();
  CLI::App app{"baton-server: gRPC serving over a pipeline of MPI ranks"};
  ServerFlags f;
  baton::cli::AddModelFlags(app, f.model);
  app.add_option("--host", f.server.host, "Address to listen on")->capture_default_str();
  app.add_option("--port", f.server.port, "gRPC port (0: pick a free one)")->capture_default_str();
  app.add_option("--metrics-port", f.server.metrics_port, "Prometheus /metrics port (0: pick, -1: off)")
      ->capture_default_str();
  app.add_option("--kv-cache-bytes", f.kv_cache_bytes, "KV cache capacity in bytes (overrides --kv-cache-mb)");
  app.add_option("--max-batch-tokens", f.server.engine.max_batch_tokens,
                 "Tokens per forward step: decode tokens plus prefill chunks")
      ->capture_default_str();
  app.add_option("--micro-batches", f.server.engine.micro_batches, "Steps in flight (default: one per stage)");
  app.add_option("--max-waiting", f.server.engine.max_waiting, "Queued requests before RESOURCE_EXHAUSTED")
      ->capture_default_str();
  app.add_option("--drain-timeout", f.server.drain_timeout_s, "Seconds to finish running requests on SIGTERM")
      ->capture_default_str();
  app.add_option("--warmup-requests", f.server.warmup_requests, "Dummy requests run before reporting SERVING")
      ->capture_default_str();
  app.add_option("--finetune-dir", f.server.finetune.dir,
                 "Folder of every fine-tuning job's data and outputs (FineTuning service off without it)");
  app.add_option("--finetune-launcher", f.server.finetune.launcher,
                 "Words put before `baton finetune`, {ranks} = pp*dp (e.g. \"mpirun -np {ranks}\"); "
                 "empty: run it directly, one rank");
  app.add_option("--max-finetune-jobs", f.server.finetune.max_running_jobs, "Fine-tuning jobs running at once")
      ->capture_default_str();
  app.add_option("--baton-binary", f.server.finetune.baton_binary,
                 "The `baton` that runs fine-tuning jobs (default: the one next to baton-server)");
  app.add_flag("--no-prefix-caching", f.no_prefix_caching, "Do not reuse the KV blocks of repeated prompt prefixes");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  const baton::Status status = Serve(f);
  if (!status.ok()) {
    std::fprintf(stderr, "baton-server: error: %s\n", status.ToString().c_str());
    return status.ExitCode();
  }
  return 0;
}
