// BusyTime: a stage's cumulative compute time, for the utilization metrics
// (baton_stage_busy_ratio, baton_pipeline_bubble_ratio). A Scope adds the
// wall time of the work it brackets. On a GPU backend that is host time
// (launching and waiting), a lower bound on the device's busy time.
// Thread-compatible.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

namespace baton {

class BusyTime {
 public:
  class Scope {
   public:
    explicit Scope(BusyTime& busy) : busy_(busy), start_(std::chrono::steady_clock::now()) {}
    ~Scope() {
      busy_.total_us_ += std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                               start_)
                             .count();
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    BusyTime& busy_;
    std::chrono::steady_clock::time_point start_;
  };

  int64_t total_us() const { return total_us_; }

 private:
  int64_t total_us_ = 0;
};

// Microseconds per stage -> seconds per stage.
inline std::vector<double> BusySeconds(const std::vector<int64_t>& us) {
  std::vector<double> seconds;
  for (int64_t v : us) seconds.push_back(static_cast<double>(v) * 1e-6);
  return seconds;
}

}  // namespace baton
