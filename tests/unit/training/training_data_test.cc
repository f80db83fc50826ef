// Fine-tuning data: each file format against token ids that Hugging Face
// `tokenizers` produced (tests/data/tokenizer_cases_mini.json, for the
// tokenizer that gpt2-mini and llama-mini share) or hand-written ids;
// packing, the sampler's epochs and batches, and every malformed input.
#include "runtime/training/training_data.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "tests/test_data.h"

namespace baton {
namespace {

using ::baton::testing::LoadTestJson;
using ::baton::testing::MakeTempDir;
using ::baton::testing::TestDataPath;
using Ids = std::vector<int32_t>;

constexpr int32_t kEos = 0;  // <|endoftext|>, the models' eos_token_id

std::unique_ptr<Tokenizer> MiniTokenizer() {
  auto t = Tokenizer::FromFile(TestDataPath("llama-mini/tokenizer.json"));
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return std::move(t).value();
}

// The ids HF gave for case `i` of tokenizer_cases_mini.json, checking its text.
Ids HfIds(size_t i, const std::string& text) {
  const nlohmann::json cases = LoadTestJson("tokenizer_cases_mini.json");
  EXPECT_EQ(cases.at(i).at("text").get<std::string>(), text);
  return cases.at(i).at("ids").get<Ids>();
}

Ids Concat(std::initializer_list<Ids> parts) {
  Ids out;
  for (const Ids& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

std::string WriteFile(const std::string& name, const std::string& content) {
  const std::string path = MakeTempDir("training-data") + "/" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

// The error LoadTrainingData gives for `content` saved as `name`; checks
// that it is InvalidArgument and names "<path>:<line>" (line 0: just the path).
std::string LoadError(const std::string& name, const std::string& content, int line,
                      const Tokenizer* tokenizer = nullptr) {
  const std::string path = WriteFile(name, content);
  auto r = LoadTrainingData(path, tokenizer, kEos);
  EXPECT_FALSE(r.ok()) << content;
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  const std::string where = line > 0 ? path + ":" + std::to_string(line) + ":" : path + ":";
  EXPECT_EQ(r.status().message().rfind(where, 0), 0u) << r.status().message() << " does not start with " << where;
  return r.status().message();
}

TEST(TrainingDataLoad, TextLinesAreConcatenatedWithLossEverywhere) {
  auto tok = MiniTokenizer();
  auto r = LoadTrainingData(TestDataPath("finetune/text.jsonl"), tok.get(), kEos);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Ids want = Concat(
      {HfIds(0, "Hello, my dog is cute"), HfIds(3, "def fibonacci(n):\n    if n < 2:\n        return n\n    return")});
  EXPECT_EQ(r->ids, want);
  EXPECT_EQ(r->labels, want);  // no EOS between documents, as run_clm
}

TEST(TrainingDataLoad, PlainTextIsOneDocument) {
  auto tok = MiniTokenizer();
  auto r = LoadTrainingData(TestDataPath("finetune/plain.txt"), tok.get(), kEos);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Ids want = HfIds(3, "def fibonacci(n):\n    if n < 2:\n        return n\n    return");
  EXPECT_EQ(r->ids, want);
  EXPECT_EQ(r->labels, want);
}

TEST(TrainingDataLoad, TxtStartingWithABraceIsStillPlainText) {
  auto tok = MiniTokenizer();
  const std::string text = "{\"text\": 1}";
  auto r = LoadTrainingData(WriteFile("brace.txt", text), tok.get(), kEos);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->ids, tok->Encode(text));
}

TEST(TrainingDataLoad, PromptCompletionTakesLossOnlyOnCompletionAndEos) {
  auto tok = MiniTokenizer();
  auto r = LoadTrainingData(TestDataPath("finetune/prompt_completion.jsonl"), tok.get(), kEos);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Ids prompt1 = HfIds(0, "Hello, my dog is cute");
  const Ids completion1 = HfIds(2, "The quick brown fox jumps over the lazy dog. The quick brown fox");
  const Ids prompt2 = HfIds(4, "a");
  // "The end" followed by the special token: HF ids of "<|endoftext|>The end" moved around.
  Ids the_end = HfIds(10, "<|endoftext|>The end");
  ASSERT_EQ(the_end.front(), kEos);
  the_end.erase(the_end.begin());
  const Ids completion2 = Concat({the_end, {kEos}});  // ends with EOS already: not doubled

  const Ids ignore1(prompt1.size(), kIgnoreIndex), ignore2(prompt2.size(), kIgnoreIndex);
  EXPECT_EQ(r->ids, Concat({prompt1, completion1, {kEos}, prompt2, completion2}));
  EXPECT_EQ(r->labels, Concat({ignore1, completion1, {kEos}, ignore2, completion2}));

  // The mask covers exactly the prompt tokens: the masked ids are the prompts.
  Ids masked;
  for (size_t i = 0; i < r->ids.size(); ++i) {
    if (r->labels[i] == kIgnoreIndex) masked.push_back(r->ids[i]);
  }
  EXPECT_EQ(masked, Concat({prompt1, prompt2}));
}

TEST(TrainingDataLoad, PromptCompletionWithoutEosAppendsNothing) {
  auto tok = MiniTokenizer();
  auto r = LoadTrainingData(WriteFile("p.jsonl", R"({"prompt": "Hello, my dog is cute", "completion": "a"})"),
                            tok.get(), std::nullopt);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Ids prompt = HfIds(0, "Hello, my dog is cute");
  EXPECT_EQ(r->ids, Concat({prompt, HfIds(4, "a")}));
  EXPECT_EQ(r->labels, Concat({Ids(prompt.size(), kIgnoreIndex), HfIds(4, "a")}));
}

TEST(TrainingDataLoad, InputIdsWithAndWithoutLabelsNeedNoTokenizer) {
  auto r = LoadTrainingData(TestDataPath("finetune/input_ids.jsonl"), nullptr, kEos);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->ids, (Ids{5, 6, 7, 8, 9, 10, 11}));
  EXPECT_EQ(r->labels, (Ids{5, 6, 7, -100, 9, -100, 11}));
}

TEST(TrainingDataLoad, FormatsMixAcrossLines) {
  auto tok = MiniTokenizer();
  const std::string content =
      "{\"input_ids\": [3, 4]}\n{\"text\": \"a\"}\n{\"prompt\": \"a\", \"completion\": \"a\"}\n";
  auto r = LoadTrainingData(WriteFile("mixed.jsonl", content), tok.get(), kEos);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Ids a = HfIds(4, "a");
  EXPECT_EQ(r->ids, Concat({{3, 4}, a, a, a, {kEos}}));
  EXPECT_EQ(r->labels, Concat({{3, 4}, a, Ids(a.size(), kIgnoreIndex), a, {kEos}}));
}

TEST(TrainingDataLoad, MissingFileIsNotFound) {
  auto r = LoadTrainingData("/nonexistent/data.jsonl", nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("/nonexistent/data.jsonl"), std::string::npos);
}

TEST(TrainingDataLoad, BadInputsNameFileLineAndField) {
  auto tok = MiniTokenizer();
  std::string m = LoadError("bad.jsonl", "{\"input_ids\": [1]}\n\n{\"text\": \"a\"\n", 3, tok.get());
  EXPECT_NE(m.find("not valid JSON"), std::string::npos) << m;
  m = LoadError("arr.jsonl", "[1, 2]\n", 1, tok.get());
  EXPECT_NE(m.find("JSON object"), std::string::npos) << m;
  m = LoadError("nokind.jsonl", "{\"input_ids\": [1]}\n{\"content\": \"a\"}\n", 2, tok.get());
  EXPECT_NE(m.find("'text'"), std::string::npos) << m;
  m = LoadError("nocompl.jsonl", "{\"prompt\": \"a\"}\n", 1, tok.get());
  EXPECT_NE(m.find("field 'completion' is missing"), std::string::npos) << m;
  m = LoadError("noprompt.jsonl", "{\"completion\": \"a\"}\n", 1, tok.get());
  EXPECT_NE(m.find("field 'prompt' is missing"), std::string::npos) << m;
  m = LoadError("numprompt.jsonl", "{\"prompt\": 5, \"completion\": \"a\"}\n", 1, tok.get());
  EXPECT_NE(m.find("field 'prompt' is not a string"), std::string::npos) << m;
  m = LoadError("textnum.jsonl", "{\"text\": [1]}\n", 1, tok.get());
  EXPECT_NE(m.find("field 'text' is not a string"), std::string::npos) << m;
  m = LoadError("both.jsonl", "{\"text\": \"a\", \"input_ids\": [1]}\n", 1, tok.get());
  EXPECT_NE(m.find("more than one"), std::string::npos) << m;
  m = LoadError("float.jsonl", "{\"input_ids\": [1, 2.5]}\n", 1);
  EXPECT_NE(m.find("field 'input_ids'[1] is not an integer"), std::string::npos) << m;
  m = LoadError("string.jsonl", "{\"input_ids\": [1]}\n{\"input_ids\": [\"7\"]}\n", 2);
  EXPECT_NE(m.find("field 'input_ids'[0] is not an integer"), std::string::npos) << m;
  m = LoadError("notarray.jsonl", "{\"input_ids\": 7}\n", 1);
  EXPECT_NE(m.find("field 'input_ids' is not an array"), std::string::npos) << m;
  m = LoadError("negative.jsonl", "{\"input_ids\": [-100]}\n", 1);
  EXPECT_NE(m.find("field 'input_ids'[0]"), std::string::npos) << m;
  m = LoadError("huge.jsonl", "{\"input_ids\": [4294967296]}\n", 1);
  EXPECT_NE(m.find("field 'input_ids'[0]"), std::string::npos) << m;
  m = LoadError("mismatch.jsonl", "{\"input_ids\": [1]}\n{\"input_ids\": [1, 2], \"labels\": [1]}\n", 2);
  EXPECT_NE(m.find("field 'labels' has 1 entries but 'input_ids' has 2"), std::string::npos) << m;
  m = LoadError("badlabel.jsonl", "{\"input_ids\": [1, 2], \"labels\": [1, -5]}\n", 1);
  EXPECT_NE(m.find("field 'labels'[1]"), std::string::npos) << m;
  m = LoadError("notok.jsonl", "{\"input_ids\": [1]}\n{\"text\": \"a\"}\n", 2, /*tokenizer=*/nullptr);
  EXPECT_NE(m.find("field 'text'"), std::string::npos) << m;
  EXPECT_NE(m.find("tokenizer"), std::string::npos) << m;
  m = LoadError("notok_pair.jsonl", "{\"prompt\": \"a\", \"completion\": \"b\"}\n", 1, /*tokenizer=*/nullptr);
  EXPECT_NE(m.find("tokenizer"), std::string::npos) << m;
}

TEST(TrainingDataLoad, EmptyOrTokenlessFilesNameTheFile) {
  auto tok = MiniTokenizer();
  std::string m = LoadError("empty.jsonl", "", 0, tok.get());
  EXPECT_NE(m.find("empty"), std::string::npos) << m;
  m = LoadError("blank.txt", " \n\n\t\n", 0, tok.get());
  EXPECT_NE(m.find("empty"), std::string::npos) << m;
  m = LoadError("noids.jsonl", "{\"input_ids\": []}\n{\"text\": \"\"}\n", 0, tok.get());
  EXPECT_NE(m.find("no tokens"), std::string::npos) << m;
  m = LoadError("plain.txt", "some text", 0, /*tokenizer=*/nullptr);
  EXPECT_NE(m.find("tokenizer"), std::string::npos) << m;
}

TokenStream Stream(int n) {
  TokenStream s;
  for (int i = 0; i < n; ++i) {
    s.ids.push_back(1000 + i);
    s.labels.push_back(i % 3 == 0 ? kIgnoreIndex : 1000 + i);
  }
  return s;
}

TEST(TrainingDataPack, ConsecutiveSlicesAndTheTailIsDropped) {
  const TokenStream s = Stream(11);
  const std::vector<TrainSequence> seqs = PackSequences(s, 4);
  ASSERT_EQ(seqs.size(), 2u);  // tokens 8..10 do not fill a third
  EXPECT_EQ(seqs[0].ids, (Ids{1000, 1001, 1002, 1003}));
  EXPECT_EQ(seqs[0].labels, (Ids{kIgnoreIndex, 1001, 1002, kIgnoreIndex}));
  EXPECT_EQ(seqs[1].ids, (Ids{1004, 1005, 1006, 1007}));
  EXPECT_EQ(seqs[1].labels, (Ids{1004, 1005, kIgnoreIndex, 1007}));
  EXPECT_EQ(PackSequences(s, 11).size(), 1u);
  EXPECT_TRUE(PackSequences(s, 12).empty());
  EXPECT_TRUE(PackSequences(s, 0).empty());
}

// Sequence i holds ids {100 + i, 200 + i} and labels {-100, 200 + i}.
std::vector<TrainSequence> Numbered(int n) {
  std::vector<TrainSequence> out;
  for (int i = 0; i < n; ++i) out.push_back({{100 + i, 200 + i}, {kIgnoreIndex, 200 + i}});
  return out;
}

// Which Numbered sequences a batch holds, in order; checks the labels went along.
std::vector<int> Which(const TrainBatch& b) {
  EXPECT_EQ(b.seq_len, 2);
  EXPECT_EQ(b.input_ids.size(), static_cast<size_t>(b.num_seqs) * 2);
  EXPECT_EQ(b.labels.size(), b.input_ids.size());
  std::vector<int> out;
  for (int s = 0; s < b.num_seqs; ++s) {
    const int i = b.input_ids[2 * s] - 100;
    EXPECT_EQ(b.input_ids[2 * s + 1], 200 + i);
    EXPECT_EQ(b.labels[2 * s], kIgnoreIndex);
    EXPECT_EQ(b.labels[2 * s + 1], 200 + i);
    out.push_back(i);
  }
  return out;
}

TEST(TrainingDataSampler, WithoutShuffleFileOrderWrapsAcrossEpochs) {
  const SequenceSampler sampler(Numbered(5), /*shuffle=*/false, 7);
  EXPECT_EQ(sampler.size(), 5u);
  EXPECT_EQ(Which(sampler.Batch(0, 3)), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(Which(sampler.Batch(1, 3)), (std::vector<int>{3, 4, 0}));
  EXPECT_EQ(Which(sampler.Batch(2, 3)), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(Which(sampler.Batch(3, 7)), (std::vector<int>{1, 2, 3, 4, 0, 1, 2}));  // stream 21..27
}

TEST(TrainingDataSampler, EveryEpochIsAPermutationAndEpochsDiffer) {
  const int n = 9;
  const SequenceSampler sampler(Numbered(n), /*shuffle=*/true, 1234);
  std::set<std::vector<int>> orders;
  for (int epoch = 0; epoch < 4; ++epoch) {
    std::vector<int> order = Which(sampler.Batch(epoch, n));
    std::vector<int> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int> all(n);
    for (int i = 0; i < n; ++i) all[i] = i;
    EXPECT_EQ(sorted, all) << "epoch " << epoch;
    orders.insert(order);
  }
  EXPECT_EQ(orders.size(), 4u);                              // reshuffled every epoch
  EXPECT_EQ(orders.count({0, 1, 2, 3, 4, 5, 6, 7, 8}), 0u);  // and actually shuffled
}

TEST(TrainingDataSampler, DeterministicPerSeedAndDifferentAcrossSeeds) {
  const SequenceSampler a(Numbered(16), true, 42), b(Numbered(16), true, 42), c(Numbered(16), true, 43);
  bool any_differs = false;
  for (int step = 0; step < 6; ++step) {
    EXPECT_EQ(Which(a.Batch(step, 5)), Which(b.Batch(step, 5)));
    any_differs |= Which(a.Batch(step, 5)) != Which(c.Batch(step, 5));
  }
  EXPECT_TRUE(any_differs);
}

TEST(TrainingDataSampler, BatchIsAPureFunctionOfStepOverOneStream) {
  const SequenceSampler sampler(Numbered(5), /*shuffle=*/true, 99);
  const SequenceSampler fresh(Numbered(5), /*shuffle=*/true, 99);
  for (int step = 0; step < 5; ++step) (void)sampler.Batch(step, 3);
  EXPECT_EQ(Which(sampler.Batch(4, 3)), Which(fresh.Batch(4, 3)));  // no hidden position: resume needs only the step
  EXPECT_EQ(Which(sampler.Batch(4, 3)), Which(sampler.Batch(4, 3)));

  // Batches of 3 cut the same stream that epochs (batches of 5) make.
  std::vector<int> stream;
  for (int epoch = 0; epoch < 3; ++epoch) {
    const std::vector<int> e = Which(sampler.Batch(epoch, 5));
    stream.insert(stream.end(), e.begin(), e.end());
  }
  for (int step = 0; step < 5; ++step) {
    const std::vector<int> want(stream.begin() + 3 * step, stream.begin() + 3 * step + 3);
    EXPECT_EQ(Which(sampler.Batch(step, 3)), want) << "step " << step;
  }
}

TEST(TrainingDataSampler, EmptySamplerGivesEmptyBatches) {
  const SequenceSampler sampler({}, true, 1);
  EXPECT_EQ(sampler.size(), 0u);
  EXPECT_EQ(sampler.Batch(3, 4).num_seqs, 0);
  EXPECT_EQ(SequenceSampler(Numbered(3), false, 1).Batch(0, 0).num_seqs, 0);
}

TEST(TrainingDataSlice, RanksAndMicroBatchesTakeContiguousSequences) {
  const TrainBatch b = SequenceSampler(Numbered(6), /*shuffle=*/false, 0).Batch(0, 6);
  EXPECT_EQ(Which(SliceBatch(b, 0, 2)), (std::vector<int>{0, 1}));
  EXPECT_EQ(Which(SliceBatch(b, 2, 3)), (std::vector<int>{2, 3, 4}));
  // Cutting into dp shares and putting them back together gives the batch.
  TrainBatch joined;
  for (int rank = 0; rank < 3; ++rank) {
    const TrainBatch share = SliceBatch(b, rank * 2, 2);
    joined.input_ids.insert(joined.input_ids.end(), share.input_ids.begin(), share.input_ids.end());
    joined.labels.insert(joined.labels.end(), share.labels.begin(), share.labels.end());
  }
  EXPECT_EQ(joined.input_ids, b.input_ids);
  EXPECT_EQ(joined.labels, b.labels);
  // Out-of-range requests are clamped, never read past the batch.
  EXPECT_EQ(Which(SliceBatch(b, 4, 5)), (std::vector<int>{4, 5}));
  EXPECT_EQ(Which(SliceBatch(b, -1, 2)), (std::vector<int>{0, 1}));
  EXPECT_EQ(SliceBatch(b, 7, 2).num_seqs, 0);
  EXPECT_EQ(SliceBatch(b, 1, -3).num_seqs, 0);
}

}  // namespace
}  // namespace baton
