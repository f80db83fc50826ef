// EventCollector: gathers the event streams of requests submitted to an
// Engine from test threads; sinks run on the engine's loop thread.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>

#include "runtime/serving/request_event.h"

namespace baton::testing {

class EventCollector {
 public:
  struct Stream {
    std::vector<int32_t> tokens;
    std::string text;
    std::vector<TokenLogprobs> logprobs;
    RequestEvent final;
    int finals = 0;
  };

  // The sink of request `key` (any label the test chooses).
  RequestSink Sink(int key) {
    return [this, key](const RequestEvent& e) {
      std::lock_guard<std::mutex> lock(mu_);
      Stream& s = streams_[key];
      if (e.final) {
        s.final = e;
        ++s.finals;
        done_.notify_all();
        return;
      }
      EXPECT_EQ(s.finals, 0) << "token event after the final one, request " << key;
      s.tokens.insert(s.tokens.end(), e.token_ids.begin(), e.token_ids.end());
      s.text += e.text_delta;
      s.logprobs.insert(s.logprobs.end(), e.logprobs.begin(), e.logprobs.end());
      progress_.notify_all();
    };
  }
  // Waits (bounded) until `count` requests have their final event.
  bool WaitFinals(size_t count, double seconds = 120) {
    std::unique_lock<std::mutex> lock(mu_);
    return done_.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return Finals() >= count; });
  }
  // Waits (bounded) until request `key` has at least `n` tokens.
  bool WaitTokens(int key, size_t n, double seconds = 120) {
    std::unique_lock<std::mutex> lock(mu_);
    return progress_.wait_for(lock, std::chrono::duration<double>(seconds),
                              [&] { return streams_[key].tokens.size() >= n || streams_[key].finals > 0; });
  }
  Stream Get(int key) {
    std::lock_guard<std::mutex> lock(mu_);
    return streams_[key];
  }

 private:
  size_t Finals() const {
    size_t n = 0;
    for (const auto& [k, s] : streams_) n += s.finals > 0;
    return n;
  }

  std::mutex mu_;
  std::condition_variable done_, progress_;
  std::map<int, Stream> streams_;
};

}  // namespace baton::testing
