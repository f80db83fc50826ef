#include "tests/test_data.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace baton::testing {

std::string TestDataPath(const std::string& relative) { return std::string(BATON_TEST_DATA) + "/" + relative; }

nlohmann::json LoadTestJson(const std::string& relative) {
  std::ifstream in(TestDataPath(relative));
  if (!in) throw std::runtime_error("cannot open test data " + TestDataPath(relative));
  return nlohmann::json::parse(in);
}

std::string MakeTempDir(const std::string& tag) {
  static std::atomic<int> counter{0};
  auto dir = std::filesystem::temp_directory_path() /
             ("baton-" + tag + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

}  // namespace baton::testing
