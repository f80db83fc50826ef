// MpiCommunicator: the Communicator over MPI, for host memory.
//
// Owns a communicator of its own (a duplicate or a split of the one it was
// made from), so Baton's messages never match anyone else's, with
// MPI_ERRORS_RETURN so MPI failures come back as Status (BATON_MPI_CHECK)
// instead of killing the process. Every wait polls (PollUntilDone) with
// the CommOptions timeout: a dead peer gives Unavailable, never a hang.
//
// After a collective times out its MPI request cannot be freed (MPI
// forbids it) and the group is out of step, so the communicator refuses
// every later call with the first error; the buffers of that collective
// may still be written until the process ends. AbortJob is the expected
// answer to such an error. Point-to-point timeouts cancel the receive and
// leave the communicator usable.
//
// Messages larger than 1 GiB are sent as several MPI messages, so two
// threads must not send to the same (peer, tag) at once. SendBytes is
// limited to 2 GiB - 1 (one MPI message, probed for its size).
//
// Destroy every MpiCommunicator before the MpiEnvironment (MPI_Finalize).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/comm/abort_job.h"  // the usual answer to its errors
#include "runtime/comm/comm_options.h"
#include "runtime/comm/communicator.h"
#include "runtime/comm/mpi_check.h"

namespace baton {

class MpiCommunicator final : public Communicator {
 public:
  // A communicator over the ranks of `comm` (e.g. MPI_COMM_WORLD). Collective
  // over `comm`; times out like any other wait if a rank never arrives.
  static StatusOr<std::unique_ptr<MpiCommunicator>> Create(MPI_Comm comm, CommOptions options);
  ~MpiCommunicator() override;

  // Like MPI_Comm_split: ranks passing the same color form a new group,
  // ordered by key. Collective; all ranks first meet at a (timed) barrier so
  // that a dead rank fails the split instead of hanging it.
  StatusOr<std::unique_ptr<MpiCommunicator>> Split(int color, int key, CommOptions options);

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  Device device() const override { return Device::kCpu; }
  const std::string& name() const override { return options_.name; }
  int max_tag() const override { return max_tag_; }

  const CommOptions& options() const { return options_; }
  MPI_Comm mpi_comm() const { return comm_; }
  // The MPI_COMM_WORLD rank of `rank` of this group.
  int WorldRankOf(int rank) const { return world_ranks_[static_cast<size_t>(rank)]; }

 protected:
  StatusOr<Request> DoISend(const void* data, size_t bytes, int peer, int tag) override;
  StatusOr<Request> DoIRecv(void* data, size_t bytes, int peer, int tag) override;
  Status DoWait(Request& request) override;
  StatusOr<bool> DoTest(Request& request) override;
  Status DoSendBytes(const std::vector<uint8_t>& bytes, int peer, int tag) override;
  StatusOr<std::vector<uint8_t>> DoRecvBytes(int peer, int tag) override;
  Status DoBroadcast(void* data, size_t bytes, int root) override;
  Status DoAllGather(const void* send, void* recv, size_t count, ElementType type) override;
  StatusOr<Request> DoIAllGather(const void* send, void* recv, size_t count, ElementType type) override;
  Status DoReduceScatter(const void* send, void* recv, size_t count, ElementType type, ReduceOp op) override;
  Status DoAllReduce(const void* send, void* recv, size_t count, ElementType type, ReduceOp op) override;
  Status DoBarrier() override;

 private:
  enum class OpKind { kSend, kRecv, kCollective };
  class RequestState;  // an ISend/IRecv in flight

  MpiCommunicator(MPI_Comm comm, CommOptions options);
  // Reads rank, size, tag limit and world ranks of a fresh comm_.
  Status Init();

  std::string Describe(const RequestState& state) const;
  // The state of a request this communicator made, else null.
  RequestState* StateOf(Request& request) const;
  // A receive whose message was not the size expected is an Internal error.
  Status CheckReceivedSizes(const RequestState& state, const std::vector<MPI_Status>& statuses) const;
  // "rank 2" on the world, "pipeline rank 2 (world rank 6)" elsewhere.
  std::string PeerName(int rank) const;
  // Ok, or the error that broke this communicator.
  Status CheckUsable() const;
  void MarkBroken(const Status& status);

  // Polls `requests` to completion, filling `statuses` (one per request).
  // On failure, p2p requests are cancelled and freed; collective ones
  // cannot be and break the communicator.
  Status WaitRequests(std::vector<MPI_Request>& requests, std::vector<MPI_Status>& statuses, OpKind kind,
                      const std::function<std::string()>& describe);
  Status WaitCollective(std::vector<MPI_Request>& requests, const std::function<std::string()>& describe);
  // A collective that failed to start leaves the group out of step.
  Status CollectiveStartFailed(const Status& status);

  MPI_Comm comm_ = MPI_COMM_NULL;
  CommOptions options_;
  int rank_ = 0;
  int size_ = 0;
  int max_tag_ = 32767;
  std::vector<int> world_ranks_;
  bool is_world_order_ = false;  // rank r here is world rank r

  mutable std::mutex broken_mu_;
  Status broken_;
};

}  // namespace baton
