#include "runtime/comm/communicator.h"

#include <cstdint>
#include <limits>
#include <string>

namespace baton {
namespace {

std::string Str(const char* what) { return what; }

bool Disjoint(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  auto a0 = reinterpret_cast<uintptr_t>(a);
  auto b0 = reinterpret_cast<uintptr_t>(b);
  return a_bytes == 0 || b_bytes == 0 || a0 + a_bytes <= b0 || b0 + b_bytes <= a0;
}

Status CheckBuffer(const void* data, size_t bytes, const char* what) {
  if (data == nullptr && bytes > 0) {
    return Status::InvalidArgument(Str(what) + ": null buffer for " + std::to_string(bytes) + " bytes");
  }
  return Status::Ok();
}

// Bytes of `chunks` chunks of `count` elements, or an error if that
// overflows size_t (a corrupt count, not a real buffer).
StatusOr<size_t> ChunkBytes(size_t count, ElementType type, size_t chunks, const char* what) {
  size_t per = ElementSize(type);
  if (count > std::numeric_limits<size_t>::max() / per / chunks) {
    return Status::InvalidArgument(Str(what) + ": " + std::to_string(count) + " " + ElementTypeName(type) +
                                   " elements overflow the address space");
  }
  return count * per * chunks;
}

}  // namespace

Status Communicator::CheckPeer(int peer, const char* what) const {
  if (peer < 0 || peer >= size()) {
    return Status::InvalidArgument(Str(what) + ": rank " + std::to_string(peer) + " is not in '" + name() +
                                   "' (ranks 0.." + std::to_string(size() - 1) + ")");
  }
  return Status::Ok();
}

Status Communicator::CheckTag(int tag, const char* what) const {
  if (tag < 0 || tag > max_tag()) {
    return Status::InvalidArgument(Str(what) + ": tag " + std::to_string(tag) + " is outside 0.." +
                                   std::to_string(max_tag()));
  }
  return Status::Ok();
}

Status Communicator::CheckTensor(const Tensor& tensor, const char* what) const {
  if (!tensor.defined()) return Status::InvalidArgument(Str(what) + ": undefined tensor");
  if (tensor.device() != device()) {
    return Status::InvalidArgument(Str(what) + ": tensor " + tensor.DebugString() + " is not in " +
                                   DeviceName(device()) + " memory, which communicator '" + name() + "' moves");
  }
  return Status::Ok();
}

Status Communicator::Send(const void* data, size_t bytes, int peer, int tag) {
  BATON_ASSIGN_OR_RETURN(Request request, ISend(data, bytes, peer, tag));
  return Wait(request);
}

Status Communicator::Recv(void* data, size_t bytes, int peer, int tag) {
  BATON_ASSIGN_OR_RETURN(Request request, IRecv(data, bytes, peer, tag));
  return Wait(request);
}

StatusOr<Request> Communicator::ISend(const void* data, size_t bytes, int peer, int tag) {
  BATON_RETURN_IF_ERROR(CheckPeer(peer, "send"));
  BATON_RETURN_IF_ERROR(CheckTag(tag, "send"));
  BATON_RETURN_IF_ERROR(CheckBuffer(data, bytes, "send"));
  return DoISend(data, bytes, peer, tag);
}

StatusOr<Request> Communicator::IRecv(void* data, size_t bytes, int peer, int tag) {
  BATON_RETURN_IF_ERROR(CheckPeer(peer, "recv"));
  BATON_RETURN_IF_ERROR(CheckTag(tag, "recv"));
  BATON_RETURN_IF_ERROR(CheckBuffer(data, bytes, "recv"));
  return DoIRecv(data, bytes, peer, tag);
}

Status Communicator::Wait(Request& request) {
  if (!request.pending()) return Status::Ok();
  return DoWait(request);
}

StatusOr<bool> Communicator::Test(Request& request) {
  if (!request.pending()) return true;
  return DoTest(request);
}

Status Communicator::SendBytes(const std::vector<uint8_t>& bytes, int peer, int tag) {
  BATON_RETURN_IF_ERROR(CheckPeer(peer, "send"));
  BATON_RETURN_IF_ERROR(CheckTag(tag, "send"));
  return DoSendBytes(bytes, peer, tag);
}

StatusOr<std::vector<uint8_t>> Communicator::RecvBytes(int peer, int tag) {
  BATON_RETURN_IF_ERROR(CheckPeer(peer, "recv"));
  BATON_RETURN_IF_ERROR(CheckTag(tag, "recv"));
  return DoRecvBytes(peer, tag);
}

Status Communicator::Broadcast(void* data, size_t bytes, int root) {
  BATON_RETURN_IF_ERROR(CheckPeer(root, "broadcast root"));
  BATON_RETURN_IF_ERROR(CheckBuffer(data, bytes, "broadcast"));
  return DoBroadcast(data, bytes, root);
}

Status Communicator::AllGather(const void* send, void* recv, size_t count, ElementType type) {
  BATON_RETURN_IF_ERROR(CheckAllGather(send, recv, count, type));
  return DoAllGather(send, recv, count, type);
}

StatusOr<Request> Communicator::IAllGather(const void* send, void* recv, size_t count, ElementType type) {
  BATON_RETURN_IF_ERROR(CheckAllGather(send, recv, count, type));
  return DoIAllGather(send, recv, count, type);
}

StatusOr<Request> Communicator::DoIAllGather(const void* send, void* recv, size_t count, ElementType type) {
  BATON_RETURN_IF_ERROR(DoAllGather(send, recv, count, type));
  return Request();
}

Status Communicator::CheckAllGather(const void* send, const void* recv, size_t count, ElementType type) const {
  BATON_ASSIGN_OR_RETURN(size_t send_bytes, ChunkBytes(count, type, 1, "allgather"));
  BATON_ASSIGN_OR_RETURN(size_t recv_bytes, ChunkBytes(count, type, size(), "allgather"));
  BATON_RETURN_IF_ERROR(CheckBuffer(send, send_bytes, "allgather send"));
  BATON_RETURN_IF_ERROR(CheckBuffer(recv, recv_bytes, "allgather recv"));
  bool in_place = send == static_cast<const char*>(recv) + rank() * send_bytes;
  if (!in_place && !Disjoint(send, send_bytes, recv, recv_bytes)) {
    return Status::InvalidArgument("allgather: send overlaps recv other than at this rank's chunk");
  }
  return Status::Ok();
}

Status Communicator::ReduceScatter(const void* send, void* recv, size_t count, ElementType type, ReduceOp op) {
  BATON_ASSIGN_OR_RETURN(size_t recv_bytes, ChunkBytes(count, type, 1, "reduce_scatter"));
  BATON_ASSIGN_OR_RETURN(size_t send_bytes, ChunkBytes(count, type, size(), "reduce_scatter"));
  BATON_RETURN_IF_ERROR(CheckBuffer(send, send_bytes, "reduce_scatter send"));
  BATON_RETURN_IF_ERROR(CheckBuffer(recv, recv_bytes, "reduce_scatter recv"));
  bool in_place = recv == static_cast<const char*>(send) + rank() * recv_bytes;
  if (!in_place && !Disjoint(send, send_bytes, recv, recv_bytes)) {
    return Status::InvalidArgument("reduce_scatter: recv overlaps send other than at this rank's chunk");
  }
  return DoReduceScatter(send, recv, count, type, op);
}

Status Communicator::AllReduce(const void* send, void* recv, size_t count, ElementType type, ReduceOp op) {
  BATON_ASSIGN_OR_RETURN(size_t bytes, ChunkBytes(count, type, 1, "allreduce"));
  BATON_RETURN_IF_ERROR(CheckBuffer(send, bytes, "allreduce send"));
  BATON_RETURN_IF_ERROR(CheckBuffer(recv, bytes, "allreduce recv"));
  if (send != recv && !Disjoint(send, bytes, recv, bytes)) {
    return Status::InvalidArgument("allreduce: send and recv overlap without being the same buffer");
  }
  return DoAllReduce(send, recv, count, type, op);
}

Status Communicator::Barrier() { return DoBarrier(); }

Status Communicator::Send(const Tensor& tensor, int peer, int tag) {
  BATON_RETURN_IF_ERROR(CheckTensor(tensor, "send"));
  return Send(tensor.raw(), tensor.nbytes(), peer, tag);
}

Status Communicator::Recv(Tensor& tensor, int peer, int tag) {
  BATON_RETURN_IF_ERROR(CheckTensor(tensor, "recv"));
  return Recv(tensor.raw(), tensor.nbytes(), peer, tag);
}

Status Communicator::Broadcast(Tensor& tensor, int root) {
  BATON_RETURN_IF_ERROR(CheckTensor(tensor, "broadcast"));
  return Broadcast(tensor.raw(), tensor.nbytes(), root);
}

Status Communicator::AllGather(const Tensor& in, Tensor& out) {
  BATON_RETURN_IF_ERROR(CheckTensor(in, "allgather"));
  BATON_RETURN_IF_ERROR(CheckTensor(out, "allgather"));
  if (in.dtype() != out.dtype() || out.nbytes() != in.nbytes() * static_cast<size_t>(size())) {
    return Status::InvalidArgument("allgather: output " + out.DebugString() + " must hold " + std::to_string(size()) +
                                   " times input " + in.DebugString());
  }
  // Gathering moves bytes, so any dtype (packed INT4 too) works.
  return AllGather(in.raw(), out.raw(), in.nbytes(), ElementType::kUInt8);
}

Status Communicator::ReduceScatter(const Tensor& in, Tensor& out, ReduceOp op) {
  BATON_RETURN_IF_ERROR(CheckTensor(in, "reduce_scatter"));
  BATON_RETURN_IF_ERROR(CheckTensor(out, "reduce_scatter"));
  if (in.dtype() != out.dtype() || in.numel() != out.numel() * size()) {
    return Status::InvalidArgument("reduce_scatter: input " + in.DebugString() + " must hold " +
                                   std::to_string(size()) + " times output " + out.DebugString());
  }
  BATON_ASSIGN_OR_RETURN(ElementType type, ElementTypeOf(in.dtype()));
  return ReduceScatter(in.raw(), out.raw(), static_cast<size_t>(out.numel()), type, op);
}

Status Communicator::AllReduce(Tensor& tensor, ReduceOp op) {
  BATON_RETURN_IF_ERROR(CheckTensor(tensor, "allreduce"));
  BATON_ASSIGN_OR_RETURN(ElementType type, ElementTypeOf(tensor.dtype()));
  return AllReduce(tensor.raw(), tensor.raw(), static_cast<size_t>(tensor.numel()), type, op);
}

}  // namespace baton
