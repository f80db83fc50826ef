// MpiCommunicator in a world of one rank (MPI singleton mode, no mpirun):
// what `baton generate` without a launcher relies on. Multi-rank behaviour
// is tested under mpirun in tests/mpi.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <numeric>
#include <vector>

#include "runtime/comm/mpi_communicator.h"
#include "runtime/comm/mpi_environment.h"
#include "runtime/comm/process_mesh.h"

namespace baton {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct Mpi {
  std::unique_ptr<MpiEnvironment> env;
  std::unique_ptr<MpiCommunicator> world;
};

Mpi& TheMpi() {
  static Mpi mpi;
  return mpi;
}

// MPI starts on first use, so tests that do not need it never start it,
// and ends once after the last test (it cannot be restarted).
MpiCommunicator& World() {
  Mpi& mpi = TheMpi();
  if (mpi.env == nullptr) {
    StatusOr<std::unique_ptr<MpiEnvironment>> env = MpiEnvironment::Init(nullptr, nullptr);
    if (!env.ok()) AbortJob(env.status());
    mpi.env = std::move(env).value();
    StatusOr<std::unique_ptr<MpiCommunicator>> world = mpi.env->World(CommOptions{});
    if (!world.ok()) AbortJob(world.status());
    mpi.world = std::move(world).value();
  }
  return *mpi.world;
}

class FinalizeMpi : public ::testing::Environment {
 public:
  void TearDown() override {
    TheMpi().world.reset();
    TheMpi().env.reset();
  }
};
[[maybe_unused]] ::testing::Environment* const kFinalizeMpi = ::testing::AddGlobalTestEnvironment(new FinalizeMpi);

std::unique_ptr<MpiCommunicator> CommWithTimeout(milliseconds timeout) {
  World();
  CommOptions options;
  options.name = "short";
  options.timeout = timeout;
  StatusOr<std::unique_ptr<MpiCommunicator>> comm = MpiCommunicator::Create(MPI_COMM_WORLD, options);
  EXPECT_TRUE(comm.ok()) << comm.status().ToString();
  return comm.ok() ? std::move(comm).value() : nullptr;
}

TEST(MpiSingleton, IsAWorldOfOneRank) {
  MpiCommunicator& world = World();
  const MpiEnvironment& env = *TheMpi().env;
  EXPECT_EQ(env.world_rank(), 0);
  EXPECT_EQ(env.world_size(), 1);
  EXPECT_EQ(env.local_rank(), 0);
  EXPECT_EQ(env.local_size(), 1);
  EXPECT_GE(env.thread_level(), MpiThreadLevel::kFunneled);
  EXPECT_NE(env.Describe().find("rank 0 of 1 (node rank 0 of 1)"), std::string::npos) << env.Describe();
  EXPECT_NE(env.Describe().find(MpiThreadLevelName(env.thread_level())), std::string::npos);
  EXPECT_FALSE(env.library().empty());
  EXPECT_EQ(world.rank(), 0);
  EXPECT_EQ(world.size(), 1);
  EXPECT_EQ(world.name(), "world");
  EXPECT_EQ(world.device(), Device::kCpu);
  EXPECT_GE(world.max_tag(), 32767);
  EXPECT_EQ(world.WorldRankOf(0), 0);
}

TEST(MpiSingleton, MpiInitialisesOncePerProcess) {
  World();
  StatusOr<std::unique_ptr<MpiEnvironment>> again = MpiEnvironment::Init(nullptr, nullptr);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kFailedPrecondition);
}

TEST(MpiSingleton, NonBlockingSendToSelf) {
  MpiCommunicator& world = World();
  std::vector<int32_t> sent(1 << 18);  // 1 MiB: past the eager limit
  std::iota(sent.begin(), sent.end(), 7);
  std::vector<int32_t> received(sent.size(), -1);
  const size_t bytes = sent.size() * sizeof(int32_t);
  StatusOr<Request> recv = world.IRecv(received.data(), bytes, 0, 3);
  ASSERT_TRUE(recv.ok()) << recv.status().ToString();
  StatusOr<bool> early = world.Test(*recv);
  ASSERT_TRUE(early.ok()) << early.status().ToString();
  EXPECT_FALSE(*early);
  EXPECT_TRUE(recv->pending());
  StatusOr<Request> send = world.ISend(sent.data(), bytes, 0, 3);
  ASSERT_TRUE(send.ok()) << send.status().ToString();
  ASSERT_TRUE(world.Wait(*recv).ok());
  ASSERT_TRUE(world.Wait(*send).ok());
  EXPECT_FALSE(recv->pending());
  EXPECT_EQ(received, sent);
}

