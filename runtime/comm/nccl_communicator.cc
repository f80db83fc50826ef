// Compiled only where CUDA and NCCL are (runtime/CMakeLists.txt);
// nccl_unavailable.cc stands in for it elsewhere.
#include "runtime/comm/nccl_communicator.h"

#include <algorithm>
#include <utility>

#include "runtime/backend/cuda/cuda_backend.h"
#include "runtime/backend/cuda/cuda_check.h"
#include "runtime/comm/nccl_check.h"
#include "runtime/comm/nccl_factory.h"
#include "runtime/comm/poll_wait.h"

namespace baton {
namespace {

ncclDataType_t NcclTypeOf(ElementType type) {
  switch (type) {
    case ElementType::kUInt8:
      return ncclUint8;
    case ElementType::kInt8:
      return ncclInt8;
    case ElementType::kInt32:
      return ncclInt32;
    case ElementType::kInt64:
      return ncclInt64;
    case ElementType::kFloat16:
      return ncclFloat16;
    case ElementType::kBFloat16:
      return ncclBfloat16;
    case ElementType::kFloat32:
      return ncclFloat32;
    case ElementType::kFloat64:
      return ncclFloat64;
  }
  return ncclUint8;
}

ncclRedOp_t NcclOpOf(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return ncclSum;
    case ReduceOp::kMax:
      return ncclMax;
    case ReduceOp::kMin:
      return ncclMin;
  }
  return ncclSum;
}

// What Baton sends rank 0's NCCL id in: a flag first, so that when rank 0
// cannot make an id the others fail at once instead of joining nothing.
struct IdMessage {
  int32_t ok = 0;
  ncclUniqueId id{};
};

}  // namespace

class NcclCommunicator::RequestState final : public Request::State {
 public:
  RequestState(const NcclCommunicator* owner, cudaEvent_t done, std::string what)
      : owner(owner), done(done), what(std::move(what)) {}
  // Destroying an event whose work is pending is allowed: CUDA frees it
  // once the work is done, so an abandoned request never blocks.
  ~RequestState() override { cudaEventDestroy(done); }

  const NcclCommunicator* owner;
  cudaEvent_t done;
  std::string what;
};

NcclCommunicator::NcclCommunicator(int device, cudaStream_t compute_stream, CommOptions options)
    : device_(device), compute_(compute_stream), options_(std::move(options)) {}

StatusOr<std::unique_ptr<NcclCommunicator>> NcclCommunicator::Create(Communicator& bootstrap, int device,
                                                                     cudaStream_t compute_stream, CommOptions options) {
  if (bootstrap.device() != Device::kCpu) {
    return Status::InvalidArgument("NCCL communicator '" + options.name + "': bootstrap communicator '" +
                                   bootstrap.name() + "' must move host memory to pass the NCCL id");
  }
  std::unique_ptr<NcclCommunicator> self(new NcclCommunicator(device, compute_stream, std::move(options)));
  self->rank_ = bootstrap.rank();
  self->size_ = bootstrap.size();
  BATON_CUDA_CHECK(cudaSetDevice(device));
  BATON_CUDA_CHECK(cudaStreamCreateWithFlags(&self->stream_, cudaStreamNonBlocking));
  BATON_CUDA_CHECK(cudaEventCreateWithFlags(&self->compute_ready_, cudaEventDisableTiming));
  BATON_CUDA_CHECK(cudaMalloc(&self->barrier_word_, sizeof(int)));
  BATON_CUDA_CHECK(cudaMemset(self->barrier_word_, 0, sizeof(int)));

  IdMessage message;
  Status made = Status::Ok();
  if (self->rank_ == 0) {
    made = NcclErrorStatus(ncclGetUniqueId(&message.id), "ncclGetUniqueId", __FILE__, __LINE__);
    message.ok = made.ok() ? 1 : 0;
  }
  BATON_RETURN_IF_ERROR(
      bootstrap.Broadcast(&message, sizeof(message), 0).WithContext("passing the NCCL id of '" + self->name() + "'"));
  BATON_RETURN_IF_ERROR(made);
  if (message.ok == 0) {
    return Status::Unavailable("NCCL communicator '" + self->name() + "': rank 0 could not make a NCCL id");
  }

  // Nonblocking, so that joining (and every later call) can be polled with
  // the timeout instead of blocking forever on a rank that never comes.
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  config.commName = self->options_.name.c_str();
  BATON_NCCL_CHECK(ncclCommInitRankConfig(&self->comm_, self->size_, message.id, self->rank_, &config));
  BATON_RETURN_IF_ERROR(self->WaitReady("joining NCCL communicator '" + self->name() + "' as rank " +
                                        std::to_string(self->rank_) + " of " + std::to_string(self->size_) +
                                        " on GPU " + std::to_string(device)));
  return self;
}

