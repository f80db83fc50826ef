#include "launch/server/server_metrics.h"

#include "launch/server/metrics_http_server.h"

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <mutex>

namespace baton::server {

#ifndef BATON_VERSION
#define BATON_VERSION "dev"
#endif

// Reads the engine's live numbers at scrape time.
class EngineCollector final : public prometheus::Collectable {
 public:
  EngineCollector(const Engine& engine, std::string model_name) : engine_(engine), model_(std::move(model_name)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    const EngineStats s = engine_.Stats();
    std::vector<prometheus::MetricFamily> families;
    auto add = [&](const char* name, const char* help, prometheus::MetricType type, double value) {
      prometheus::MetricFamily f{name, help, type, {}};
      prometheus::ClientMetric m;
      if (type == prometheus::MetricType::Counter) {
        m.counter.value = value;
      } else {
        m.gauge.value = value;
      }
      f.metric.push_back(m);
      families.push_back(std::move(f));
    };
    using T = prometheus::MetricType;
    add("baton_requests_running", "Requests admitted and not finished", T::Gauge, s.running);
    add("baton_requests_waiting", "Requests queued or preempted", T::Gauge, s.waiting);
    add("baton_kv_cache_usage_ratio", "KV blocks held by running sequences / all blocks", T::Gauge, s.kv_usage);
    add("baton_prefix_cache_queries_total", "Prompt blocks looked up in the prefix cache", T::Counter,
        static_cast<double>(s.prefix_queries));
    add("baton_prefix_cache_hits_total", "Prompt blocks found in the prefix cache", T::Counter,
        static_cast<double>(s.prefix_hits));
    add("baton_preemptions_total", "Running requests preempted for KV blocks", T::Counter,
        static_cast<double>(s.preemptions));
    add("baton_steps_total", "Forward steps (micro-batches) run", T::Counter, static_cast<double>(s.steps));
    AddUtilization(s, families);
    prometheus::MetricFamily info{"baton_build_info", "Build and model information", T::Gauge, {}};
    prometheus::ClientMetric m;
    m.label = {{"model", model_}, {"version", BATON_VERSION}};
    m.gauge.value = 1;
    info.metric.push_back(m);
    families.push_back(std::move(info));
    return families;
  }

 private:
  // baton_stage_busy_ratio{stage}: the share of the time since the previous
  // scrape each stage spent computing; baton_pipeline_bubble_ratio: the
  // idle share averaged over stages, counted only while requests ran (an
  // idle server has no bubble, just no work). Kept from the last window
  // with steps when nothing ran since.
  void AddUtilization(const EngineStats& s, std::vector<prometheus::MetricFamily>& families) const {
    std::lock_guard lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    const double window = std::chrono::duration<double>(now - last_scrape_).count();
    if (s.stage_busy_seconds.size() == last_busy_.size() && s.steps > last_steps_ && window > 0) {
      busy_ratio_.assign(last_busy_.size(), 0.0);
      double sum = 0;
      for (size_t i = 0; i < last_busy_.size(); ++i) {
        busy_ratio_[i] = std::clamp((s.stage_busy_seconds[i] - last_busy_[i]) / window, 0.0, 1.0);
        sum += busy_ratio_[i];
      }
      bubble_ratio_ = busy_ratio_.empty() ? 0.0 : 1.0 - sum / static_cast<double>(busy_ratio_.size());
    }
    last_scrape_ = now;
    last_busy_ = s.stage_busy_seconds;
    last_steps_ = s.steps;
    prometheus::MetricFamily busy{"baton_stage_busy_ratio", "Share of time each pipeline stage computed",
                                  prometheus::MetricType::Gauge, {}};
    for (size_t i = 0; i < busy_ratio_.size(); ++i) {
      prometheus::ClientMetric m;
      m.label = {{"stage", std::to_string(i)}};
      m.gauge.value = busy_ratio_[i];
      busy.metric.push_back(m);
    }
    families.push_back(std::move(busy));
    prometheus::MetricFamily bubble{"baton_pipeline_bubble_ratio", "Idle share of the stages while requests ran",
                                    prometheus::MetricType::Gauge, {}};
    prometheus::ClientMetric m;
    m.gauge.value = bubble_ratio_;
    bubble.metric.push_back(m);
    families.push_back(std::move(bubble));
  }

  const Engine& engine_;
  std::string model_;
  mutable std::mutex mu_;
  mutable std::chrono::steady_clock::time_point last_scrape_ = std::chrono::steady_clock::now();
  mutable std::vector<double> last_busy_;
  mutable int64_t last_steps_ = 0;
  mutable std::vector<double> busy_ratio_;
  mutable double bubble_ratio_ = 0;
};

namespace {

prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
}

}  // namespace

StatusOr<std::unique_ptr<ServerMetrics>> ServerMetrics::Start(const std::string& host, int port, const Engine& engine,
                                                              const std::string& model_name) {
  std::unique_ptr<ServerMetrics> m(new ServerMetrics());
  m->registry_ = std::make_shared<prometheus::Registry>();
  m->requests_ = &prometheus::BuildCounter()
                      .Name("baton_requests_total")
                      .Help("Generate requests by final gRPC status")
                      .Register(*m->registry_);
  m->prompt_tokens_ = &prometheus::BuildCounter()
                           .Name("baton_prompt_tokens_total")
                           .Help("Prompt tokens of finished requests")
                           .Register(*m->registry_)
                           .Add({});
  m->generation_tokens_ = &prometheus::BuildCounter()
                               .Name("baton_generation_tokens_total")
                               .Help("Tokens generated")
                               .Register(*m->registry_)
                               .Add({});
  auto histogram = [&](const char* name, const char* help) {
    return &prometheus::BuildHistogram().Name(name).Help(help).Register(*m->registry_).Add({}, LatencyBuckets());
  };
  m->duration_ = histogram("baton_request_duration_seconds", "Accepted to final event");
  m->first_token_ = histogram("baton_time_to_first_token_seconds", "Accepted to first token");
  m->inter_token_ = histogram("baton_inter_token_latency_seconds", "Between consecutive tokens of a request");
  m->queue_ = histogram("baton_queue_time_seconds", "Accepted to first scheduled");
  m->engine_collector_ = std::make_shared<EngineCollector>(engine, model_name);
  ServerMetrics* raw = m.get();
  BATON_ASSIGN_OR_RETURN(m->http_, MetricsHttpServer::Start(host, port, [raw] {
                           std::vector<prometheus::MetricFamily> families = raw->registry_->Collect();
                           for (auto& f : raw->engine_collector_->Collect()) families.push_back(std::move(f));
                           return prometheus::TextSerializer().Serialize(families);
                         }));
  m->port_ = m->http_->port();
  return m;
}

ServerMetrics::~ServerMetrics() = default;  // stops the HTTP thread before the registry goes

void ServerMetrics::RequestFinished(const std::string& status, const RequestEvent& e) {
  requests_->Add({{"status", status}}).Increment();
  prompt_tokens_->Increment(e.prompt_tokens);
  duration_->Observe(e.timings.total_seconds);
  queue_->Observe(e.timings.queue_seconds);
  if (!e.result.output_ids.empty()) first_token_->Observe(e.timings.first_token_seconds);
}

void ServerMetrics::RequestRejected(const std::string& status) { requests_->Add({{"status", status}}).Increment(); }

void ServerMetrics::TokenProduced(double seconds_since_previous_token, int tokens) {
  generation_tokens_->Increment(tokens);
  if (seconds_since_previous_token >= 0) inter_token_->Observe(seconds_since_previous_token);
}

}  // namespace baton::server
