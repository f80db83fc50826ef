// Paths to the test data (fixtures copied from ../shared/fixtures) and small
// helpers shared by all test executables.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace baton::testing {

// Absolute path of a file under tests/data, e.g. "gpt2-mini/config.json".
std::string TestDataPath(const std::string& relative);
// Parses a JSON file under tests/data; fails the test (throws) if unreadable.
nlohmann::json LoadTestJson(const std::string& relative);
// A fresh empty directory under the system temp dir, unique per call.
std::string MakeTempDir(const std::string& tag);

}  // namespace baton::testing
