// Communicator: how pipeline stages and data-parallel groups talk to each
// other. Stages never call MPI or NCCL; they get a Communicator.
//
// One group of ranks; every rank holds its own Communicator object. Buffers
// live on device(): host memory for MpiCommunicator, device memory for a
// NCCL one. Collectives take (pointer, element count, ElementType) so both
// kinds serve the same calls; Tensor overloads check the tensor's device.
//
// Every blocking call waits with the deadline of its CommOptions and
// returns Unavailable when a peer does not answer in time, so a dead rank
// never leaves the others hanging; the caller then usually calls AbortJob.
// Errors are Status values; nothing throws.
//
// Thread-safety: the rank/size accessors are safe anywhere. Point-to-point
// calls may come from several threads at once only where the backend's
// thread level allows it (MpiEnvironment reports it) and then on distinct
// tags. Collectives must be called by one thread at a time, in the same
// order on every rank of the group.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "runtime/comm/element_type.h"
#include "runtime/comm/request.h"
#include "runtime/core/status.h"
#include "runtime/core/tensor.h"

namespace baton {

class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Where the buffers passed in must live.
  virtual Device device() const = 0;
  // "world", "pipeline", "data_parallel": used in error messages.
  virtual const std::string& name() const = 0;
  // Tags are 0..max_tag() (at least 32767).
  virtual int max_tag() const = 0;

  // --- point to point: a message is matched by (peer, tag) in send order ---
  // Both sides agree on `bytes`; a different size is an Internal error.
  Status Send(const void* data, size_t bytes, int peer, int tag);
  Status Recv(void* data, size_t bytes, int peer, int tag);
  StatusOr<Request> ISend(const void* data, size_t bytes, int peer, int tag);
  StatusOr<Request> IRecv(void* data, size_t bytes, int peer, int tag);
  // Blocks until `request` completes (or times out). A request that is not
  // pending (default-made, already completed) returns Ok at once.
  Status Wait(Request& request);
  // Ok(true) once complete (the request is then no longer pending).
  StatusOr<bool> Test(Request& request);
  // A message whose size the receiver does not know (plans, token ids).
  Status SendBytes(const std::vector<uint8_t>& bytes, int peer, int tag);
  StatusOr<std::vector<uint8_t>> RecvBytes(int peer, int tag);

  // --- collectives: every rank of the group calls them in the same order ---
  // `root`'s `bytes` are copied to every rank.
  Status Broadcast(void* data, size_t bytes, int root);
  // recv[r * count ...] = rank r's send[0 .. count). In place when
  // send == recv + rank() * count elements.
  Status AllGather(const void* send, void* recv, size_t count, ElementType type);
  // The same, started now and finished by Wait (ZeRO-3 prefetches the next
  // layer's parameters while this one computes). Both buffers stay untouched
  // until then. Backends without a non-blocking form finish it before
  // returning (the request is then already complete).
  StatusOr<Request> IAllGather(const void* send, void* recv, size_t count, ElementType type);
  // send holds size() chunks of `count`; recv = op over ranks of chunk
  // rank(). In place when recv == send + rank() * count elements.
  Status ReduceScatter(const void* send, void* recv, size_t count, ElementType type, ReduceOp op = ReduceOp::kSum);
  // recv = op over ranks of send, elementwise. In place when send == recv.
  Status AllReduce(const void* send, void* recv, size_t count, ElementType type, ReduceOp op = ReduceOp::kSum);
  Status Barrier();

  // --- the same on tensors (contiguous; the device must be device()) ---
  Status Send(const Tensor& tensor, int peer, int tag);
  // Into an allocated tensor of the expected shape and dtype.
  Status Recv(Tensor& tensor, int peer, int tag);
  Status Broadcast(Tensor& tensor, int root);
  // out has size() times the elements of in, same dtype (any dtype).
  Status AllGather(const Tensor& in, Tensor& out);
  // in has size() times the elements of out, same dtype.
  Status ReduceScatter(const Tensor& in, Tensor& out, ReduceOp op = ReduceOp::kSum);
  Status AllReduce(Tensor& tensor, ReduceOp op = ReduceOp::kSum);

  // In-place all-reduce of a typed buffer: comm.AllReduce(std::span(v)).
  template <typename T>
  Status AllReduce(std::span<T> data, ReduceOp op = ReduceOp::kSum) {
    return AllReduce(data.data(), data.data(), data.size(), ElementTypeFor<T>::value, op);
  }

 protected:
  Communicator() = default;

  // Backends implement these; arguments are already validated (peer and
  // root in range, tag in range, non-null buffers when bytes > 0, buffers
  // of in-place calls in the documented place and otherwise disjoint).
  virtual StatusOr<Request> DoISend(const void* data, size_t bytes, int peer, int tag) = 0;
  virtual StatusOr<Request> DoIRecv(void* data, size_t bytes, int peer, int tag) = 0;
  virtual Status DoWait(Request& request) = 0;
  virtual StatusOr<bool> DoTest(Request& request) = 0;
  virtual Status DoSendBytes(const std::vector<uint8_t>& bytes, int peer, int tag) = 0;
  virtual StatusOr<std::vector<uint8_t>> DoRecvBytes(int peer, int tag) = 0;
  virtual Status DoBroadcast(void* data, size_t bytes, int root) = 0;
  virtual Status DoAllGather(const void* send, void* recv, size_t count, ElementType type) = 0;
  virtual StatusOr<Request> DoIAllGather(const void* send, void* recv, size_t count, ElementType type);
  virtual Status DoReduceScatter(const void* send, void* recv, size_t count, ElementType type, ReduceOp op) = 0;
  virtual Status DoAllReduce(const void* send, void* recv, size_t count, ElementType type, ReduceOp op) = 0;
  virtual Status DoBarrier() = 0;

 private:
  Status CheckAllGather(const void* send, const void* recv, size_t count, ElementType type) const;
  Status CheckPeer(int peer, const char* what) const;
  Status CheckTag(int tag, const char* what) const;
  Status CheckTensor(const Tensor& tensor, const char* what) const;
};

}  // namespace baton
