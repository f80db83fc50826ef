#!/usr/bin/env bash
# Issue 7's serving runs, in one device call on four GPUs (kind
# nvidia-h100-x4): the CUDA pipeline with P = 4 stages against P = 2 and
# one GPU, on the same machine.
#  1. parity: the fixtures (f32 and bf16) greedy through `baton generate`
#     on 1, 2 and 4 GPUs; f32 must also equal the fixtures' reference ids;
#  2. Llama-3-8B shape (bf16): batch-1 greedy ids and decode rate on 1, 2, 4
#     GPUs, and a traced 64-prompt run on 4 GPUs for the bubble ratio;
#  3. serving: `mpirun -np P baton-server` for P = 1, 2, 4, with 64 and 256
#     concurrent requests (128 random prompt ids, 128 new tokens, greedy,
#     ignore_eos) from `baton-client --concurrency`, and 3 single requests.
# Binaries from build-gpucarry/serve.tar.xz (tests/gpu/make_carry_serve.sh
# build/h-cuda). Writes $OUT/info.txt, run.log, parity.json, pipeline.json,
# serving_p{1,2,4}.json and raw.tgz. From the repo root on the GPU machine:
#   bench/gpu/run_pipeline_x4.sh
set -uo pipefail
OUT=${OUT:-/tmp/x4_out}
RAW=$OUT/raw
mkdir -p "$RAW"
PY=python3
LOG=$OUT/run.log
step() { echo "== $(date +%T) $*" | tee -a "$LOG"; }
# Keep NVLink multicast off (../shared/GPU.md); MPI runs as root there.
export NCCL_NVLS_ENABLE=0 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export BATON_COMM_TIMEOUT_S=${BATON_COMM_TIMEOUT_S:-120}
{
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
  mpirun --version | head -1
  date -u
} >"$OUT/info.txt" 2>&1
cat "$OUT/info.txt"
C=$PWD/build-gpucarry/serve
mkdir -p "$C"
tar xJf build-gpucarry/serve.tar.xz -C "$C" || { echo "no build-gpucarry/serve.tar.xz"; exit 1; }
NCCL_LIB=""
if ! ldconfig -p | grep -q 'libnccl.so.2 '; then  # else the pip wheel's copy
  NCCL_LIB=$($PY -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null)
fi
export LD_LIBRARY_PATH=$C/lib${NCCL_LIB:+:$NCCL_LIB}:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
BIN=$C/bin
launch() {  # P: the launcher prefix for P ranks (nothing for one)
  [ "$1" = 1 ] && return
  echo mpirun -np "$1" --bind-to none --mca btl_vader_single_copy_mechanism none -x LD_LIBRARY_PATH \
    -x NCCL_NVLS_ENABLE -x BATON_COMM_TIMEOUT_S
}
status=0

M8=/tmp/m8b
(
  start=$SECONDS
  [ -f $M8/model.safetensors ] || timeout 300 "$BIN/baton" make-model --shape llama-3-8b --dtype bf16 --tokenizer '' \
    --out $M8
  echo "make-model exit $? after $((SECONDS - start)) s"
) >"$RAW/make_model.log" 2>&1 &
MAKE_PID=$!

$PY - "$RAW" <<'PYEOF'
import json, random, sys
d = sys.argv[1]
for f in ("llama-mini", "gpt2-mini"):
    with open(f"{d}/{f}.prompts.jsonl", "w") as out:
        for p in json.load(open(f"tests/data/{f}/reference.json"))["prompts"]:
            out.write(json.dumps({"prompt_ids": p["ids"], "max_new_tokens": len(p["greedy"]), "ignore_eos": True}) + "\n")
