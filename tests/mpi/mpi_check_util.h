// A minimal check harness for programs run under mpirun: each rank records
// its own failures (printed with the rank and line) and keeps going, so
// every rank still makes the same collective calls in the same order.
#pragma once

#include <cstdio>
#include <string>

#include "runtime/core/status.h"

namespace baton::mpi_testing {

class Checker {
 public:
  explicit Checker(int rank) : rank_(rank) {}

  bool Ok(const Status& status, const char* what, int line) {
    if (status.ok()) return true;
    return Fail(what, line, status.ToString());
  }
  bool True(bool condition, const char* what, int line, const std::string& detail = "") {
    if (condition) return true;
    return Fail(what, line, detail);
  }
  bool Fail(const char* what, int line, const std::string& detail) {
    ++failures_;
    std::fprintf(stderr, "rank %d: FAILED at line %d: %s%s%s\n", rank_, line, what, detail.empty() ? "" : ": ",
                 detail.c_str());
    std::fflush(stderr);
    return false;
  }
  int failures() const { return failures_; }

 private:
  int rank_;
  int failures_ = 0;
};

}  // namespace baton::mpi_testing

#define CHECK_OK(expr) check.Ok((expr), #expr, __LINE__)
#define CHECK_TRUE(cond, ...) check.True((cond), #cond, __LINE__ __VA_OPT__(, ) __VA_ARGS__)
