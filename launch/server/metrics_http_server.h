// MetricsHttpServer: serves GET /metrics (Prometheus text format) on its
// own thread. Why not prometheus-cpp's Exposer: its civetweb threads are
// created with a fixed 100 KiB stack, and in a CUDA build the static TLS
// of cuBLASLt/OpenBLAS/NCCL alone exceeds that, so pthread_create fails
// and the endpoint never starts. One plain thread with the default stack,
// one request per connection, is all a scraper needs.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "runtime/core/status.h"

namespace baton::server {

class MetricsHttpServer {
 public:
  // Listens on host:port (port 0 picks a free one); `render` produces the
  // body of each scrape and is called on the server's thread.
  static StatusOr<std::unique_ptr<MetricsHttpServer>> Start(const std::string& host, int port,
                                                            std::function<std::string()> render);
  ~MetricsHttpServer();
  int port() const { return port_; }

 private:
  MetricsHttpServer() = default;
  void Serve();
  void Answer(int connection);

  int listener_ = -1;
  int port_ = 0;
  std::function<std::string()> render_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace baton::server
