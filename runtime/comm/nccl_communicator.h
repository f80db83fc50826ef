// NcclCommunicator: the Communicator over NCCL, for device memory of one
// GPU per rank. The pipeline moves hidden states between stages with it
// (GPU to GPU over NVLink/PCIe, never through host memory); its collectives
// are what ZeRO-3 sharding will use. Made by MakeNcclCommunicator
// (nccl_factory.h); only this file and its .cc need CUDA and NCCL headers.
//
// Streams. Every operation runs on a stream of its own (`comm stream`), so
// a send overlaps the compute that follows it. Before an operation the
// comm stream waits (an event, no host block) for everything already
// queued on the backend's compute stream, so a send reads a finished
// buffer and a receive never overwrites memory a queued kernel still
// reads. Completion is an event recorded after the operation; Wait and the
// collectives poll it from the host (PollUntilDone, with the CommOptions
// timeout, also polling ncclCommGetAsyncError), so a dead or stuck peer is
// Unavailable instead of a hang. Once Wait returns the buffer is complete
// and free, as the Communicator contract says. The first message between
// two ranks also sets up their connection, which needs the peer: ISend and
// IRecv then wait (with the timeout) until the peer posts its side.
//
// Differences from MpiCommunicator, all inherent to NCCL:
// - Tags are checked but do not match messages: NCCL delivers the messages
//   between two ranks in the order they were posted, so a receiver must
//   post its receives from a peer in the order that peer sent them.
// - Sizes are not checked: sender and receiver must agree (the pipeline
//   derives both from the same StepPlan); a mismatch is undefined.
// - SendBytes/RecvBytes (host byte messages) are Unimplemented: send those
//   over the MPI communicator the NCCL one was bootstrapped from.
// - Any failure or timeout, point to point too, aborts the NCCL
//   communicator (ncclCommAbort: NCCL cannot cancel one operation) and every
//   later call returns that first error; AbortJob is the expected answer.
//
// Thread-safety: one thread at a time (the thread driving the backend);
// its current device is the backend's GPU.
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <memory>
#include <mutex>
#include <string>

#include "runtime/comm/comm_options.h"
#include "runtime/comm/communicator.h"

namespace baton {

class NcclCommunicator final : public Communicator {
 public:
  // See MakeNcclCommunicator. `compute_stream` is the backend's stream on
  // GPU `device`; it must outlive this communicator.
  static StatusOr<std::unique_ptr<NcclCommunicator>> Create(Communicator& bootstrap, int device,
                                                            cudaStream_t compute_stream, CommOptions options);
  // Flushes and frees the NCCL communicator (aborting it if a peer does not
  // finish within the timeout), then the stream and events.
  ~NcclCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  Device device() const override { return Device::kCuda; }
  const std::string& name() const override { return options_.name; }
  int max_tag() const override { return 32767; }
  int gpu() const { return device_; }

 protected:
  StatusOr<Request> DoISend(const void* data, size_t bytes, int peer, int tag) override;
  StatusOr<Request> DoIRecv(void* data, size_t bytes, int peer, int tag) override;
  Status DoWait(Request& request) override;
  StatusOr<bool> DoTest(Request& request) override;
  Status DoSendBytes(const std::vector<uint8_t>& bytes, int peer, int tag) override;
  StatusOr<std::vector<uint8_t>> DoRecvBytes(int peer, int tag) override;
  Status DoBroadcast(void* data, size_t bytes, int root) override;
  Status DoAllGather(const void* send, void* recv, size_t count, ElementType type) override;
  Status DoReduceScatter(const void* send, void* recv, size_t count, ElementType type, ReduceOp op) override;
  Status DoAllReduce(const void* send, void* recv, size_t count, ElementType type, ReduceOp op) override;
  Status DoBarrier() override;

 private:
  class RequestState;  // a send or receive in flight: its completion event

  NcclCommunicator(int device, cudaStream_t compute_stream, CommOptions options);

  // Orders the comm stream after the compute stream's queued work, then
  // runs `issue` (NCCL calls) between ncclGroupStart/End and waits, with
  // the timeout, until a nonblocking communicator has queued it. Returns
  // an event recorded on the comm stream after the operation.
  template <typename Issue>
  StatusOr<cudaEvent_t> Enqueue(Issue issue, const std::string& what);
  // Polls `done` (and NCCL's async error) to completion with the timeout.
  Status WaitEvent(cudaEvent_t done, const std::string& what);
  // Enqueue + WaitEvent: the blocking collectives.
  template <typename Issue>
  Status RunCollective(Issue issue, const std::string& what);
  // One poll: Ok(true) when `done` has fired; NCCL's async error if any.
  StatusOr<bool> Poll(cudaEvent_t done, const std::string& what);
  // Polls ncclCommGetAsyncError until the communicator leaves
  // ncclInProgress (nonblocking init, group end, finalize).
  Status WaitReady(const std::string& what);

  std::string PeerName(int rank) const;
  Status CheckUsable() const;
  // Aborts the NCCL communicator and keeps `status` as the reason every
  // later call fails; returns it.
  Status Fail(const Status& status);

  const int device_;
  const cudaStream_t compute_;
  CommOptions options_;
  int rank_ = 0;
  int size_ = 0;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;  // the comm stream
  cudaEvent_t compute_ready_ = nullptr;
  int* barrier_word_ = nullptr;  // device scratch for Barrier's all-reduce

  mutable std::mutex broken_mu_;
  Status broken_;
};

}  // namespace baton