TEST(MpiSingleton, VariableSizeMessagesToSelf) {
  MpiCommunicator& world = World();
  const std::vector<uint8_t> plan = {1, 2, 3, 250, 0, 9};
  ASSERT_TRUE(world.SendBytes(plan, 0, 11).ok());
  ASSERT_TRUE(world.SendBytes({}, 0, 11).ok());
  StatusOr<std::vector<uint8_t>> first = world.RecvBytes(0, 11);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(*first, plan);
  StatusOr<std::vector<uint8_t>> empty = world.RecvBytes(0, 11);
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_TRUE(empty->empty());
}

TEST(MpiSingleton, RecvWithoutSenderTimesOutThenTheTagStillWorks) {
  std::unique_ptr<MpiCommunicator> comm = CommWithTimeout(milliseconds(300));
  ASSERT_NE(comm, nullptr);
  int32_t value = 0;
  const Clock::time_point start = Clock::now();
  Status timed_out = comm->Recv(&value, sizeof(value), 0, 7);
  const auto waited = Clock::now() - start;
  EXPECT_EQ(timed_out.code(), StatusCode::kUnavailable);
  EXPECT_EQ(timed_out.message(), "recv from rank 0 (tag 7) timed out after 0.3 s: peer dead or stuck?");
  EXPECT_GE(waited, milliseconds(300));
  EXPECT_LT(waited, milliseconds(3000));
  EXPECT_EQ(comm->RecvBytes(0, 7).status().code(), StatusCode::kUnavailable);

  // The timed-out receive was cancelled: it must not swallow the next message.
  const int32_t sent = 42;
  StatusOr<Request> send = comm->ISend(&sent, sizeof(sent), 0, 7);
  ASSERT_TRUE(send.ok());
  ASSERT_TRUE(comm->Recv(&value, sizeof(value), 0, 7).ok());
  ASSERT_TRUE(comm->Wait(*send).ok());
  EXPECT_EQ(value, 42);
}

TEST(MpiSingleton, MessageSizeMismatchIsAnError) {
  MpiCommunicator& world = World();
  std::vector<uint8_t> small(8, 1), large(16, 2);
  StatusOr<Request> send = world.ISend(small.data(), small.size(), 0, 5);
  ASSERT_TRUE(send.ok());
  Status shorter = world.Recv(large.data(), large.size(), 0, 5);
  EXPECT_EQ(shorter.code(), StatusCode::kInternal);
  EXPECT_EQ(shorter.message(),
            "recv from rank 0 (tag 5): expected 16 bytes, the message has 8 "
            "(sender and receiver disagree on its size)");
  ASSERT_TRUE(world.Wait(*send).ok());

  send = world.ISend(large.data(), large.size(), 0, 5);
  ASSERT_TRUE(send.ok());
  Status longer = world.Recv(small.data(), small.size(), 0, 5);
  EXPECT_EQ(longer.code(), StatusCode::kInternal);
  EXPECT_NE(longer.message().find("MPI_ERR_TRUNCATE"), std::string::npos) << longer.message();
  EXPECT_NE(longer.message().find("recv from rank 0 (tag 5)"), std::string::npos) << longer.message();
  EXPECT_NE(longer.message().find("runtime/comm/mpi_communicator.cc:"), std::string::npos) << longer.message();
  ASSERT_TRUE(world.Wait(*send).ok());
}

