// NcclCommunicator on real GPUs, under `mpirun -np 2` (one GPU per rank,
// chosen by local rank): point to point (also straight after queued
// compute, which the comm stream must wait for), every collective against
// values computed here, bf16 reduction, the errors of the interface, and a
// peer that never sends: Unavailable after the timeout, not a hang.
// A plain program, not GTest, because it needs MPI around it; it prints
// one line per check and exits non-zero on any failure.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "runtime/backend/cuda/make_cuda_backend.h"
#include "runtime/comm/mpi_environment.h"
#include "runtime/comm/nccl_factory.h"

namespace baton {
namespace {

int failures = 0;
int rank_for_log = 0;

void Check(bool ok, const std::string& what, const std::string& detail = "") {
  std::printf("rank %d [%s] %s%s%s\n", rank_for_log, ok ? "PASS" : "FAIL", what.c_str(), detail.empty() ? "" : ": ",
              detail.c_str());
  if (!ok) ++failures;
}

void CheckOk(const Status& s, const std::string& what) { Check(s.ok(), what, s.ok() ? "" : s.ToString()); }

Tensor HostF32(const std::vector<float>& v) {
  Tensor t = Tensor::Empty({static_cast<int64_t>(v.size())}, DType::kF32);
  for (size_t i = 0; i < v.size(); ++i) t.data<float>()[i] = v[i];
  return t;
}

// Largest |got - want(i)| over the device tensor's elements.
template <typename Want>
double MaxError(Backend& backend, const Tensor& device, Want want) {
  Tensor host = backend.ToHostF32(device);
  double worst = 0;
  for (int64_t i = 0; i < host.numel(); ++i) {
    worst = std::max(worst, std::fabs(static_cast<double>(host.data<float>()[i]) - want(i)));
  }
  return worst;
}

void Run(MpiEnvironment& env) {
  const int gpu = env.local_rank();
  auto backend_or = MakeCudaBackend(DType::kF32, gpu);
  if (!backend_or.ok())
    return Check(false, "cuda backend on GPU " + std::to_string(gpu), backend_or.status().ToString());
  Backend& backend = **backend_or;
  auto world_or = env.World(CommOptions{});
  if (!world_or.ok()) return Check(false, "mpi world", world_or.status().ToString());
  MpiCommunicator& world = **world_or;
  const int rank = world.rank(), size = world.size();
  CommOptions options;
  options.name = "nccl-test";
  options.timeout = std::chrono::seconds(60);
  auto nccl_or = MakeNcclCommunicator(world, backend, options);
  if (!nccl_or.ok()) return Check(false, "create", nccl_or.status().ToString());
  Communicator& nccl = **nccl_or;
  Check(nccl.rank() == rank && nccl.size() == size && nccl.device() == Device::kCuda, "rank, size and device");

  // Point to point, 1M floats, right after compute queued on the backend's
  // stream: rank 0 uploads a and b and adds them in place without waiting.
  const int64_t n = 1 << 20;
  std::vector<float> a(n), b(n);
  for (int64_t i = 0; i < n; ++i) a[i] = static_cast<float>(i % 1000), b[i] = 0.5f * static_cast<float>(i % 7);
  auto want_sum = [&](int64_t i) { return static_cast<double>(a[i]) + b[i]; };
  if (rank == 0) {
    Tensor x = backend.Upload(HostF32(a), DType::kF32);
    Tensor y = backend.Upload(HostF32(b), DType::kF32);
    for (int rep = 0; rep < 80; ++rep) backend.AddInPlace(x, y);  // keeps the stream busy for a while
    Tensor z = backend.Upload(HostF32(b), DType::kF32);
    Tensor w = backend.Upload(HostF32(a), DType::kF32);
    backend.AddInPlace(w, z);  // w = a + b, queued just before the send
    auto request = nccl.ISend(w.raw(), w.nbytes(), 1, 7);
    CheckOk(request.status(), "isend after queued compute");
    if (request.ok()) CheckOk(nccl.Wait(*request), "wait for isend");
  } else if (rank == 1) {
    Tensor got = backend.Allocate({n}, DType::kF32);
    CheckOk(nccl.Recv(got, 0, 7), "recv tensor");
    const double err = MaxError(backend, got, want_sum);
    Check(err == 0, "received data equals the sender's computed a + b", "max error " + std::to_string(err));
  }
  CheckOk(nccl.Barrier(), "barrier");

  // AllReduce in place: rank r holds r + 1 + i%5; the sum is known here.
  {
    std::vector<float> mine(1000);
    for (int i = 0; i < 1000; ++i) mine[i] = static_cast<float>(rank + 1 + i % 5);
    Tensor t = backend.Upload(HostF32(mine), DType::kF32);
    CheckOk(nccl.AllReduce(t), "allreduce f32");
    const double err = MaxError(backend, t, [&](int64_t i) { return size * (size + 1) / 2.0 + size * (i % 5); });
    Check(err == 0, "allreduce f32 values", "max error " + std::to_string(err));
    Tensor m = backend.Upload(HostF32(mine), DType::kF32);
    CheckOk(nccl.AllReduce(m, ReduceOp::kMax), "allreduce max");
    Check(MaxError(backend, m, [&](int64_t i) { return size + i % 5; }) == 0, "allreduce max values");
  }
  // bf16 reduction (MPI cannot): small integers are exact in bf16.
  {
    std::vector<float> mine(4096, static_cast<float>(rank + 1));
    Tensor t = backend.Upload(HostF32(mine), DType::kBF16);
    CheckOk(nccl.AllReduce(t), "allreduce bf16");
    Check(MaxError(backend, t, [&](int64_t) { return size * (size + 1) / 2.0; }) == 0, "allreduce bf16 values");
  }
  // AllGather: rank r's chunk of 333 holds 10 r + i.
  {
    const int64_t c = 333;
    std::vector<float> mine(c);
    for (int64_t i = 0; i < c; ++i) mine[i] = static_cast<float>(10 * rank + i);
    Tensor in = backend.Upload(HostF32(mine), DType::kF32);
    Tensor out = backend.Allocate({c * size}, DType::kF32);
    CheckOk(nccl.AllGather(in, out), "allgather");
    Check(MaxError(backend, out, [&](int64_t i) { return 10.0 * (i / c) + i % c; }) == 0, "allgather values");
  }
  // ReduceScatter: chunk k of rank r holds (r + 1) (k + 1); rank r gets chunk r summed.
  {
    const int64_t c = 257;
    std::vector<float> mine(c * size);
    for (int64_t i = 0; i < c * size; ++i) mine[i] = static_cast<float>((rank + 1) * (i / c + 1));
    Tensor in = backend.Upload(HostF32(mine), DType::kF32);
    Tensor out = backend.Allocate({c}, DType::kF32);
    CheckOk(nccl.ReduceScatter(in, out), "reduce_scatter");
    Check(MaxError(backend, out, [&](int64_t) { return size * (size + 1) / 2.0 * (rank + 1); }) == 0,
          "reduce_scatter values");
  }
  // Broadcast from the last rank.
  {
    const int root = size - 1;
    std::vector<float> mine(777, rank == root ? 42.0f : -1.0f);
    Tensor t = backend.Upload(HostF32(mine), DType::kF32);
    CheckOk(nccl.Broadcast(t, root), "broadcast");
    Check(MaxError(backend, t, [](int64_t) { return 42.0; }) == 0, "broadcast values");
  }
  // Interface errors: host tensors and host byte messages are refused.
  {
    Tensor host = HostF32({1, 2, 3});
    Status s = nccl.Send(host, (rank + 1) % size, 1);
    Check(s.code() == StatusCode::kInvalidArgument, "host tensor refused", s.ToString());
    s = nccl.SendBytes({1, 2, 3}, (rank + 1) % size, 1);
    Check(s.code() == StatusCode::kUnimplemented, "SendBytes unimplemented", s.ToString());
  }
  CheckOk(nccl.Barrier(), "barrier before the timeout test");

  // A peer that never sends: rank 0's receive is Unavailable after the
  // timeout, and the communicator refuses later calls.
  CommOptions short_options;
  short_options.name = "nccl-timeout";
  short_options.timeout = std::chrono::milliseconds(1500);
  {  // destroyed at the end of the block (rank 1's finalize may time out, then aborts)
    auto lonely_or = MakeNcclCommunicator(world, backend, short_options);
    CheckOk(lonely_or.status(), "create second communicator");
    if (!lonely_or.ok()) return;
    Communicator& lonely = **lonely_or;
    if (rank == 0) {
      Tensor t = backend.Allocate({16}, DType::kF32);
      const auto start = std::chrono::steady_clock::now();
      Status s = lonely.Recv(t, 1, 3);
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      Check(s.code() == StatusCode::kUnavailable && waited >= 1.4 && waited < 10, "recv from a silent peer times out",
            s.ToString() + " after " + std::to_string(waited) + " s");
      Status again = lonely.Barrier();
      Check(again.code() == StatusCode::kFailedPrecondition, "broken communicator refuses calls", again.ToString());
    }
    CheckOk(world.Barrier(), "mpi barrier after the timeout test");
  }
  // The first communicator still works after the second broke.
  {
    std::vector<float> one(8, 1.0f);
    Tensor t = backend.Upload(HostF32(one), DType::kF32);
    CheckOk(nccl.AllReduce(t), "first communicator still usable");
    Check(MaxError(backend, t, [&](int64_t) { return static_cast<double>(size); }) == 0, "its values");
  }
}

}  // namespace
}  // namespace baton

int main(int argc, char** argv) {
  auto env = baton::MpiEnvironment::Init(&argc, &argv);
  if (!env.ok()) {
    std::fprintf(stderr, "%s\n", env.status().ToString().c_str());
    return 1;
  }
  baton::rank_for_log = (*env)->world_rank();
  if ((*env)->world_size() < 2) {
    std::printf("needs mpirun -np 2 (or more) and one GPU per rank\n");
    return 1;
  }
  if (!baton::NcclCompiledIn()) {
    std::printf("built without NCCL\n");
    return 1;
  }
  baton::Run(**env);
  std::printf("rank %d: %d failure(s)\n", baton::rank_for_log, baton::failures);
  std::fflush(stdout);
  return baton::failures == 0 ? 0 : 1;
}
