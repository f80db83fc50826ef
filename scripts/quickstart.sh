#!/usr/bin/env bash
# From a fresh checkout to generated text: installs the dependencies, builds
# the `baton` CLI and generates with the bundled llama-mini model on the CPU.
# Extra arguments go to `baton generate` (e.g. --prompt "..." --json).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release --target baton -j"$(nproc)"
if [ $# -eq 0 ]; then
  set -- --prompt "The quick brown fox" --max-new-tokens 32
fi
exec build/release/launch/baton generate "$@"
