// Request: a non-blocking send or receive in flight, completed by
// Communicator::Wait or Communicator::Test of the communicator that made it.
//
// Move-only. The buffer passed to ISend/IRecv must stay alive and untouched
// until the request completes. Destroying a pending request abandons it
// without blocking: a receive is cancelled, a send is left to finish on its
// own (so its buffer must outlive it); only Wait says the buffer is free.
#pragma once

#include <memory>
#include <utility>

namespace baton {

class Request {
 public:
  // What a backend keeps for one operation in flight (MPI requests, a CUDA
  // event for NCCL). Backends subclass it; nobody else looks inside.
  class State {
   public:
    virtual ~State() = default;
  };

  Request() = default;
  explicit Request(std::unique_ptr<State> state) : state_(std::move(state)) {}
  Request(Request&&) noexcept = default;
  Request& operator=(Request&&) noexcept = default;

  // True until Wait or a Test that returned true completed it.
  bool pending() const { return state_ != nullptr; }
  State* state() const { return state_.get(); }
  // Marks the request complete and frees the backend's state.
  void Complete() { state_.reset(); }

 private:
  std::unique_ptr<State> state_;
};

}  // namespace baton
