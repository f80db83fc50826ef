#include "runtime/comm/mpi_communicator.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <numeric>
#include <utility>

#include "runtime/comm/poll_wait.h"

namespace baton {
namespace {

// Larger messages go as several: MPI counts are int, and 1 GiB pieces keep
// every count far from that limit.
constexpr size_t kMaxChunkBytes = size_t{1} << 30;

MPI_Datatype MpiTypeOf(ElementType type) {
  switch (type) {
    case ElementType::kUInt8:
      return MPI_UINT8_T;
    case ElementType::kInt8:
      return MPI_INT8_T;
    case ElementType::kInt32:
      return MPI_INT32_T;
    case ElementType::kInt64:
      return MPI_INT64_T;
    case ElementType::kFloat16:
    case ElementType::kBFloat16:
      return MPI_UINT16_T;  // moved, never reduced (MPI has no 16-bit floats)
    case ElementType::kFloat32:
      return MPI_FLOAT;
    case ElementType::kFloat64:
      return MPI_DOUBLE;
  }
  return MPI_DATATYPE_NULL;
}

StatusOr<MPI_Op> MpiOpOf(ReduceOp op, ElementType type, const char* what) {
  if (type == ElementType::kFloat16 || type == ElementType::kBFloat16) {
    return Status::Unimplemented(std::string(what) + ": MPI cannot reduce " + ElementTypeName(type) +
                                 "; convert to float32 first");
  }
  switch (op) {
    case ReduceOp::kSum:
      return MPI_SUM;
    case ReduceOp::kMax:
      return MPI_MAX;
    case ReduceOp::kMin:
      return MPI_MIN;
  }
  return Status::InvalidArgument(std::string(what) + ": unknown reduce op");
}

Status CheckIntCount(size_t count, const char* what) {
  if (count > static_cast<size_t>(INT_MAX)) {
    return Status::OutOfRange(std::string(what) + ": " + std::to_string(count) +
                              " elements per rank is over MPI's limit of " + std::to_string(INT_MAX));
  }
  return Status::Ok();
}

// Lets go of requests that will not be waited for, without blocking.
// Receives are cancelled first so that, if not yet matched, they never write.
void AbandonRequests(std::vector<MPI_Request>& requests, bool cancel) {
  if (!MpiIsActive()) return;
  for (MPI_Request& request : requests) {
    if (request == MPI_REQUEST_NULL) continue;
    if (cancel) MPI_Cancel(&request);
    MPI_Request_free(&request);
  }
}

// MPI_Testall reports MPI_ERR_IN_STATUS; the cause is in one of the statuses.
int FirstStatusError(int error, const std::vector<MPI_Status>& statuses) {
  if (error != MPI_ERR_IN_STATUS) return error;
  for (const MPI_Status& status : statuses) {
    if (status.MPI_ERROR != MPI_SUCCESS && status.MPI_ERROR != MPI_ERR_PENDING) return status.MPI_ERROR;
  }
  return error;
}

}  // namespace

class MpiCommunicator::RequestState final : public Request::State {
 public:
  RequestState(const MpiCommunicator* owner, OpKind kind, int peer, int tag)
      : owner(owner), kind(kind), peer(peer), tag(tag) {}
  // A collective's request may be neither cancelled nor freed (MPI-3
  // 5.12): one abandoned on an error path is left to the failing job.
  ~RequestState() override {
    if (kind != OpKind::kCollective) AbandonRequests(requests, kind == OpKind::kRecv);
  }