TEST(MpiSingleton, CollectivesOfOneRankAreCopies) {
  MpiCommunicator& world = World();
  std::vector<float> f = {1.5f, -2.0f, 3.25f};
  std::vector<float> f_out(3);
  ASSERT_TRUE(world.AllReduce(f.data(), f_out.data(), f.size(), ElementType::kFloat32).ok());
  EXPECT_EQ(f_out, f);
  std::vector<double> d = {1e300, -0.5};
  ASSERT_TRUE(world.AllReduce(std::span(d)).ok());
  EXPECT_EQ(d, (std::vector<double>{1e300, -0.5}));
  std::vector<int32_t> i = {3, -4};
  ASSERT_TRUE(world.AllReduce(std::span(i), ReduceOp::kMax).ok());
  EXPECT_EQ(i, (std::vector<int32_t>{3, -4}));

  std::vector<float> gathered(3);
  ASSERT_TRUE(world.AllGather(f.data(), gathered.data(), 3, ElementType::kFloat32).ok());
  EXPECT_EQ(gathered, f);
  ASSERT_TRUE(world.AllGather(gathered.data(), gathered.data(), 3, ElementType::kFloat32).ok());
  EXPECT_EQ(gathered, f);
  std::vector<float> scattered(3);
  ASSERT_TRUE(world.ReduceScatter(f.data(), scattered.data(), 3, ElementType::kFloat32).ok());
  EXPECT_EQ(scattered, f);
  ASSERT_TRUE(world.ReduceScatter(scattered.data(), scattered.data(), 3, ElementType::kFloat32).ok());
  EXPECT_EQ(scattered, f);

  std::vector<uint8_t> bytes = {9, 8, 7};
  ASSERT_TRUE(world.Broadcast(bytes.data(), bytes.size(), 0).ok());
  EXPECT_EQ(bytes, (std::vector<uint8_t>{9, 8, 7}));
  ASSERT_TRUE(world.Barrier().ok());

  Tensor t = Tensor::Zeros({2}, DType::kF32);
  t.data<float>()[1] = 4.0f;
  ASSERT_TRUE(world.AllReduce(t).ok());
  EXPECT_EQ(t.data<float>()[1], 4.0f);
  Tensor half = Tensor::Zeros({2}, DType::kBF16);
  Status no_bf16 = world.AllReduce(half);
  EXPECT_EQ(no_bf16.code(), StatusCode::kUnimplemented);
  EXPECT_NE(no_bf16.message().find("bfloat16"), std::string::npos) << no_bf16.message();
  Tensor half_out = Tensor::Zeros({2}, DType::kBF16);
  EXPECT_TRUE(world.AllGather(half, half_out).ok());  // moving bf16 is fine
}

TEST(MpiSingleton, RequestsBelongToTheirCommunicator) {
  MpiCommunicator& world = World();
  std::unique_ptr<MpiCommunicator> other = CommWithTimeout(milliseconds(1000));
  ASSERT_NE(other, nullptr);
  const int32_t sent = 5;
  StatusOr<Request> send = world.ISend(&sent, sizeof(sent), 0, 1);
  ASSERT_TRUE(send.ok());
  EXPECT_EQ(other->Wait(*send).code(), StatusCode::kInvalidArgument);
  int32_t received = 0;
  ASSERT_TRUE(world.Recv(&received, sizeof(received), 0, 1).ok());
  ASSERT_TRUE(world.Wait(*send).ok());
  EXPECT_EQ(received, 5);
}

TEST(MpiSingleton, MeshOfOneRank) {
  MpiCommunicator& world = World();
  StatusOr<ProcessMesh> mesh = ProcessMesh::Create(world, {.pp = 1, .dp = 1});
  ASSERT_TRUE(mesh.ok()) << mesh.status().ToString();
  EXPECT_EQ(mesh->pipeline().size(), 1);
  EXPECT_EQ(mesh->data_parallel().size(), 1);
  EXPECT_EQ(mesh->pipeline().name(), "pipeline");
  EXPECT_TRUE(mesh->is_first_stage());
  EXPECT_TRUE(mesh->is_last_stage());
  StatusOr<ProcessMesh> too_big = ProcessMesh::Create(world, {.pp = 2, .dp = 1});
  ASSERT_FALSE(too_big.ok());
  EXPECT_EQ(too_big.status().message(), "process mesh pp=2 x dp=1 needs 2 ranks, but the job has 1");
}

}  // namespace
}  // namespace baton
