#include "stages/pipeline_trace.h"

#include <algorithm>
#include <fstream>
#include <limits>

namespace baton {

void PipelineTrace::Add(const char* kind, int micro_batch, Clock::time_point start) {
  spans_.push_back(Span{kind, micro_batch, start, Clock::now()});
}

nlohmann::json PipelineTrace::Events(int stage) const {
  nlohmann::json events = nlohmann::json::array();
  for (const Span& s : spans_) {
    const auto us = [](Clock::time_point t) {
      return std::chrono::duration<double, std::micro>(t.time_since_epoch()).count();
    };
    events.push_back({{"name", std::string(s.kind) + " mb" + std::to_string(s.micro_batch)},
                      {"cat", s.kind},
                      {"ph", "X"},
                      {"pid", stage},
                      {"tid", 0},
                      {"ts", us(s.start)},
                      {"dur", us(s.end) - us(s.start)},
                      {"args", {{"micro_batch", s.micro_batch}}}});
  }
  return events;
}

nlohmann::json PipelineUtilization::ToJson() const {
  return {{"stage_busy", stage_busy}, {"bubble", bubble}, {"gpipe_bubble_estimate", gpipe_estimate}};
}

PipelineUtilization SummarizeTrace(const nlohmann::json& events, int num_stages, int micro_batches) {
  double first = std::numeric_limits<double>::infinity(), last = -first;
  std::vector<double> compute(num_stages, 0.0);
  // The window opens with the first computation, not the first event: a rank
  // that loaded its (smaller) stage sooner sits in its first receive until
  // rank 0 has loaded, which is start-up skew and not a pipeline bubble.
  for (const auto& e : events) {
    const double ts = e["ts"].get<double>(), dur = e["dur"].get<double>();
    last = std::max(last, ts + dur);
    const int stage = e["pid"].get<int>();
    if (e["cat"] != "compute" || stage < 0 || stage >= num_stages) continue;
    first = std::min(first, ts);
    compute[stage] += dur;
  }
  PipelineUtilization u;
  const double wall = last > first ? last - first : 0;
  double total = 0;
  for (double c : compute) {
    u.stage_busy.push_back(wall > 0 ? c / wall : 0);
    total += u.stage_busy.back();
  }
  u.bubble = num_stages > 0 ? 1.0 - total / num_stages : 0;
  u.gpipe_estimate = static_cast<double>(num_stages - 1) / (micro_batches + num_stages - 1);
  return u;
}

StatusOr<PipelineUtilization> GatherTrace(const PipelineTrace& trace, Communicator* pipeline, int micro_batches,
                                          const std::string& path) {
  const int rank = pipeline ? pipeline->rank() : 0, size = pipeline ? pipeline->size() : 1;
  const nlohmann::json mine = trace.Events(rank);
  if (rank != 0) {
    const std::string text = mine.dump();
    BATON_RETURN_IF_ERROR(pipeline->SendBytes(std::vector<uint8_t>(text.begin(), text.end()), 0, kTraceTag));
    return PipelineUtilization{};
  }
  nlohmann::json events = mine;
  for (int r = 1; r < size; ++r) {
    BATON_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, pipeline->RecvBytes(r, kTraceTag));
    nlohmann::json theirs = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, false);
    if (!theirs.is_array()) return Status::DataLoss("trace events from rank " + std::to_string(r) + " are malformed");
    for (auto& e : theirs) events.push_back(std::move(e));
  }
  PipelineUtilization summary = SummarizeTrace(events, size, micro_batches);
  nlohmann::json doc = {{"traceEvents", events}, {"displayTimeUnit", "ms"}, {"otherData", summary.ToJson()}};
  for (int r = 0; r < size; ++r) {
    doc["traceEvents"].push_back(
        {{"name", "process_name"}, {"ph", "M"}, {"pid", r}, {"args", {{"name", "stage " + std::to_string(r)}}}});
  }
  std::ofstream out(path);
  if (!out) return Status::InvalidArgument("--trace: cannot write '" + path + "'");
  out << doc.dump() << "\n";
  if (!out) return Status::ResourceExhausted("--trace: writing '" + path + "' failed");
  return summary;
}

}  // namespace baton