  const MpiCommunicator* owner;
  OpKind kind;
  int peer;
  int tag;
  std::vector<MPI_Request> requests;  // one per chunk
  std::vector<size_t> chunk_bytes;
  std::string what;  // a collective's description, for errors
};

MpiCommunicator::MpiCommunicator(MPI_Comm comm, CommOptions options) : comm_(comm), options_(std::move(options)) {}

MpiCommunicator::~MpiCommunicator() {
  // Frees lazily: MPI keeps the communicator until its pending operations
  // end, so this never blocks.
  if (comm_ != MPI_COMM_NULL && MpiIsActive()) MPI_Comm_free(&comm_);
}

StatusOr<std::unique_ptr<MpiCommunicator>> MpiCommunicator::Create(MPI_Comm comm, CommOptions options) {
  if (!MpiIsActive()) {
    return Status::FailedPrecondition("communicator '" + options.name + "': MPI is not initialised");
  }
  std::unique_ptr<MpiCommunicator> self(new MpiCommunicator(MPI_COMM_NULL, std::move(options)));
  // MPI_Comm_dup would block forever if a rank never arrives; the
  // non-blocking form is polled with our timeout like everything else.
  MPI_Comm dup = MPI_COMM_NULL;
  std::vector<MPI_Request> requests(1, MPI_REQUEST_NULL);
  std::vector<MPI_Status> statuses(1);
  BATON_MPI_CHECK(MPI_Comm_idup(comm, &dup, requests.data()));
  BATON_RETURN_IF_ERROR(self->WaitRequests(requests, statuses, OpKind::kCollective,
                                           [&] { return "creating communicator '" + self->name() + "'"; }));
  self->comm_ = dup;
  BATON_RETURN_IF_ERROR(self->Init());
  return self;
}

StatusOr<std::unique_ptr<MpiCommunicator>> MpiCommunicator::Split(int color, int key, CommOptions options) {
  if (color < 0) {
    return Status::InvalidArgument("split of '" + name() + "' into '" + options.name + "': color " +
                                   std::to_string(color) + " is negative");
  }
  BATON_RETURN_IF_ERROR(CheckUsable());
  // MPI_Comm_split has no non-blocking form; meeting at a timed barrier
  // first means every rank is alive and about to split.
  BATON_RETURN_IF_ERROR(Barrier().WithContext("split of '" + name() + "' into '" + options.name + "'"));
  MPI_Comm split = MPI_COMM_NULL;
  BATON_MPI_CHECK(MPI_Comm_split(comm_, color, key, &split));
  std::unique_ptr<MpiCommunicator> child(new MpiCommunicator(split, std::move(options)));
  BATON_RETURN_IF_ERROR(child->Init());
  return child;
}

Status MpiCommunicator::Init() {
  BATON_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  BATON_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  BATON_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  // The tag bound is an attribute of MPI_COMM_WORLD, the same for all.
  int* tag_ub = nullptr;
  int found = 0;
  BATON_MPI_CHECK(MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &tag_ub, &found));
  if (found != 0 && tag_ub != nullptr) max_tag_ = *tag_ub;

  MPI_Group group = MPI_GROUP_NULL;
  MPI_Group world_group = MPI_GROUP_NULL;
  BATON_MPI_CHECK(MPI_Comm_group(comm_, &group));
  BATON_MPI_CHECK(MPI_Comm_group(MPI_COMM_WORLD, &world_group));
  std::vector<int> ranks(static_cast<size_t>(size_));
  std::iota(ranks.begin(), ranks.end(), 0);
  world_ranks_.assign(ranks.size(), MPI_UNDEFINED);
  int translated = MPI_Group_translate_ranks(group, size_, ranks.data(), world_group, world_ranks_.data());
  MPI_Group_free(&group);
  MPI_Group_free(&world_group);
  if (translated != MPI_SUCCESS) {
    return MpiErrorStatus(translated, "MPI_Group_translate_ranks", __FILE__, __LINE__);
  }
  int world_size = 0;
  BATON_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world_size));
  is_world_order_ = world_size == size_ && world_ranks_ == ranks;
  return Status::Ok();
}

std::string MpiCommunicator::PeerName(int rank) const {
  if (is_world_order_) return "rank " + std::to_string(rank);
  return name() + " rank " + std::to_string(rank) + " (world rank " + std::to_string(WorldRankOf(rank)) + ")";
}

std::string MpiCommunicator::Describe(const RequestState& state) const {
  if (state.kind == OpKind::kCollective) return state.what + " on '" + name() + "'";
  const bool recv = state.kind == OpKind::kRecv;
  return std::string(recv ? "recv from " : "send to ") + PeerName(state.peer) + " (tag " + std::to_string(state.tag) +
         ")";
}

Status MpiCommunicator::CheckUsable() const {
  std::lock_guard<std::mutex> lock(broken_mu_);
  if (broken_.ok()) return Status::Ok();
  return Status::FailedPrecondition("communicator '" + name() +
                                    "' is unusable after an earlier error: " + broken_.ToString());
}

void MpiCommunicator::MarkBroken(const Status& status) {
  std::lock_guard<std::mutex> lock(broken_mu_);
  if (broken_.ok()) broken_ = status;
}

Status MpiCommunicator::WaitRequests(std::vector<MPI_Request>& requests, std::vector<MPI_Status>& statuses, OpKind kind,
                                     const std::function<std::string()>& describe) {
  statuses.resize(requests.size());
  auto poll = [&]() -> StatusOr<bool> {
    int done = 0;
    int error = MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, statuses.data());
    if (error != MPI_SUCCESS) {
      return MpiErrorStatus(FirstStatusError(error, statuses), "MPI_Testall", __FILE__, __LINE__)
          .WithContext(describe());
    }
    return done != 0;
  };
  Status status = PollUntilDone(poll, options_, describe);
  if (!status.ok()) {
    if (kind == OpKind::kCollective) {
      MarkBroken(status);
    } else {
      AbandonRequests(requests, kind == OpKind::kRecv);
    }
  }
  return status;
}

