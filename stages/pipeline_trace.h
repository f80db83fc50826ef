// PipelineTrace: what each rank did when, for Chrome/Perfetto's trace
// viewer (chrome://tracing, ui.perfetto.dev), and the numbers that explain a
// pipeline's speed: each stage's busy fraction and the bubble.
//
// Every rank records spans ("compute", "send", "recv", "wait") tagged with
// the micro-batch; at the end the workers send theirs to rank 0, which
// writes one trace-event JSON file with a process per stage. Ranks share a
// host clock (steady_clock) in the single-host runs this is made for.
// Thread-compatible.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/comm/communicator.h"

namespace baton {

inline constexpr int kTraceTag = 103;

class PipelineTrace {
 public:
  using Clock = std::chrono::steady_clock;

  // Records [start, now) as a span of `kind` for micro-batch `micro_batch`.
  void Add(const char* kind, int micro_batch, Clock::time_point start);

  // RAII span: PipelineTrace::Scope s(trace, "compute", mb);  (trace may be null)
  class Scope {
   public:
    Scope(PipelineTrace* trace, const char* kind, int micro_batch)
        : trace_(trace), kind_(kind), micro_batch_(micro_batch), start_(Clock::now()) {}
    ~Scope() {
      if (trace_) trace_->Add(kind_, micro_batch_, start_);
    }

   private:
    PipelineTrace* trace_;
    const char* kind_;
    int micro_batch_;
    Clock::time_point start_;
  };

  // This rank's spans as trace events (pid = stage).
  nlohmann::json Events(int stage) const;

 private:
  struct Span {
    const char* kind;
    int micro_batch;
    Clock::time_point start, end;
  };
  std::vector<Span> spans_;
};

// Busy fraction per stage and the bubble, from merged trace events.
struct PipelineUtilization {
  std::vector<double> stage_busy;  // compute time / wall time from the first compute to the end
  double bubble = 0;               // 1 - mean busy fraction
  double gpipe_estimate = 0;       // (P - 1) / (M + P - 1)
  nlohmann::json ToJson() const;
};
PipelineUtilization SummarizeTrace(const nlohmann::json& events, int num_stages, int micro_batches);

// Collective over the pipeline: workers send their events to rank 0, which
// writes `path` and returns the summary (workers get an empty one).
StatusOr<PipelineUtilization> GatherTrace(const PipelineTrace& trace, Communicator* pipeline, int micro_batches,
                                          const std::string& path);

}  // namespace baton
