// A graph step's host I/O (CudaBackend::NextStepInputs, FetchStepInputs,
// StepGreedyTokens, StartStepTokens; step_host_io.h): a step reads the host
// inputs filled for it and its ids reach the host, whether it runs eagerly
// or replays a graph, with several steps queued before any has run; the
// entries before `first` stay as they were on the device.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <vector>

#include "tests/gpu/gpu_test_util.h"

namespace baton::testing {
namespace {

constexpr int64_t kEntries = 1000;
constexpr int32_t kUntouched = -7;

// A device I32 [kEntries] holding kUntouched.
Tensor UntouchedDevice(CudaBackend& gpu) {
  Tensor device = gpu.Allocate({kEntries}, DType::kI32);
  gpu.CopyToDevice(HostI32(std::vector<int32_t>(kEntries, kUntouched), {kEntries}), device);
  return device;
}

std::vector<int32_t> ToHost(CudaBackend& gpu, const Tensor& device) {
  EXPECT_TRUE(gpu.Synchronize().ok());
  std::vector<int32_t> host(static_cast<size_t>(device.numel()));
  EXPECT_EQ(cudaMemcpy(host.data(), device.raw(), device.nbytes(), cudaMemcpyDeviceToHost), cudaSuccess);
  return host;
}

int32_t Value(int step, int64_t entry) { return step * 100000 + static_cast<int32_t>(entry); }

// Fills the next inputs of `step`: [first, count) of kEntries.
void Fill(CudaBackend& gpu, int step, int64_t count, int64_t first) {
  Tensor host = gpu.NextStepInputs(count, first, /*token_rows=*/4);
  ASSERT_EQ(host.numel(), count);
  for (int64_t j = 0; j < count; ++j) host.data<int32_t>()[j] = j < first ? -1 : Value(step, j);
}

void ExpectFetched(const std::vector<int32_t>& got, int step, int64_t count, int64_t first) {
  for (int64_t j = 0; j < kEntries; ++j) {
    const int32_t want = j >= first && j < count ? Value(step, j) : kUntouched;
    ASSERT_EQ(got[static_cast<size_t>(j)], want) << "step " << step << ", entry " << j;
  }
}

struct FetchShape {
  int64_t count, first;
};
// Odd counts and firsts take the kernel's scalar path; the last grows the
// host slots past the first steps' size.
const std::vector<FetchShape> kShapes = {{400, 0}, {401, 64}, {1000, 3}, {999, 0}, {17, 16}, {1000, 1000}, {1000, 0}};

TEST(StepHostIo, EachEagerFetchReadsItsOwnInputsWithStepsQueued) {
  BATON_GPU_OR_SKIP(gpu, DType::kF32);
  std::vector<Tensor> devices;
  for (size_t s = 0; s < kShapes.size(); ++s) {
    devices.push_back(UntouchedDevice(*gpu));
    Fill(*gpu, static_cast<int>(s), kShapes[s].count, kShapes[s].first);
    gpu->FetchStepInputs(devices.back());  // nothing waited for between steps
  }
  for (size_t s = 0; s < kShapes.size(); ++s) {
    ExpectFetched(ToHost(*gpu, devices[s]), static_cast<int>(s), kShapes[s].count, kShapes[s].first);
  }
}

TEST(StepHostIo, EachGraphReplayReadsItsOwnInputs) {
  BATON_GPU_OR_SKIP(gpu, DType::kF32);
  Tensor device = UntouchedDevice(*gpu);
  // Sized for every replay first: a move would make the graph stale.
  Fill(*gpu, 0, kEntries, 0);
  gpu->FetchStepInputs(device);
  const uint64_t generation = gpu->scratch_generation();
  gpu->BeginGraph();
  gpu->FetchStepInputs(device);
  const int graph = gpu->EndGraph();
  std::vector<Tensor> copies;
  for (int r = 1; r <= 5; ++r) {
    const int64_t first = r % 2 == 0 ? 64 : 0;
    Fill(*gpu, r, kEntries, first);
    gpu->RunGraph(graph);
    copies.push_back(gpu->Allocate({kEntries}, DType::kI32));
    gpu->CopyToDevice(device, copies.back());
  }
  EXPECT_EQ(gpu->scratch_generation(), generation);
  for (int r = 1; r <= 5; ++r) {
    const std::vector<int32_t> got = ToHost(*gpu, copies[static_cast<size_t>(r - 1)]);
    const int64_t first = r % 2 == 0 ? 64 : 0;
    for (int64_t j = 0; j < kEntries; ++j) {
      // Entries before `first` hold what the replay before wrote.
      const int32_t want = j >= first ? Value(r, j) : Value(r - 1, j);
      ASSERT_EQ(got[static_cast<size_t>(j)], want) << "replay " << r << ", entry " << j;
    }
  }
  gpu->DropGraphs();
}

// Logits [rows, vocab] whose row r peaks at PeakOf(step, r) (with a tie
// just above it, which the lowest id wins).
constexpr int64_t kVocab = 1000;
int32_t PeakOf(int step, int64_t row) { return static_cast<int32_t>((row * 37 + step * 101) % (kVocab - 1)); }
Tensor PeakedLogits(int step, int64_t rows) {
  Tensor t = Tensor::Empty({rows, kVocab}, DType::kF32);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t v = 0; v < kVocab; ++v) t.data<float>()[r * kVocab + v] = static_cast<float>(v % 7) * 0.1f;
    t.data<float>()[r * kVocab + PeakOf(step, r)] = 5.0f;
    t.data<float>()[r * kVocab + PeakOf(step, r) + 1] = 5.0f;
  }
  return t;
}