def write(name, n, seed, vocab=128256):
    rng = random.Random(seed)
    with open(f"{d}/{name}", "w") as out:
        for _ in range(n):
            out.write(json.dumps({"prompt_ids": [rng.randrange(vocab // 8, vocab - vocab // 8) for _ in range(128)]}) + "\n")
write("b1.jsonl", 1, 1234)
write("b64.jsonl", 64, 1235)
for i, (name, n) in enumerate([("c64_warmup", 64), ("c64_1", 64), ("c64_2", 64), ("c256_1", 256), ("b1_1", 1),
                               ("b1_2", 1), ("b1_3", 1)]):
    write(name + ".prompts", n, 2000 + i)
PYEOF

step "parity: fixtures on 1, 2, 4 GPUs"
for f in llama-mini gpt2-mini; do
  for dt in f32 bf16; do
    for p in 1 2 4; do
      timeout 90 $(launch $p) "$BIN/baton" generate --model "tests/data/$f" --device cuda --dtype $dt --temperature 0 \
        --prompts-file "$RAW/$f.prompts.jsonl" --micro-batches 4 --kv-cache-mb 256 >"$RAW/$f.$dt.p$p.jsonl" \
        2>>"$RAW/parity.log" || status=1
    done
  done
done
$PY - "$RAW" "$OUT/parity.json" <<'PYEOF' || status=1
import json, os, sys
d, out = sys.argv[1], sys.argv[2]
def ids(path):
    rows = [json.loads(l) for l in open(path) if l.startswith("{")] if os.path.exists(path) else []
    return [r["output_ids"] for r in sorted(rows, key=lambda r: r["index"])]
res, ok = {}, True
for f in ("llama-mini", "gpt2-mini"):
    ref = [p["greedy"] for p in json.load(open(f"tests/data/{f}/reference.json"))["prompts"]]
    for dt in ("f32", "bf16"):
        runs = {p: ids(f"{d}/{f}.{dt}.p{p}.jsonl") for p in (1, 2, 4)}
        r = {"prompts": len(ref), "rows": {p: len(v) for p, v in runs.items()},
             "p4_equals_p1": len(runs[1]) == len(ref) and runs[4] == runs[1],
             "p2_equals_p1": len(runs[1]) == len(ref) and runs[2] == runs[1],
             "p1_equals_reference": runs[1] == ref, "p4_equals_reference": runs[4] == ref}
        need = ["p4_equals_p1", "p2_equals_p1"] + (["p1_equals_reference", "p4_equals_reference"] if dt == "f32" else [])
        r["pass"] = all(r[k] for k in need)
        ok &= r["pass"]
        res[f"{f}.{dt}"] = r
res["pass"] = ok
json.dump(res, open(out, "w"), indent=1)
print(json.dumps(res))
PYEOF

step "waiting for make-model"
wait $MAKE_PID
tail -2 "$RAW/make_model.log" | tee -a "$LOG"
common=(generate --model $M8 --device cuda --dtype bf16 --temperature 0 --ignore-eos --max-new-tokens 128)
for p in 1 2 4; do
  step "8B batch 1 on $p GPU(s)"
  timeout 120 $(launch $p) "$BIN/baton" "${common[@]}" --prompts-file "$RAW/b1.jsonl" >"$RAW/g_b1.p$p.jsonl" \
    2>"$RAW/g_b1.p$p.log" || status=1
  grep -E "tokens/s|rror" "$RAW/g_b1.p$p.log" | tail -2 | tee -a "$LOG"
done
step "8B 64 prompts on 4 GPUs, 4 micro-batches, traced"
timeout 150 $(launch 4) "$BIN/baton" "${common[@]}" --prompts-file "$RAW/b64.jsonl" --micro-batches 4 \
  --trace "$RAW/trace_p4.json" >"$RAW/g_b64.p4.jsonl" 2>"$RAW/g_b64.p4.log" || status=1
grep -E "tokens/s|trace:|rror" "$RAW/g_b64.p4.log" | tail -3 | tee -a "$LOG"
rm -f "$RAW/trace_p4.json"  # large; its summary line is in the log
$PY - "$RAW" "$OUT/pipeline.json" <<'PYEOF'
import json, re, sys
d, out = sys.argv[1], sys.argv[2]
STATS = re.compile(r"\[(\d+) prompts, (\d+) new tokens in ([\d.]+) s: ([\d.]+) tokens/s\]")
res = {}
def ids(path):
    try:
        return [json.loads(l)["output_ids"] for l in open(path) if l.startswith("{")]
    except Exception:
        return None
for run in ("g_b1.p1", "g_b1.p2", "g_b1.p4", "g_b64.p4"):
    text = open(f"{d}/{run}.log").read()
    m = STATS.search(text)
    r = {"error": text[-1200:]} if not m else {
        "new_tokens": int(m[2]), "seconds": float(m[3]), "tokens_per_s": float(m[4]),
        "ms_per_step": 1000 * float(m[3]) / (int(m[2]) / int(m[1]))}
    t = re.search(r"trace: .* written; (\{.*\})", text)
    if t:
        r["utilization"] = json.loads(t[1])
    res[run] = r
b1 = {p: ids(f"{d}/g_b1.p{p}.jsonl") for p in (1, 2, 4)}
res["b1_greedy_p2_equals_p1"] = b1[1] is not None and b1[2] == b1[1]
res["b1_greedy_p4_equals_p1"] = b1[1] is not None and b1[4] == b1[1]
json.dump(res, open(out, "w"), indent=1)
print(json.dumps(res, indent=1))
PYEOF

for p in 1 2 4; do
  step "baton-server on $p GPU(s)"
  R=$RAW/p$p
  mkdir -p "$R"
  cp "$RAW"/*.prompts "$R/"
  $(launch $p) "$BIN/baton-server" --model $M8 --device cuda --dtype bf16 --port 0 --metrics-port -1 --host 127.0.0.1 \
    --max-batch-tokens 8192 --micro-batches $p >"$R/server.out" 2>"$R/server.log" &
  SPID=$!
  start=$SECONDS
  PORT=""
  while [ $((SECONDS - start)) -lt 180 ] && kill -0 $SPID 2>/dev/null; do
    PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$R/server.out")
    [ -n "$PORT" ] && break
    sleep 0.5
  done
  echo "server up on '${PORT}' after $((SECONDS - start)) s" | tee -a "$LOG"
  if [ -z "$PORT" ]; then
    tail -5 "$R/server.log" | tee -a "$LOG"
    status=1
  else
    for run in c64_warmup:64 c64_1:64 c64_2:64 c256_1:256 b1_1:1 b1_2:1 b1_3:1; do
      name=${run%%:*}
      timeout 120 "$BIN/baton-client" generate --server 127.0.0.1:$PORT --prompts-file "$R/$name.prompts" \
        --concurrency "${run##*:}" --max-new-tokens 128 --temperature 0 --ignore-eos --json >"$R/$name.jsonl" \
        2>"$R/$name.err" || status=1
      echo "P=$p $name: $(tail -1 "$R/$name.err")" | tee -a "$LOG"
    done
    nvidia-smi --query-gpu=index,memory.used --format=csv,noheader | tr '\n' ' ' | tee -a "$LOG"
    echo | tee -a "$LOG"
  fi
  kill -TERM $SPID 2>/dev/null
  for _ in $(seq 60); do kill -0 $SPID 2>/dev/null || break; sleep 0.5; done
  kill -KILL $SPID 2>/dev/null
  wait $SPID 2>/dev/null
  rm -f "$R"/*.prompts
  $PY bench/gpu/serving_summary.py "$R" >"$OUT/serving_p$p.json" || status=1
done
tar czf "$OUT/raw.tgz" -C "$OUT" raw && rm -rf "$RAW"
echo "run_pipeline_x4 status: $status" | tee -a "$LOG"
exit $status
