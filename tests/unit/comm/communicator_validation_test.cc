// The argument checks every Communicator shares, on a fake backend that
// records what reached it: shows a second backend (NCCL) needs only the
// Do* methods, and that bad calls never reach one.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "runtime/comm/communicator.h"

namespace baton {
namespace {

class FakeCommunicator final : public Communicator {
 public:
  FakeCommunicator(int rank, int size, Device device = Device::kCpu) : rank_(rank), size_(size), device_(device) {}

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  Device device() const override { return device_; }
  const std::string& name() const override { return name_; }
  int max_tag() const override { return 32767; }

  std::vector<std::string> calls;
  size_t last_count = 0;
  ElementType last_type = ElementType::kUInt8;

 protected:
  StatusOr<Request> DoISend(const void*, size_t bytes, int, int) override {
    Record("isend", bytes, ElementType::kUInt8);
    return Request(std::make_unique<Request::State>());
  }
  StatusOr<Request> DoIRecv(void*, size_t bytes, int, int) override {
    Record("irecv", bytes, ElementType::kUInt8);
    return Request(std::make_unique<Request::State>());
  }
  Status DoWait(Request& request) override {
    Record("wait", 0, ElementType::kUInt8);
    request.Complete();
    return Status::Ok();
  }
  StatusOr<bool> DoTest(Request& request) override {
    Record("test", 0, ElementType::kUInt8);
    request.Complete();
    return true;
  }
  Status DoSendBytes(const std::vector<uint8_t>& bytes, int, int) override {
    Record("send_bytes", bytes.size(), ElementType::kUInt8);
    return Status::Ok();
  }
  StatusOr<std::vector<uint8_t>> DoRecvBytes(int, int) override {
    Record("recv_bytes", 0, ElementType::kUInt8);
    return std::vector<uint8_t>{};
  }
  Status DoBroadcast(void*, size_t bytes, int) override {
    Record("broadcast", bytes, ElementType::kUInt8);
    return Status::Ok();
  }
  Status DoAllGather(const void*, void*, size_t count, ElementType type) override {
    Record("allgather", count, type);
    return Status::Ok();
  }
  Status DoReduceScatter(const void*, void*, size_t count, ElementType type, ReduceOp) override {
    Record("reduce_scatter", count, type);
    return Status::Ok();
  }
  Status DoAllReduce(const void*, void*, size_t count, ElementType type, ReduceOp) override {
    Record("allreduce", count, type);
    return Status::Ok();
  }
  Status DoBarrier() override {
    Record("barrier", 0, ElementType::kUInt8);
    return Status::Ok();
  }

 private:
  void Record(const char* call, size_t count, ElementType type) {
    calls.emplace_back(call);
    last_count = count;
    last_type = type;
  }

  int rank_;
  int size_;
  Device device_;
  std::string name_ = "pipeline";
};

TEST(CommunicatorValidation, PeersAndTagsMustBeInRange) {
  FakeCommunicator comm(1, 4);
  int value = 0;
  Status bad_peer = comm.Send(&value, sizeof(value), 4, 0);
  EXPECT_EQ(bad_peer.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad_peer.message(), "send: rank 4 is not in 'pipeline' (ranks 0..3)");
  EXPECT_EQ(comm.Recv(&value, sizeof(value), -1, 0).code(), StatusCode::kInvalidArgument);
  Status bad_tag = comm.Recv(&value, sizeof(value), 0, 40000);
  EXPECT_EQ(bad_tag.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad_tag.message(), "recv: tag 40000 is outside 0..32767");
  EXPECT_EQ(comm.SendBytes({1, 2}, 0, -3).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(comm.RecvBytes(9, 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(comm.Broadcast(&value, sizeof(value), 5).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(comm.Send(nullptr, 4, 0, 0).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(comm.calls.empty());
  // Empty messages need no buffer.
  EXPECT_TRUE(comm.Send(nullptr, 0, 0, 0).ok());
  EXPECT_EQ(comm.calls, (std::vector<std::string>{"isend", "wait"}));
}

TEST(CommunicatorValidation, WaitingOnNothingIsOk) {
  FakeCommunicator comm(0, 2);
  Request none;
  EXPECT_TRUE(comm.Wait(none).ok());
  StatusOr<bool> done = comm.Test(none);
  ASSERT_TRUE(done.ok());
  EXPECT_TRUE(*done);
  EXPECT_TRUE(comm.calls.empty());
}

TEST(CommunicatorValidation, InPlaceCollectivesUseTheDocumentedOffsets) {
  FakeCommunicator comm(1, 4);
  std::vector<float> buffer(4 * 8);
  // All-gather in place: this rank's input is its own chunk of the output.
  EXPECT_TRUE(comm.AllGather(buffer.data() + 8, buffer.data(), 8, ElementType::kFloat32).ok());
  // Reduce-scatter in place: the output is this rank's chunk of the input.
  EXPECT_TRUE(comm.ReduceScatter(buffer.data(), buffer.data() + 8, 8, ElementType::kFloat32).ok());
  EXPECT_TRUE(comm.AllReduce(buffer.data(), buffer.data(), 32, ElementType::kFloat32).ok());
  EXPECT_EQ(comm.calls, (std::vector<std::string>{"allgather", "reduce_scatter", "allreduce"}));

  comm.calls.clear();
  Status wrong_chunk = comm.AllGather(buffer.data(), buffer.data(), 8, ElementType::kFloat32);
  EXPECT_EQ(wrong_chunk.code(), StatusCode::kInvalidArgument) << wrong_chunk.ToString();
  EXPECT_EQ(comm.ReduceScatter(buffer.data(), buffer.data() + 4, 8, ElementType::kFloat32).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(comm.AllReduce(buffer.data(), buffer.data() + 1, 8, ElementType::kFloat32).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(comm.calls.empty());
}

TEST(CommunicatorValidation, TensorsMustBeOnTheCommunicatorsDeviceWithMatchingSizes) {
  FakeCommunicator comm(0, 2);
  Tensor in = Tensor::Zeros({2, 3}, DType::kF32);
  Tensor out = Tensor::Zeros({4, 3}, DType::kF32);
  EXPECT_TRUE(comm.AllGather(in, out).ok());
  EXPECT_EQ(comm.last_count, in.nbytes());  // gathered as bytes: any dtype works
  EXPECT_TRUE(comm.ReduceScatter(out, in).ok());
  EXPECT_EQ(comm.last_count, 6u);
  EXPECT_EQ(comm.last_type, ElementType::kFloat32);
  EXPECT_TRUE(comm.AllReduce(in).ok());

  Status shapes = comm.AllGather(in, in);
  EXPECT_EQ(shapes.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(shapes.message().find("must hold 2 times"), std::string::npos) << shapes.message();
  Tensor ints = Tensor::Zeros({4, 3}, DType::kI32);
  EXPECT_EQ(comm.ReduceScatter(ints, in).code(), StatusCode::kInvalidArgument);
  Tensor packed = Tensor::Zeros({8}, DType::kI4);
  EXPECT_EQ(comm.AllReduce(packed).code(), StatusCode::kUnimplemented);

  FakeCommunicator device_comm(0, 2, Device::kCuda);
  Status wrong_device = device_comm.Send(in, 1, 0);
  EXPECT_EQ(wrong_device.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(wrong_device.message().find("not in cuda memory"), std::string::npos) << wrong_device.message();
  EXPECT_TRUE(device_comm.calls.empty());
}

}  // namespace
}  // namespace baton
