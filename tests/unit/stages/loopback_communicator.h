// LoopbackCommunicator: ranks of one process (one thread each) that pass
// point-to-point messages through shared queues, so pipeline code runs in
// a unit test without mpirun. Messages are matched by (from, to, tag) in
// send order, as MPI matches them; a send completes at once (it is copied).
// A receive that waits more than 30 s fails with Unavailable instead of
// hanging the test. Collectives are not supported.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "runtime/comm/communicator.h"

namespace baton::testing {

class LoopbackHub {
 public:
  void Push(int from, int to, int tag, std::vector<uint8_t> bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queues_[{from, to, tag}].push_back(std::move(bytes));
    }
    cv_.notify_all();
  }
  // Blocks up to `wait`; false when nothing came.
  bool Pop(int from, int to, int tag, std::vector<uint8_t>* bytes, std::chrono::milliseconds wait) {
    std::unique_lock<std::mutex> lock(mu_);
    auto& q = queues_[{from, to, tag}];
    if (!cv_.wait_for(lock, wait, [&] { return !q.empty(); })) return false;
    *bytes = std::move(q.front());
    q.pop_front();
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::tuple<int, int, int>, std::deque<std::vector<uint8_t>>> queues_;
};

class LoopbackCommunicator final : public Communicator {
 public:
  LoopbackCommunicator(std::shared_ptr<LoopbackHub> hub, int rank, int size)
      : hub_(std::move(hub)), rank_(rank), size_(size) {}

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  Device device() const override { return Device::kCpu; }
  const std::string& name() const override { return name_; }
  int max_tag() const override { return 32767; }

 protected:
  struct PendingRecv : Request::State {
    void* data;
    size_t bytes;
    int peer, tag;
  };

  StatusOr<Request> DoISend(const void* data, size_t bytes, int peer, int tag) override {
    const auto* p = static_cast<const uint8_t*>(data);
    hub_->Push(rank_, peer, tag, std::vector<uint8_t>(p, p + bytes));
    return Request();  // complete: the bytes were copied
  }
  StatusOr<Request> DoIRecv(void* data, size_t bytes, int peer, int tag) override {
    auto state = std::make_unique<PendingRecv>();
    state->data = data;
    state->bytes = bytes;
    state->peer = peer;
    state->tag = tag;
    return Request(std::move(state));
  }
  Status DoWait(Request& request) override {
    BATON_ASSIGN_OR_RETURN(bool done, Finish(request, kTimeout));
    return done ? Status::Ok() : Status::Unavailable("loopback recv timed out");
  }
  StatusOr<bool> DoTest(Request& request) override { return Finish(request, std::chrono::milliseconds(0)); }
  Status DoSendBytes(const std::vector<uint8_t>& bytes, int peer, int tag) override {
    hub_->Push(rank_, peer, tag, bytes);
    return Status::Ok();
  }
  StatusOr<std::vector<uint8_t>> DoRecvBytes(int peer, int tag) override {
    std::vector<uint8_t> bytes;
    if (!hub_->Pop(peer, rank_, tag, &bytes, kTimeout)) return Status::Unavailable("loopback recv timed out");
    return bytes;
  }
  Status DoBroadcast(void*, size_t, int) override { return Unsupported(); }
  Status DoAllGather(const void*, void*, size_t, ElementType) override { return Unsupported(); }
  Status DoReduceScatter(const void*, void*, size_t, ElementType, ReduceOp) override { return Unsupported(); }
  Status DoAllReduce(const void*, void*, size_t, ElementType, ReduceOp) override { return Unsupported(); }
  Status DoBarrier() override { return Unsupported(); }

 private:
  static constexpr std::chrono::milliseconds kTimeout{30000};
  static Status Unsupported() { return Status::Unimplemented("loopback communicator: no collectives"); }

  // Completes a pending receive if its message arrives within `wait`.
  StatusOr<bool> Finish(Request& request, std::chrono::milliseconds wait) {
    auto* recv = static_cast<PendingRecv*>(request.state());
    std::vector<uint8_t> bytes;
    if (!hub_->Pop(recv->peer, rank_, recv->tag, &bytes, wait)) return false;
    if (bytes.size() != recv->bytes) {
      return Status::Internal("loopback recv of " + std::to_string(recv->bytes) + " bytes got " +
                              std::to_string(bytes.size()));
    }
    if (!bytes.empty()) std::memcpy(recv->data, bytes.data(), bytes.size());
    request.Complete();
    return true;
  }

  std::shared_ptr<LoopbackHub> hub_;
  int rank_, size_;
  std::string name_ = "pipeline";
};

}  // namespace baton::testing