Status MpiCommunicator::WaitCollective(std::vector<MPI_Request>& requests,
                                       const std::function<std::string()>& describe) {
  std::vector<MPI_Status> statuses;
  return WaitRequests(requests, statuses, OpKind::kCollective, describe);
}

Status MpiCommunicator::CollectiveStartFailed(const Status& status) {
  MarkBroken(status);
  return status;
}

// --- point to point ---

StatusOr<Request> MpiCommunicator::DoISend(const void* data, size_t bytes, int peer, int tag) {
  BATON_RETURN_IF_ERROR(CheckUsable());
  auto state = std::make_unique<RequestState>(this, OpKind::kSend, peer, tag);
  const char* base = static_cast<const char*>(data);
  size_t offset = 0;
  do {  // at least one message, so empty sends still match a receive
    size_t chunk = std::min(kMaxChunkBytes, bytes - offset);
    MPI_Request request = MPI_REQUEST_NULL;
    BATON_MPI_CHECK(MPI_Isend(base + offset, static_cast<int>(chunk), MPI_BYTE, peer, tag, comm_, &request));
    state->requests.push_back(request);
    state->chunk_bytes.push_back(chunk);
    offset += chunk;
  } while (offset < bytes);
  return Request(std::move(state));
}

StatusOr<Request> MpiCommunicator::DoIRecv(void* data, size_t bytes, int peer, int tag) {
  BATON_RETURN_IF_ERROR(CheckUsable());
  auto state = std::make_unique<RequestState>(this, OpKind::kRecv, peer, tag);
  char* base = static_cast<char*>(data);
  size_t offset = 0;
  do {
    size_t chunk = std::min(kMaxChunkBytes, bytes - offset);
    MPI_Request request = MPI_REQUEST_NULL;
    BATON_MPI_CHECK(MPI_Irecv(base + offset, static_cast<int>(chunk), MPI_BYTE, peer, tag, comm_, &request));
    state->requests.push_back(request);
    state->chunk_bytes.push_back(chunk);
    offset += chunk;
  } while (offset < bytes);
  return Request(std::move(state));
}

Status MpiCommunicator::CheckReceivedSizes(const RequestState& state, const std::vector<MPI_Status>& statuses) const {
  if (state.kind != OpKind::kRecv) return Status::Ok();
  for (size_t i = 0; i < statuses.size(); ++i) {
    int received = 0;
    MPI_Get_count(&statuses[i], MPI_BYTE, &received);
    if (static_cast<size_t>(received) != state.chunk_bytes[i]) {
      return Status::Internal(Describe(state) + ": expected " + std::to_string(state.chunk_bytes[i]) +
                              " bytes, the message has " + std::to_string(received) +
                              " (sender and receiver disagree on its size)");
    }
  }
  return Status::Ok();
}

MpiCommunicator::RequestState* MpiCommunicator::StateOf(Request& request) const {
  auto* state = dynamic_cast<RequestState*>(request.state());
  return state != nullptr && state->owner == this ? state : nullptr;
}

Status MpiCommunicator::DoWait(Request& request) {
  RequestState* state = StateOf(request);
  if (state == nullptr) {
    return Status::InvalidArgument("wait: the request was not made by communicator '" + name() + "'");
  }
  std::vector<MPI_Status> statuses;
  Status status = CheckUsable();
  if (status.ok()) status = WaitRequests(state->requests, statuses, state->kind, [&] { return Describe(*state); });
  if (status.ok()) status = CheckReceivedSizes(*state, statuses);
  request.Complete();
  return status;
}

StatusOr<bool> MpiCommunicator::DoTest(Request& request) {
  RequestState* state = StateOf(request);
  if (state == nullptr) {
    return Status::InvalidArgument("test: the request was not made by communicator '" + name() + "'");
  }
  Status status = CheckUsable();
  std::vector<MPI_Status> statuses(state->requests.size());
  int done = 0;
  if (status.ok()) {
    int error = MPI_Testall(static_cast<int>(state->requests.size()), state->requests.data(), &done, statuses.data());
    if (error != MPI_SUCCESS) {
      status = MpiErrorStatus(FirstStatusError(error, statuses), "MPI_Testall", __FILE__, __LINE__)
                   .WithContext(Describe(*state));
    }
  }
  if (status.ok() && done == 0) return false;
  if (status.ok()) status = CheckReceivedSizes(*state, statuses);
  request.Complete();
  if (!status.ok()) return status;
  return true;
}