NcclCommunicator::~NcclCommunicator() {
  if (comm_ != nullptr && CheckUsable().ok()) {
    // Finalize flushes what is in flight; a peer that never finishes gets
    // the timeout and then an abort, so destruction cannot hang either.
    Status flushed = NcclErrorStatus(ncclCommFinalize(comm_), "ncclCommFinalize", __FILE__, __LINE__);
    if (flushed.ok()) flushed = WaitReady("finalizing NCCL communicator '" + name() + "'");
    if (!flushed.ok()) (void)Fail(flushed);
  }
  if (comm_ != nullptr) ncclCommDestroy(comm_);
  if (barrier_word_ != nullptr) cudaFree(barrier_word_);
  if (compute_ready_ != nullptr) cudaEventDestroy(compute_ready_);
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

std::string NcclCommunicator::PeerName(int rank) const { return "'" + name() + "' rank " + std::to_string(rank); }

Status NcclCommunicator::CheckUsable() const {
  std::lock_guard<std::mutex> lock(broken_mu_);
  if (broken_.ok()) return Status::Ok();
  return Status::FailedPrecondition("NCCL communicator '" + name() +
                                    "' is unusable after an earlier error: " + broken_.ToString());
}

Status NcclCommunicator::Fail(const Status& status) {
  {
    std::lock_guard<std::mutex> lock(broken_mu_);
    if (broken_.ok()) broken_ = status;
  }
  if (comm_ != nullptr) {
    // Ends NCCL's kernels and proxy threads whatever the peers do.
    ncclCommAbort(comm_);
    comm_ = nullptr;
  }
  return status;
}

Status NcclCommunicator::WaitReady(const std::string& what) {
  auto poll = [&]() -> StatusOr<bool> {
    ncclResult_t state = ncclSuccess;
    BATON_NCCL_CHECK(ncclCommGetAsyncError(comm_, &state));
    if (state == ncclInProgress) return false;
    BATON_RETURN_IF_ERROR(NcclErrorStatus(state, "ncclCommGetAsyncError", __FILE__, __LINE__).WithContext(what));
    return true;
  };
  // A timeout's message already starts with `what`.
  Status status = PollUntilDone(poll, options_, [&] { return what; });
  return status.ok() ? status : Fail(status);
}

StatusOr<bool> NcclCommunicator::Poll(cudaEvent_t done, const std::string& what) {
  const cudaError_t queried = cudaEventQuery(done);
  if (queried == cudaSuccess) return true;
  if (queried != cudaErrorNotReady) {
    return cuda::CudaStatus(queried, "cudaEventQuery", __FILE__, __LINE__).WithContext(what);
  }
  ncclResult_t state = ncclSuccess;
  BATON_NCCL_CHECK(ncclCommGetAsyncError(comm_, &state));
  BATON_RETURN_IF_ERROR(NcclErrorStatus(state, "NCCL, asynchronously,", __FILE__, __LINE__).WithContext(what));
  return false;
}

Status NcclCommunicator::WaitEvent(cudaEvent_t done, const std::string& what) {
  Status status = PollUntilDone([&] { return Poll(done, what); }, options_, [&] { return what; });
  return status.ok() ? status : Fail(status);
}

template <typename Issue>
StatusOr<cudaEvent_t> NcclCommunicator::Enqueue(Issue issue, const std::string& what) {
  BATON_RETURN_IF_ERROR(CheckUsable());
  // The comm stream starts after the compute already queued: a send reads
  // finished data, a receive overwrites no memory a queued kernel still uses.
  BATON_CUDA_CHECK(cudaEventRecord(compute_ready_, compute_));
  BATON_CUDA_CHECK(cudaStreamWaitEvent(stream_, compute_ready_, 0));
  Status issued = NcclErrorStatus(ncclGroupStart(), "ncclGroupStart", __FILE__, __LINE__);
  if (issued.ok()) issued = issue();
  // Always close the group, even after a failed call inside it.
  Status ended = NcclErrorStatus(ncclGroupEnd(), "ncclGroupEnd", __FILE__, __LINE__);
  if (!issued.ok()) return Fail(issued.WithContext(what));
  if (!ended.ok()) return Fail(ended.WithContext(what));
  BATON_RETURN_IF_ERROR(WaitReady(what));
  cudaEvent_t done = nullptr;
  BATON_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  const cudaError_t recorded = cudaEventRecord(done, stream_);
  if (recorded != cudaSuccess) {
    cudaEventDestroy(done);
    return Fail(cuda::CudaStatus(recorded, "cudaEventRecord", __FILE__, __LINE__).WithContext(what));
  }
  return done;
}

template <typename Issue>
Status NcclCommunicator::RunCollective(Issue issue, const std::string& what) {
  BATON_ASSIGN_OR_RETURN(cudaEvent_t done, Enqueue(issue, what));
  Status status = WaitEvent(done, what);
  cudaEventDestroy(done);
  return status;
}

// --- point to point ---

StatusOr<Request> NcclCommunicator::DoISend(const void* data, size_t bytes, int peer, int tag) {
  std::string what =
      "send of " + std::to_string(bytes) + " bytes to " + PeerName(peer) + " (tag " + std::to_string(tag) + ")";
  BATON_ASSIGN_OR_RETURN(cudaEvent_t done,
                         Enqueue(
                             [&]() -> Status {
                               BATON_NCCL_CHECK(ncclSend(data, bytes, ncclUint8, peer, comm_, stream_));
                               return Status::Ok();
                             },
                             what));
  return Request(std::make_unique<RequestState>(this, done, std::move(what)));
}

StatusOr<Request> NcclCommunicator::DoIRecv(void* data, size_t bytes, int peer, int tag) {
  std::string what =
      "recv of " + std::to_string(bytes) + " bytes from " + PeerName(peer) + " (tag " + std::to_string(tag) + ")";
  BATON_ASSIGN_OR_RETURN(cudaEvent_t done,
                         Enqueue(
                             [&]() -> Status {
                               BATON_NCCL_CHECK(ncclRecv(data, bytes, ncclUint8, peer, comm_, stream_));
                               return Status::Ok();
                             },
                             what));
  return Request(std::make_unique<RequestState>(this, done, std::move(what)));
}

Status NcclCommunicator::DoWait(Request& request) {
  auto* state = dynamic_cast<RequestState*>(request.state());
  if (state == nullptr || state->owner != this) {
    return Status::InvalidArgument("wait: the request was not made by communicator '" + name() + "'");
  }
  Status status = CheckUsable();
  if (status.ok()) status = WaitEvent(state->done, state->what);
  request.Complete();
  return status;
}

StatusOr<bool> NcclCommunicator::DoTest(Request& request) {
  auto* state = dynamic_cast<RequestState*>(request.state());
  if (state == nullptr || state->owner != this) {
    return Status::InvalidArgument("test: the request was not made by communicator '" + name() + "'");
  }
  Status status = CheckUsable();
  if (status.ok()) {
    StatusOr<bool> done = Poll(state->done, state->what);
    if (done.ok() && !*done) return false;
    if (!done.ok()) status = Fail(done.status());
  }
  request.Complete();
  if (!status.ok()) return status;
  return true;
}

Status NcclCommunicator::DoSendBytes(const std::vector<uint8_t>& bytes, int peer, int /*tag*/) {
  return Status::Unimplemented("send of " + std::to_string(bytes.size()) + " host bytes to " + PeerName(peer) +
                               ": NCCL communicators move device buffers; send host messages over MPI");
}

StatusOr<std::vector<uint8_t>> NcclCommunicator::DoRecvBytes(int peer, int /*tag*/) {
  return Status::Unimplemented("recv of host bytes from " + PeerName(peer) +
                               ": NCCL communicators move device buffers; receive host messages over MPI");
}

// --- collectives ---

Status NcclCommunicator::DoBroadcast(void* data, size_t bytes, int root) {
  return RunCollective(
      [&]() -> Status {
        BATON_NCCL_CHECK(ncclBroadcast(data, data, bytes, ncclUint8, root, comm_, stream_));
        return Status::Ok();
      },
      "broadcast of " + std::to_string(bytes) + " bytes from " + PeerName(root));
}

Status NcclCommunicator::DoAllGather(const void* send, void* recv, size_t count, ElementType type) {
  // NCCL's in-place form is the interface's: send == recv + rank * count.
  return RunCollective(
      [&]() -> Status {
        BATON_NCCL_CHECK(ncclAllGather(send, recv, count, NcclTypeOf(type), comm_, stream_));
        return Status::Ok();
      },
      "allgather of " + std::to_string(count) + " " + ElementTypeName(type) + " per rank on '" + name() + "'");
}

Status NcclCommunicator::DoReduceScatter(const void* send, void* recv, size_t count, ElementType type, ReduceOp op) {
  return RunCollective(
      [&]() -> Status {
        BATON_NCCL_CHECK(ncclReduceScatter(send, recv, count, NcclTypeOf(type), NcclOpOf(op), comm_, stream_));
        return Status::Ok();
      },
      std::string("reduce_scatter (") + ReduceOpName(op) + ") of " + std::to_string(count) + " " +
          ElementTypeName(type) + " per rank on '" + name() + "'");
}

Status NcclCommunicator::DoAllReduce(const void* send, void* recv, size_t count, ElementType type, ReduceOp op) {
  return RunCollective(
      [&]() -> Status {
        BATON_NCCL_CHECK(ncclAllReduce(send, recv, count, NcclTypeOf(type), NcclOpOf(op), comm_, stream_));
        return Status::Ok();
      },
      std::string("allreduce (") + ReduceOpName(op) + ") of " + std::to_string(count) + " " + ElementTypeName(type) +
          " on '" + name() + "'");
}

Status NcclCommunicator::DoBarrier() {
  return RunCollective(
      [&]() -> Status {
        BATON_NCCL_CHECK(ncclAllReduce(barrier_word_, barrier_word_, 1, ncclInt32, ncclSum, comm_, stream_));
        return Status::Ok();
      },
      "barrier on '" + name() + "'");
}

// --- the factory (nccl_factory.h) ---

StatusOr<std::unique_ptr<Communicator>> MakeNcclCommunicator(Communicator& bootstrap, Backend& backend,
                                                             CommOptions options) {
  auto* cuda = dynamic_cast<CudaBackend*>(&backend);
  if (cuda == nullptr) {
    return Status::InvalidArgument("NCCL communicator '" + options.name + "' needs a CUDA backend, not '" +
                                   backend.name() + "'");
  }
  BATON_ASSIGN_OR_RETURN(auto nccl,
                         NcclCommunicator::Create(bootstrap, cuda->device_index(), cuda->stream(), std::move(options)));
  return std::unique_ptr<Communicator>(std::move(nccl));
}

bool NcclCompiledIn() { return true; }

}  // namespace baton
