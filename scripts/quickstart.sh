#!/usr/bin/env bash
# From a fresh checkout to a fine-tuned model served on the CPU:
#   1. installs the dependencies and builds (Release);
#   2. fine-tunes the bundled llama-mini (random weights) on the bundled
#      license corpus on 2 x 2 ranks (pipeline 2 x ZeRO-3 data-parallel 2):
#      BATON_QUICKSTART_STEPS steps (default 300, ~6-10 min on 2 cores),
#      exported as a Hugging Face folder in build/quickstart-model;
#   3. starts `baton-server` as 2 pipeline ranks (mpirun -np 2) on that
#      model, on free ports;
#   4. streams a greedy generation through the Python SDK (it continues the
#      GPL's preamble) and prints a few metrics;
#   5. shuts the server down with SIGTERM (drain, exit 0).
# An argument is used as the prompt instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release --target baton baton-server baton-client baton_python_stubs -j"$(nproc)" | tail -n 1

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
model=build/quickstart-model
rm -rf "$model"
echo "baton finetune: llama-mini on tests/data/corpus.txt, pp 2 x dp 2 (ZeRO-3), ${BATON_QUICKSTART_STEPS:-300} steps"
OMP_NUM_THREADS=1 mpirun -np 4 -x OMP_NUM_THREADS build/release/launch/baton finetune \
  --model tests/data/llama-mini --data tests/data/corpus.txt --out "$model" --pp 2 --dp 2 --zero 3 \
  --steps "${BATON_QUICKSTART_STEPS:-300}" --lr 3e-3 --warmup 20 --batch-size 8 --seq-len 128 2>&1 |
  awk '/^step/ { n++; if (n % 25 == 0 || /ETA 0s/) print; next } { print }'

log=$(mktemp /tmp/baton-quickstart.XXXXXX)
mpirun -np 2 build/release/launch/baton-server --model "$model" --port 0 --metrics-port 0 --host 127.0.0.1 \
  --threads 1 >"$log.out" 2>"$log" &
server=$!
for _ in $(seq 600); do
  grep -q "listening on" "$log.out" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
read -r port metrics pid < <(sed -nE 's/.*listening on [^:]+:([0-9]+), metrics on ([0-9]+), pid ([0-9]+).*/\1 \2 \3/p' "$log.out")
echo "baton-server: 2 ranks, gRPC on 127.0.0.1:$port, metrics on :$metrics (log: $log)"

prompt=${1:-$(head -n 6 tests/data/corpus.txt)}
status=0
PYTHONPATH=build/release/python:sdk/python /usr/bin/python3 sdk/python/examples/quickstart.py \
  "127.0.0.1:$port" "$metrics" "$prompt" 48 || status=$?
kill -TERM "$pid"
wait "$server" && echo "baton-server: drained and exited 0" || { echo "baton-server exited $?"; status=1; }
exit $status
