#!/usr/bin/env bash
# One device call (kind nvidia-h100-x1) for issue 5's serving benchmark:
# 64 concurrent requests of 128 random prompt ids + 128 new tokens (greedy,
# ignore_eos) through `baton-server --device cuda --dtype bf16` on the
# Llama-3-8B shape, driven by `baton-client generate --prompts-file
# --concurrency 64`, against HF transformers `generate` at batch 32 on the
# same checkpoint and card (bench/gpu/hf_baseline.py --batch 32, and 64 for
# the same batch as the server; median of 5 after a warm-up); plus
# batch-1 TTFT / inter-token latency from the server. One untimed warm-up
# load, then 3 timed loads, each with fresh prompts (no prefix-cache hits).
# Binaries and their libraries come from build-gpucarry/serve.tar.xz
# (tests/gpu/make_carry_serve.sh; the GPU image has no gRPC). Writes to
# $OUT: info.txt, run.log, raw.tgz (client output, server log, HF JSON) and
# serving.json (bench/gpu/serving_summary.py). From the repo root:
#   bench/gpu/run_serving_h100.sh [--skip-hf]
# A dry run on a CPU machine (checks the script and carried binaries):
#   PY=python3 MODEL=tests/data/llama-mini DEVICE=cpu DTYPE=f32 VOCAB=256 \
#     bench/gpu/run_serving_h100.sh --skip-hf
set -uo pipefail
OUT=${OUT:-/tmp/serving_out}
RAW=$OUT/raw
mkdir -p "$RAW"
SKIP_HF=0
[ "${1:-}" = --skip-hf ] && SKIP_HF=1
PY=${PY:-/opt/torch/.venv/bin/python3}
LOG=$OUT/run.log
step() { echo "== $(date +%T) $*" | tee -a "$LOG"; }
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  nproc
  date -u
} >"$OUT/info.txt" 2>&1
cat "$OUT/info.txt"

C=$PWD/build-gpucarry/serve
mkdir -p "$C"
tar xJf build-gpucarry/serve.tar.xz -C "$C" || { echo "no build-gpucarry/serve.tar.xz"; exit 1; }
# Only Baton's processes see the carried libraries; torch keeps its own.
NCCL_LIB=""
if ! ldconfig -p | grep -q 'libnccl.so.2 '; then  # else the pip wheel's copy
  NCCL_LIB=$($PY -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null)
fi
BLIB=$C/lib${NCCL_LIB:+:$NCCL_LIB}:/usr/local/cuda/lib64:/usr/local/cuda/lib
BT=(env "LD_LIBRARY_PATH=$BLIB")
if "${BT[@]}" ldd "$C/bin/baton-server" "$C/bin/baton-client" "$C/bin/baton" | grep "not found" | tee -a "$LOG" | grep -q .; then
  echo "missing libraries, stopping"
  exit 1
fi

M8=${MODEL:-/tmp/m8b}
DEVICE=${DEVICE:-cuda} DTYPE=${DTYPE:-bf16} VOCAB=${VOCAB:-128256}
HF_BATCHES=${HF_BATCHES:-32 64}  # 32: the issue's baseline; 64: the same batch as the server's load
step "make-model llama-3-8b"
start=$SECONDS
[ -f $M8/model.safetensors ] || timeout 300 "${BT[@]}" "$C/bin/baton" make-model --shape llama-3-8b --dtype bf16 \
  --tokenizer '' --out $M8 >>"$LOG" 2>&1
echo "make-model done after $((SECONDS - start)) s" | tee -a "$LOG"

# Prompts: 64 x 128 random ids per load (seed per run), 1 x 128 for batch 1.
$PY - "$RAW" "$VOCAB" <<'PYEOF'
import json, random, sys
d, vocab = sys.argv[1], int(sys.argv[2])
def write(name, n, seed):
    rng = random.Random(seed)
    with open(f"{d}/{name}.prompts", "w") as f:
        for _ in range(n):
            f.write(json.dumps({"prompt_ids": [rng.randrange(vocab // 8, vocab - vocab // 8) for _ in range(128)]}) + "\n")
for i, name in enumerate(["c64_warmup", "c64_1", "c64_2", "c64_3"]):
    write(name, 64, 1234 + i)
for i in range(1, 4):
    write(f"b1_{i}", 1, 5000 + i)
PYEOF

step "baton-server start"
"${BT[@]}" "$C/bin/baton-server" --model $M8 --device $DEVICE --dtype $DTYPE --port 0 --metrics-port -1 --host 127.0.0.1 \
  --max-batch-tokens 8192 >"$RAW/server.out" 2>"$RAW/server.log" &
SPID=$!
start=$SECONDS
PORT=""
while [ $((SECONDS - start)) -lt 300 ] && kill -0 $SPID 2>/dev/null; do
  PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$RAW/server.out")
  [ -n "$PORT" ] && break
  sleep 0.5
done
echo "server pid $SPID port '${PORT}' after $((SECONDS - start)) s" | tee -a "$LOG"
status=0
if [ -z "$PORT" ]; then
  echo "server did not come up" | tee -a "$LOG"
  tail -20 "$RAW/server.log"
  status=1
else
  client() {  # NAME CONCURRENCY
    local t0=$EPOCHREALTIME
    timeout 240 "${BT[@]}" "$C/bin/baton-client" generate --server 127.0.0.1:$PORT --prompts-file "$RAW/$1.prompts" \
      --concurrency "$2" --max-new-tokens 128 --temperature 0 --ignore-eos --json >"$RAW/$1.jsonl" 2>"$RAW/$1.err" ||
      status=1
    echo "$1: $(tail -1 "$RAW/$1.err") (process wall $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.3f", b - a}') s)" | tee -a "$LOG"
  }
  step "64 concurrent: warm-up + 3 timed"
  for r in c64_warmup c64_1 c64_2 c64_3; do client $r 64; done
  step "batch 1: 3 requests"
  for r in b1_1 b1_2 b1_3; do client $r 1; done
  nvidia-smi --query-gpu=memory.used --format=csv,noheader | tee -a "$LOG"
fi
step "SIGTERM server"
kill -TERM $SPID 2>/dev/null
for _ in $(seq 120); do kill -0 $SPID 2>/dev/null || break; sleep 0.5; done
if kill -0 $SPID 2>/dev/null; then
  echo "server still running after 60 s, SIGKILL" | tee -a "$LOG"
  kill -KILL $SPID
  status=1
fi
wait $SPID
echo "server exit $?" | tee -a "$LOG"
tail -5 "$RAW/server.log" >>"$LOG"

if [ $SKIP_HF = 0 ]; then
  for b in $HF_BATCHES; do
    step "hf_baseline --batch $b"
    PYTHONUNBUFFERED=1 timeout 300 $PY bench/gpu/hf_baseline.py --model llama-3-8b=$M8 --batch "$b" --repeats 5 \
      --sdpa '' >"$RAW/hf_b$b.json" 2>>"$LOG" || status=1
  done
fi

step "summary"
$PY bench/gpu/serving_summary.py "$RAW" >"$OUT/serving.json" || status=1
grep -E '"(server_|hf_b)' "$OUT/serving.json"
# One archive: the device tool brings back only so many files.
tar czf "$OUT/raw.tgz" -C "$OUT" raw && rm -rf "$RAW"
echo "run_serving status: $status"
exit $status
