// Every Communicator operation across real ranks, under
// `mpirun -np N mpi_comm_test` (N = 2, 3, 4), each result checked against
// a value computed independently from the ranks' inputs.
// Exits non-zero on any rank if any check failed on any rank.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "runtime/comm/mpi_communicator.h"
#include "runtime/comm/mpi_environment.h"
#include "runtime/comm/process_mesh.h"
#include "tests/mpi/mpi_check_util.h"

namespace baton {
namespace {

using mpi_testing::Checker;
using std::chrono::milliseconds;

// Content that says who sent it and where it sits.
int32_t Pattern(int sender, size_t i) { return static_cast<int32_t>(sender * 1000003 + static_cast<int>(i % 1000000)); }

std::vector<int32_t> PatternOf(int sender, size_t n) {
  std::vector<int32_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = Pattern(sender, i);
  return v;
}

void TestEnvironment(const MpiEnvironment& env, MpiCommunicator& world, Checker& check) {
  CHECK_TRUE(env.launched(), env.Describe());
  CHECK_TRUE(world.size() == env.world_size());
  CHECK_TRUE(world.rank() == env.world_rank());
  // All ranks share this one host, so node ranks are world ranks.
  CHECK_TRUE(env.local_size() == env.world_size(), env.Describe());
  CHECK_TRUE(env.local_rank() == env.world_rank(), env.Describe());
  CHECK_TRUE(world.WorldRankOf(world.rank()) == world.rank());
}

// Blocking ring, 1 MiB per message (past the eager limit, so Send really
// waits for the matching Recv); even ranks send first to avoid deadlock.
void TestRing(MpiCommunicator& world, Checker& check) {
  const int n = world.size(), r = world.rank();
  const int next = (r + 1) % n, prev = (r + n - 1) % n;
  const size_t count = 1 << 18;
  std::vector<int32_t> out = PatternOf(r, count), in(count, -1);
  const size_t bytes = count * sizeof(int32_t);
  if (r % 2 == 0) {
    CHECK_OK(world.Send(out.data(), bytes, next, 1));
    CHECK_OK(world.Recv(in.data(), bytes, prev, 1));
  } else {
    CHECK_OK(world.Recv(in.data(), bytes, prev, 1));
    CHECK_OK(world.Send(out.data(), bytes, next, 1));
  }
  CHECK_TRUE(in == PatternOf(prev, count), "ring message from rank " + std::to_string(prev));
}

// Everyone posts receives from everyone, then sends to everyone, then waits:
// only works if the operations really overlap.
void TestAllToAllNonBlocking(MpiCommunicator& world, Checker& check) {
  const int n = world.size(), r = world.rank();
  const size_t count = 50000 + static_cast<size_t>(r);  // sizes differ per sender
  std::vector<std::vector<int32_t>> in(static_cast<size_t>(n));
  std::vector<Request> requests;
  for (int peer = 0; peer < n; ++peer) {
    if (peer == r) continue;
    in[peer].assign(50000 + static_cast<size_t>(peer), -1);
    StatusOr<Request> recv = world.IRecv(in[peer].data(), in[peer].size() * sizeof(int32_t), peer, 100 + peer);
    if (CHECK_OK(recv.status())) requests.push_back(std::move(recv).value());
  }
  std::vector<int32_t> out = PatternOf(r, count);
  for (int peer = 0; peer < n; ++peer) {
    if (peer == r) continue;
    StatusOr<Request> send = world.ISend(out.data(), out.size() * sizeof(int32_t), peer, 100 + r);
    if (CHECK_OK(send.status())) requests.push_back(std::move(send).value());
  }
  // Test first (must not block), then Wait.
  for (Request& request : requests) CHECK_OK(world.Test(request).status());
  for (Request& request : requests) CHECK_OK(world.Wait(request));
  for (int peer = 0; peer < n; ++peer) {
    if (peer == r) continue;
    CHECK_TRUE(in[peer] == PatternOf(peer, 50000 + static_cast<size_t>(peer)), "from rank " + std::to_string(peer));
  }
}

void TestVariableSizeMessages(MpiCommunicator& world, Checker& check) {
  const int n = world.size(), r = world.rank();
  const int next = (r + 1) % n, prev = (r + n - 1) % n;
  auto message_of = [](int sender) {
    std::vector<uint8_t> bytes(sender == 0 ? 0 : static_cast<size_t>(10 * sender + 3));
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(sender * 31 + i);
    return bytes;
  };
  // Buffered-size messages complete without the receiver, so send then receive.
  CHECK_OK(world.SendBytes(message_of(r), next, 7));
  StatusOr<std::vector<uint8_t>> got = world.RecvBytes(prev, 7);
  if (CHECK_OK(got.status())) CHECK_TRUE(*got == message_of(prev), "size " + std::to_string(got->size()));
}

void TestBroadcast(MpiCommunicator& world, Checker& check) {
  for (int root = 0; root < world.size(); ++root) {
    std::vector<int32_t> data(1000, -1);
    if (world.rank() == root) data = PatternOf(root, data.size());
    CHECK_OK(world.Broadcast(data.data(), data.size() * sizeof(int32_t), root));
    CHECK_TRUE(data == PatternOf(root, data.size()), "broadcast from root " + std::to_string(root));
  }
}

void TestAllReduce(MpiCommunicator& world, Checker& check) {
  const int n = world.size(), r = world.rank();
  const size_t count = (1 << 20) + 3;  // big enough for MPI's segmented algorithms
  // float32: rank + i/2 sums to n(n-1)/2 + n*i/2, exact in float for these sizes.
  std::vector<float> f(count), f_sum(count);
  for (size_t i = 0; i < count; ++i) f[i] = static_cast<float>(r) + static_cast<float>(i % 1024) * 0.5f;
  CHECK_OK(world.AllReduce(f.data(), f_sum.data(), count, ElementType::kFloat32));
  size_t bad = 0;
  for (size_t i = 0; i < count; ++i) {
    const float want =
        static_cast<float>(n * (n - 1) / 2) + static_cast<float>(n) * static_cast<float>(i % 1024) * 0.5f;
    if (f_sum[i] != want) ++bad;
  }
  CHECK_TRUE(bad == 0, std::to_string(bad) + " wrong float32 sums");

  // float64 in place: rank * 1e-3 + i sums to n(n-1)/2 * 1e-3 + n*i.
  std::vector<double> d(1000);
  for (size_t i = 0; i < d.size(); ++i) d[i] = r * 1e-3 + static_cast<double>(i);
  CHECK_OK(world.AllReduce(std::span(d)));
  bad = 0;
  for (size_t i = 0; i < d.size(); ++i) {
    const double want = n * (n - 1) / 2 * 1e-3 + n * static_cast<double>(i);
    if (std::fabs(d[i] - want) > 1e-9) ++bad;
  }
  CHECK_TRUE(bad == 0, std::to_string(bad) + " wrong float64 sums");

  // int32 max and min of rank-dependent values.
  std::vector<int32_t> hi = {r, -r, 7 * r}, lo = hi;
  CHECK_OK(world.AllReduce(std::span(hi), ReduceOp::kMax));
  CHECK_OK(world.AllReduce(std::span(lo), ReduceOp::kMin));
  CHECK_TRUE(hi == (std::vector<int32_t>{n - 1, 0, 7 * (n - 1)}));
  CHECK_TRUE(lo == (std::vector<int32_t>{0, -(n - 1), 0}));

  // Tensor form.
  Tensor t = Tensor::Zeros({2, 2}, DType::kF32);
  for (int i = 0; i < 4; ++i) t.data<float>()[i] = static_cast<float>((r + 1) * (i + 1));
  CHECK_OK(world.AllReduce(t));
  for (int i = 0; i < 4; ++i) CHECK_TRUE(t.data<float>()[i] == static_cast<float>(n * (n + 1) / 2 * (i + 1)));
}

void TestAllGather(MpiCommunicator& world, Checker& check) {
  const int n = world.size(), r = world.rank();
  const size_t count = 5;
  std::vector<int32_t> mine(count), gathered(count * n, -1), in_place(count * n, -1);
  for (size_t j = 0; j < count; ++j) mine[j] = r * 100 + static_cast<int32_t>(j);
  CHECK_OK(world.AllGather(mine.data(), gathered.data(), count, ElementType::kInt32));
  std::copy(mine.begin(), mine.end(), in_place.begin() + static_cast<long>(r * count));
  CHECK_OK(world.AllGather(in_place.data() + r * count, in_place.data(), count, ElementType::kInt32));
  std::vector<int32_t> want(count * n);
  for (int q = 0; q < n; ++q) {
    for (size_t j = 0; j < count; ++j) want[q * count + j] = q * 100 + static_cast<int32_t>(j);
  }
  CHECK_TRUE(gathered == want);
  CHECK_TRUE(in_place == want);

  // Tensor form, bfloat16 (moved as bytes).
  Tensor in = Tensor::Zeros({3}, DType::kBF16);
  for (int j = 0; j < 3; ++j) in.data<uint16_t>()[j] = FloatToBf16(static_cast<float>(r * 10 + j));
  Tensor out = Tensor::Zeros({n, 3}, DType::kBF16);
  CHECK_OK(world.AllGather(in, out));
  for (int q = 0; q < n; ++q) {
    for (int j = 0; j < 3; ++j)
      CHECK_TRUE(Bf16ToFloat(out.data<uint16_t>()[q * 3 + j]) == static_cast<float>(q * 10 + j));
  }
}

void TestReduceScatter(MpiCommunicator& world, Checker& check) {
  const int n = world.size(), r = world.rank();
  const size_t count = 4;
  // Chunk c, element j on rank q: (q + 1) * (10c + j); summed over ranks:
  // n(n+1)/2 * (10c + j).
  std::vector<float> send(count * n), recv(count, -1.0f);
  for (int c = 0; c < n; ++c) {
    for (size_t j = 0; j < count; ++j)
      send[c * count + j] = static_cast<float>((r + 1) * (10 * c + static_cast<int>(j)));
  }
  std::vector<float> in_place = send;
  CHECK_OK(world.ReduceScatter(send.data(), recv.data(), count, ElementType::kFloat32));
  CHECK_OK(world.ReduceScatter(in_place.data(), in_place.data() + r * count, count, ElementType::kFloat32));
  for (size_t j = 0; j < count; ++j) {
    const float want = static_cast<float>(n * (n + 1) / 2 * (10 * r + static_cast<int>(j)));
    CHECK_TRUE(recv[j] == want, std::to_string(recv[j]) + " != " + std::to_string(want));
    CHECK_TRUE(in_place[r * count + j] == want,
               std::to_string(in_place[r * count + j]) + " != " + std::to_string(want));
  }
  CHECK_OK(world.Barrier());
}

void TestMesh(MpiCommunicator& world, Checker& check) {
  const int n = world.size();
  std::vector<MeshShape> shapes = {{.pp = n, .dp = 1}, {.pp = 1, .dp = n}};
  if (n == 4) shapes.push_back({.pp = 2, .dp = 2});
  for (MeshShape shape : shapes) {
    StatusOr<ProcessMesh> mesh = ProcessMesh::Create(world, shape);
    if (!CHECK_OK(mesh.status())) continue;
    const MeshCoord coord = MeshCoordOf(shape, world.rank());
    CHECK_TRUE(mesh->coord() == coord);
    auto& pipeline = static_cast<MpiCommunicator&>(mesh->pipeline());
    auto& data_parallel = static_cast<MpiCommunicator&>(mesh->data_parallel());
    CHECK_TRUE(pipeline.size() == shape.pp && pipeline.rank() == coord.pp_stage);
    CHECK_TRUE(data_parallel.size() == shape.dp && data_parallel.rank() == coord.dp_index);
    std::vector<int> pipeline_members, dp_members;
    for (int i = 0; i < pipeline.size(); ++i) pipeline_members.push_back(pipeline.WorldRankOf(i));
    for (int i = 0; i < data_parallel.size(); ++i) dp_members.push_back(data_parallel.WorldRankOf(i));
    CHECK_TRUE(pipeline_members == PipelineRanks(shape, coord.dp_index));
    CHECK_TRUE(dp_members == DataParallelRanks(shape, coord.pp_stage));
    CHECK_TRUE(mesh->is_first_stage() == (coord.pp_stage == 0));
    CHECK_TRUE(mesh->is_last_stage() == (coord.pp_stage == shape.pp - 1));

    // Traffic stays inside each group: sums of world ranks are the groups'.
    std::vector<int32_t> sum = {world.rank()};
    CHECK_OK(mesh->pipeline().AllReduce(std::span(sum)));
    const auto pipeline_ranks = PipelineRanks(shape, coord.dp_index);
    CHECK_TRUE(sum[0] == std::accumulate(pipeline_ranks.begin(), pipeline_ranks.end(), 0));
    sum = {world.rank()};
    CHECK_OK(mesh->data_parallel().AllReduce(std::span(sum)));
    const auto dp_ranks = DataParallelRanks(shape, coord.pp_stage);
    CHECK_TRUE(sum[0] == std::accumulate(dp_ranks.begin(), dp_ranks.end(), 0));

    // Stage s sends to stage s+1 of the same replica, like activations.
    if (shape.pp > 1) {
      int32_t token = -1;
      if (!mesh->is_last_stage()) {
        int32_t mine = world.rank();
        CHECK_OK(mesh->pipeline().Send(&mine, sizeof(mine), coord.pp_stage + 1, 3));
      }
      if (!mesh->is_first_stage()) {
        CHECK_OK(mesh->pipeline().Recv(&token, sizeof(token), coord.pp_stage - 1, 3));
        CHECK_TRUE(token == world.rank() - 1);  // consecutive ranks form the pipeline
      }
    }
  }
  // A shape that does not fit fails on every rank alike, without talking.
  StatusOr<ProcessMesh> bad = ProcessMesh::Create(world, {.pp = n + 1, .dp = 1});
  CHECK_TRUE(!bad.ok() && bad.status().code() == StatusCode::kInvalidArgument);
}

// Timeouts on a live job: a receive nobody answers, and a collective one
// rank skips. The job must survive both and report them clearly.
void TestTimeouts(MpiCommunicator& world, Checker& check) {
  CommOptions options = world.options();
  options.name = "short";
  options.timeout = milliseconds(300);
  StatusOr<std::unique_ptr<MpiCommunicator>> made = MpiCommunicator::Create(world.mpi_comm(), options);
  if (!CHECK_OK(made.status())) return;
  MpiCommunicator& short_comm = **made;
  const int n = world.size(), r = world.rank();

  // Nobody sends on tag 9.
  int32_t value = 0;
  Status recv = short_comm.Recv(&value, sizeof(value), (r + 1) % n, 9);
  const std::string want =
      "recv from rank " + std::to_string((r + 1) % n) + " (tag 9) timed out after 0.3 s: peer dead or stuck?";
  CHECK_TRUE(recv.code() == StatusCode::kUnavailable && recv.message() == want, recv.ToString());

  // Messages name the group rank and the world rank on split groups.
  if (n >= 2) {
    StatusOr<std::unique_ptr<MpiCommunicator>> odd_even = short_comm.Split(r % 2, r, options);
    if (CHECK_OK(odd_even.status()) && (*odd_even)->size() > 1) {
      MpiCommunicator& group = **odd_even;
      const int peer = (group.rank() + 1) % group.size();
      Status group_recv = group.Recv(&value, sizeof(value), peer, 9);
      const std::string group_want = "recv from short rank " + std::to_string(peer) + " (world rank " +
                                     std::to_string(group.WorldRankOf(peer)) +
                                     ") (tag 9) timed out after 0.3 s: peer dead or stuck?";
      CHECK_TRUE(group_recv.message() == group_want, group_recv.ToString());
    }
  }
  CHECK_OK(world.Barrier());

  // Rank 0 skips a barrier: the others time out, then their communicator
  // refuses further work; rank 0's late barrier lets theirs finish.
  if (r != 0) {
    Status barrier = short_comm.Barrier();
    CHECK_TRUE(barrier.code() == StatusCode::kUnavailable &&
                   barrier.message() == "barrier on 'short' timed out after 0.3 s: peer dead or stuck?",
               barrier.ToString());
    Status after = short_comm.Barrier();
    CHECK_TRUE(after.code() == StatusCode::kFailedPrecondition &&
                   after.message().find("unusable after an earlier error") != std::string::npos,
               after.ToString());
  }
  CHECK_OK(world.Barrier());
  if (r == 0) CHECK_OK(short_comm.Barrier());
  CHECK_OK(world.Barrier());
}

// Returns the number of failed checks over all ranks.
int RunChecks(const MpiEnvironment& env) {
  StatusOr<CommOptions> options = CommOptionsFromEnv("world");
  if (!options.ok()) AbortJob(options.status());
  StatusOr<std::unique_ptr<MpiCommunicator>> made = env.World(*options);
  if (!made.ok()) AbortJob(made.status());
  MpiCommunicator& world = **made;
  Checker check(world.rank());
  TestEnvironment(env, world, check);

  struct Case {
    const char* name;
    void (*run)(MpiCommunicator&, Checker&);
  };
  const Case cases[] = {
      {"ring", TestRing},
      {"all_to_all_non_blocking", TestAllToAllNonBlocking},
      {"variable_size", TestVariableSizeMessages},
      {"broadcast", TestBroadcast},
      {"allreduce", TestAllReduce},
      {"allgather", TestAllGather},
      {"reduce_scatter", TestReduceScatter},
      {"mesh", TestMesh},
      {"timeouts", TestTimeouts},
  };
  for (const Case& c : cases) {
    const int before = check.failures();
    c.run(world, check);
    if (world.rank() == 0) std::printf("%-26s %s on rank 0\n", c.name, check.failures() == before ? "ok" : "FAILED");
  }
  std::vector<int32_t> failures = {check.failures()};
  if (!CHECK_OK(world.AllReduce(std::span(failures)))) return check.failures() + 1;
  if (world.rank() == 0) {
    std::printf("%s: %d failed checks over %d ranks (%s)\n", failures[0] == 0 ? "PASSED" : "FAILED", failures[0],
                world.size(), env.Describe().c_str());
  }
  std::fflush(stdout);
  return failures[0];
}

int Run(int argc, char** argv) {
  StatusOr<std::unique_ptr<MpiEnvironment>> env = MpiEnvironment::Init(&argc, &argv);
  if (!env.ok()) AbortJob(env.status());
  // Communicators live inside RunChecks, so they are gone before MPI_Finalize.
  return RunChecks(**env) == 0 ? 0 : 1;
}

}  // namespace
}  // namespace baton

int main(int argc, char** argv) { return baton::Run(argc, argv); }