Status MpiCommunicator::DoSendBytes(const std::vector<uint8_t>& bytes, int peer, int tag) {
  BATON_RETURN_IF_ERROR(CheckUsable());
  if (bytes.size() > static_cast<size_t>(INT_MAX)) {
    return Status::OutOfRange("send to " + PeerName(peer) + ": " + std::to_string(bytes.size()) +
                              " bytes is over SendBytes' limit of one MPI message (2 GiB - 1); "
                              "send the size first and use Send");
  }
  std::vector<MPI_Request> requests(1, MPI_REQUEST_NULL);
  std::vector<MPI_Status> statuses;
  BATON_MPI_CHECK(MPI_Isend(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, peer, tag, comm_, requests.data()));
  return WaitRequests(requests, statuses, OpKind::kSend,
                      [&] { return "send to " + PeerName(peer) + " (tag " + std::to_string(tag) + ")"; });
}

StatusOr<std::vector<uint8_t>> MpiCommunicator::DoRecvBytes(int peer, int tag) {
  BATON_RETURN_IF_ERROR(CheckUsable());
  auto describe = [&] { return "recv from " + PeerName(peer) + " (tag " + std::to_string(tag) + ")"; };
  // A matched probe takes the message out of the queue, so another thread
  // receiving on the same (peer, tag) cannot steal it between probe and recv.
  MPI_Message message = MPI_MESSAGE_NULL;
  MPI_Status status;
  auto probe = [&]() -> StatusOr<bool> {
    int found = 0;
    BATON_MPI_CHECK(MPI_Improbe(peer, tag, comm_, &found, &message, &status));
    return found != 0;
  };
  BATON_RETURN_IF_ERROR(PollUntilDone(probe, options_, describe));
  int count = 0;
  BATON_MPI_CHECK(MPI_Get_count(&status, MPI_BYTE, &count));
  auto bytes = std::make_unique<std::vector<uint8_t>>(static_cast<size_t>(count));
  std::vector<MPI_Request> requests(1, MPI_REQUEST_NULL);
  std::vector<MPI_Status> statuses;
  BATON_MPI_CHECK(MPI_Imrecv(bytes->data(), count, MPI_BYTE, &message, requests.data()));
  Status received = WaitRequests(requests, statuses, OpKind::kRecv, describe);
  if (!received.ok()) {
    // A matched receive cannot be cancelled: MPI may still write into the
    // buffer, so it must outlive this call. Rare (the job is ending) and
    // small, so it is deliberately leaked.
    static_cast<void>(bytes.release());
    return received;
  }
  return std::move(*bytes);
}

// --- collectives ---

Status MpiCommunicator::DoBroadcast(void* data, size_t bytes, int root) {
  BATON_RETURN_IF_ERROR(CheckUsable());
  std::vector<MPI_Request> requests;
  char* base = static_cast<char*>(data);
  for (size_t offset = 0; offset < bytes; offset += kMaxChunkBytes) {
    size_t chunk = std::min(kMaxChunkBytes, bytes - offset);
    MPI_Request request = MPI_REQUEST_NULL;
    int error = MPI_Ibcast(base + offset, static_cast<int>(chunk), MPI_BYTE, root, comm_, &request);
    if (error != MPI_SUCCESS) return CollectiveStartFailed(MpiErrorStatus(error, "MPI_Ibcast", __FILE__, __LINE__));
    requests.push_back(request);
  }
  return WaitCollective(requests,
                        [&] { return "broadcast of " + std::to_string(bytes) + " bytes from " + PeerName(root); });
}

Status MpiCommunicator::DoAllGather(const void* send, void* recv, size_t count, ElementType type) {
  BATON_ASSIGN_OR_RETURN(Request request, DoIAllGather(send, recv, count, type));
  return DoWait(request);
}

