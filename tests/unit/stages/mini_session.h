// The bundled fixture models on the CPU, as the stages tests open them, and
// the fixtures' prompts as greedy requests. Header-only: several test files
// of test_stages share it.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "stages/model_session.h"
#include "tests/test_data.h"

namespace baton::testing {

// A CPU session on tests/data/`name` with a KV cache of `kv_bytes`; null
// (and a test failure) if it does not open.
inline std::unique_ptr<ModelSession> OpenMini(const std::string& name, size_t kv_bytes) {
  SessionOptions options;
  options.model_dir = TestDataPath(name);
  options.kv_cache_bytes = kv_bytes;
  options.threads = 2;
  auto s = ModelSession::Open(options);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

// Every prompt of a fixture's reference.json, greedy, `max_new` tokens,
// EOS ignored.
inline std::vector<GenerationRequest> FixturePrompts(const nlohmann::json& ref, int max_new) {
  std::vector<GenerationRequest> requests;
  for (const auto& p : ref["prompts"]) {
    GenerationRequest r;
    r.prompt_ids = p["ids"].get<std::vector<int32_t>>();
    r.max_new_tokens = max_new;
    r.ignore_eos = true;
    r.sampling.temperature = 0.0f;
    requests.push_back(r);
  }
  return requests;
}

}  // namespace baton::testing
