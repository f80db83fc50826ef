#!/usr/bin/env bash
# Builds Baton twice (Release with the CUDA code when nvcc exists, and an
# AddressSanitizer + UBSan build of the CPU code) and runs every CPU test in
# both: unit, multi-rank and end-to-end. GPU tests skip without a GPU.
# The last line is the combined count: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh || exit 1

jobs=$(nproc)
configure_and_build() {  # dir, extra cmake args...
  local dir=$1; shift
  cmake -S . -B "$dir" -G Ninja -DBATON_WERROR=ON "$@" >"$dir.configure.log" 2>&1 \
    || { cat "$dir.configure.log"; return 1; }
  cmake --build "$dir" -j"$jobs" 2>&1 | tail -n 5
  return "${PIPESTATUS[0]}"
}

mkdir -p build
configure_and_build build/release -DCMAKE_BUILD_TYPE=Release || { echo "0 passed, 1 failed"; exit 1; }
# -O1 keeps the sanitized tests fast enough; CUDA is covered by the Release build.
configure_and_build build/asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS=-O1 -DBATON_SANITIZE=ON \
  -DBATON_CUDA=OFF || { echo "0 passed, 1 failed"; exit 1; }

passed=0; failed=0
run_ctest() {  # dir, label
  echo "== ctest ($2)"
  local log="$1/ctest.log"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir "$1" --output-on-failure -j"$jobs" --timeout 900 >"$log" 2>&1
  grep -E "tests passed|Failed|\*\*\*" "$log" | tail -n 30
  local total fail
  total=$(sed -nE 's/.*tests failed out of ([0-9]+).*/\1/p' "$log" | tail -n 1)
  fail=$(sed -nE 's/.* ([0-9]+) tests failed out of.*/\1/p' "$log" | tail -n 1)
  if [ -z "$total" ]; then tail -n 40 "$log"; failed=$((failed + 1)); return; fi
  passed=$((passed + total - fail)); failed=$((failed + fail))
}
run_ctest build/release release
run_ctest build/asan asan
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
