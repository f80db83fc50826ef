#!/usr/bin/env bash
# From a fresh checkout to a served generation, on the CPU:
#   1. installs the dependencies and builds (Release);
#   2. starts `baton-server` as 2 pipeline ranks (mpirun -np 2) on the
#      bundled llama-mini model, on free ports;
#   3. streams a generation through the Python SDK and prints a few metrics;
#   4. shuts the server down with SIGTERM (drain, exit 0).
# An argument is used as the prompt.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release --target baton baton-server baton-client baton_python_stubs -j"$(nproc)" | tail -n 1

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
log=$(mktemp /tmp/baton-quickstart.XXXXXX)
mpirun -np 2 build/release/launch/baton-server --port 0 --metrics-port 0 --host 127.0.0.1 --threads 1 \
  >"$log.out" 2>"$log" &
server=$!
for _ in $(seq 600); do
  grep -q "listening on" "$log.out" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
read -r port metrics pid < <(sed -nE 's/.*listening on [^:]+:([0-9]+), metrics on ([0-9]+), pid ([0-9]+).*/\1 \2 \3/p' "$log.out")
echo "baton-server: 2 ranks, gRPC on 127.0.0.1:$port, metrics on :$metrics (log: $log)"

status=0
PYTHONPATH=build/release/python:sdk/python /usr/bin/python3 sdk/python/examples/quickstart.py \
  "127.0.0.1:$port" "$metrics" "$@" || status=$?
kill -TERM "$pid"
wait "$server" && echo "baton-server: drained and exited 0" || { echo "baton-server exited $?"; status=1; }
exit $status