TEST(StepHostIo, GraphStepsLandTheirGreedyIdsOnTheHost) {
  BATON_GPU_OR_SKIP(gpu, DType::kF32);
  constexpr int64_t kRows = 3;
  Tensor entries = gpu->Allocate({kEntries}, DType::kI32);
  Tensor logits = gpu->Allocate({kRows, kVocab}, DType::kF32);
  Tensor ids = gpu->Allocate({kRows}, DType::kI32);
  auto step_ops = [&] {  // a decode graph's host I/O, in its order
    gpu->FetchStepInputs(entries);
    gpu->StepGreedyTokens(logits, ids);
  };
  auto expect_ids = [&](Backend::TokenTicket& ticket, int step) {
    std::vector<int32_t> got;
    gpu->FinishTokens(ticket, got);
    ASSERT_EQ(got.size(), static_cast<size_t>(kRows));
    for (int64_t r = 0; r < kRows; ++r) EXPECT_EQ(got[static_cast<size_t>(r)], PeakOf(step, r)) << step << ", " << r;
  };
  // Step 0 runs eagerly (and sizes everything); steps 1-3 replay a graph,
  // all three queued before the first is read.
  Fill(*gpu, 0, kEntries, 0);
  gpu->CopyToDevice(PeakedLogits(0, kRows), logits);
  step_ops();
  Backend::TokenTicket first;
  gpu->StartStepTokens(ids, first);
  expect_ids(first, 0);
  const uint64_t generation = gpu->scratch_generation();
  gpu->BeginGraph();
  step_ops();
  const int graph = gpu->EndGraph();
  std::vector<Backend::TokenTicket> tickets(3);
  for (int step = 1; step <= 3; ++step) {
    Fill(*gpu, step, kEntries, 0);
    gpu->CopyToDevice(PeakedLogits(step, kRows), logits);
    gpu->RunGraph(graph);
    gpu->StartStepTokens(ids, tickets[static_cast<size_t>(step - 1)]);
  }
  EXPECT_EQ(gpu->scratch_generation(), generation);
  for (int step = 1; step <= 3; ++step) expect_ids(tickets[static_cast<size_t>(step - 1)], step);
  ExpectFetched(ToHost(*gpu, entries), 3, kEntries, 0);
  gpu->DropGraphs();
}

TEST(StepHostIo, GrowingKeepsIdsNotYetReadAndBumpsTheScratchGeneration) {
  BATON_GPU_OR_SKIP(gpu, DType::kF32);
  constexpr int64_t kRows = 3, kBig = int64_t{1} << 20;  // past any size the tests before used
  Tensor entries = gpu->Allocate({kBig}, DType::kI32);
  Tensor logits = gpu->Allocate({kRows, kVocab}, DType::kF32);
  Tensor ids = gpu->Allocate({kRows}, DType::kI32);
  Fill(*gpu, 0, 10, 0);
  gpu->CopyToDevice(PeakedLogits(0, kRows), logits);
  gpu->FetchStepInputs(entries);
  gpu->StepGreedyTokens(logits, ids);
  Backend::TokenTicket ahead;  // a step's ids, still to be read when the next step is given more inputs
  gpu->StartStepTokens(ids, ahead);
  const uint64_t before = gpu->scratch_generation();
  Fill(*gpu, 1, kBig, 0);
  gpu->FetchStepInputs(entries);
  EXPECT_GT(gpu->scratch_generation(), before);
  std::vector<int32_t> got;
  gpu->FinishTokens(ahead, got);
  ASSERT_EQ(got.size(), static_cast<size_t>(kRows));
  for (int64_t r = 0; r < kRows; ++r) EXPECT_EQ(got[static_cast<size_t>(r)], PeakOf(0, r)) << "row " << r;
  const std::vector<int32_t> fetched = ToHost(*gpu, entries);
  for (int64_t j = 0; j < kBig; ++j) ASSERT_EQ(fetched[static_cast<size_t>(j)], Value(1, j)) << j;
}

}  // namespace
}  // namespace baton::testing