StatusOr<Request> MpiCommunicator::DoIAllGather(const void* send, void* recv, size_t count, ElementType type) {
  BATON_RETURN_IF_ERROR(CheckUsable());
  BATON_RETURN_IF_ERROR(CheckIntCount(count, "allgather"));
  const size_t chunk_bytes = count * ElementSize(type);
  const bool in_place = send == static_cast<const char*>(recv) + static_cast<size_t>(rank_) * chunk_bytes;
  auto state = std::make_unique<RequestState>(this, OpKind::kCollective, -1, -1);
  state->what = "allgather of " + std::to_string(count) + " " + ElementTypeName(type) + " per rank";
  state->requests.assign(1, MPI_REQUEST_NULL);
  const int n = static_cast<int>(count);
  const MPI_Datatype mpi_type = MpiTypeOf(type);
  int error =
      MPI_Iallgather(in_place ? MPI_IN_PLACE : send, n, mpi_type, recv, n, mpi_type, comm_, state->requests.data());
  if (error != MPI_SUCCESS) {
    state->requests.clear();
    return CollectiveStartFailed(MpiErrorStatus(error, "MPI_Iallgather", __FILE__, __LINE__));
  }
  return Request(std::move(state));
}

Status MpiCommunicator::DoReduceScatter(const void* send, void* recv, size_t count, ElementType type, ReduceOp op) {
  BATON_RETURN_IF_ERROR(CheckUsable());
  BATON_RETURN_IF_ERROR(CheckIntCount(count, "reduce_scatter"));
  BATON_ASSIGN_OR_RETURN(MPI_Op mpi_op, MpiOpOf(op, type, "reduce_scatter"));
  const size_t chunk_bytes = count * ElementSize(type);
  const bool in_place = recv == static_cast<const char*>(send) + static_cast<size_t>(rank_) * chunk_bytes;
  // MPI's in-place form reduces the whole buffer and leaves this rank's
  // chunk at its start; the interface promises it at the rank's offset.
  void* full = const_cast<void*>(send);
  std::vector<MPI_Request> requests(1, MPI_REQUEST_NULL);
  int error = in_place ? MPI_Ireduce_scatter_block(MPI_IN_PLACE, full, static_cast<int>(count), MpiTypeOf(type), mpi_op,
                                                   comm_, requests.data())
                       : MPI_Ireduce_scatter_block(send, recv, static_cast<int>(count), MpiTypeOf(type), mpi_op, comm_,
                                                   requests.data());
  if (error != MPI_SUCCESS) {
    return CollectiveStartFailed(MpiErrorStatus(error, "MPI_Ireduce_scatter_block", __FILE__, __LINE__));
  }
  BATON_RETURN_IF_ERROR(WaitCollective(requests, [&] {
    return std::string("reduce_scatter (") + ReduceOpName(op) + ") of " + std::to_string(count) + " " +
           ElementTypeName(type) + " per rank on '" + name() + "'";
  }));
  if (in_place && rank_ != 0 && chunk_bytes > 0) std::memmove(recv, full, chunk_bytes);
  return Status::Ok();
}

Status MpiCommunicator::DoAllReduce(const void* send, void* recv, size_t count, ElementType type, ReduceOp op) {
  BATON_RETURN_IF_ERROR(CheckUsable());
  BATON_ASSIGN_OR_RETURN(MPI_Op mpi_op, MpiOpOf(op, type, "allreduce"));
  const size_t element = ElementSize(type);
  const size_t max_chunk = kMaxChunkBytes / element;
  const bool in_place = send == recv;
  std::vector<MPI_Request> requests;
  for (size_t offset = 0; offset < count; offset += max_chunk) {
    size_t chunk = std::min(max_chunk, count - offset);
    const void* chunk_send = in_place ? MPI_IN_PLACE : static_cast<const char*>(send) + offset * element;
    void* chunk_recv = static_cast<char*>(recv) + offset * element;
    MPI_Request request = MPI_REQUEST_NULL;
    int error =
        MPI_Iallreduce(chunk_send, chunk_recv, static_cast<int>(chunk), MpiTypeOf(type), mpi_op, comm_, &request);
    if (error != MPI_SUCCESS) {
      return CollectiveStartFailed(MpiErrorStatus(error, "MPI_Iallreduce", __FILE__, __LINE__));
    }
    requests.push_back(request);
  }
  return WaitCollective(requests, [&] {
    return std::string("allreduce (") + ReduceOpName(op) + ") of " + std::to_string(count) + " " +
           ElementTypeName(type) + " on '" + name() + "'";
  });
}

Status MpiCommunicator::DoBarrier() {
  BATON_RETURN_IF_ERROR(CheckUsable());
  std::vector<MPI_Request> requests(1, MPI_REQUEST_NULL);
  int error = MPI_Ibarrier(comm_, requests.data());
  if (error != MPI_SUCCESS) return CollectiveStartFailed(MpiErrorStatus(error, "MPI_Ibarrier", __FILE__, __LINE__));
  return WaitCollective(requests, [&] { return "barrier on '" + name() + "'"; });
}

}  // namespace baton
