// The server's Prometheus metrics, served on --metrics-port at /metrics.
//
// Request counters and latency histograms are updated as requests finish;
// the gauges (running, waiting, KV usage, prefix-cache counters) are read
// from the engine at scrape time, so they are never stale.
#pragma once

#include <memory>
#include <string>

#include "runtime/serving/engine.h"

namespace prometheus {
class Registry;
class Counter;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace baton::server {

class MetricsHttpServer;

class ServerMetrics {
 public:
  // Serves /metrics on host:port (port 0 picks a free one). `engine` must
  // outlive the metrics.
  static StatusOr<std::unique_ptr<ServerMetrics>> Start(const std::string& host, int port, const Engine& engine,
                                                        const std::string& model_name);
  ~ServerMetrics();
  int port() const { return port_; }

  // `status` is the gRPC status in snake case ("ok", "invalid_argument", ...).
  void RequestFinished(const std::string& status, const RequestEvent& final_event);
  void RequestRejected(const std::string& status);
  void TokenProduced(double seconds_since_previous_token, int tokens);

 private:
  ServerMetrics() = default;
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<class EngineCollector> engine_collector_;
  prometheus::Family<prometheus::Counter>* requests_ = nullptr;
  prometheus::Counter* prompt_tokens_ = nullptr;
  prometheus::Counter* generation_tokens_ = nullptr;
  prometheus::Histogram* duration_ = nullptr;
  prometheus::Histogram* first_token_ = nullptr;
  prometheus::Histogram* inter_token_ = nullptr;
  prometheus::Histogram* queue_ = nullptr;
  int port_ = 0;
  // Last: destroyed first, so no scrape runs while the rest is torn down.
  std::unique_ptr<MetricsHttpServer> http_;
};

}  // namespace baton::server
