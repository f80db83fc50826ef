#!/usr/bin/env bash
# The CUDA pipeline across two GPUs (kind nvidia-h100-x2), in one device
# call: the NCCL communicator test, greedy parity of `mpirun -np 2 baton
# generate --device cuda` against one GPU and the fixtures' reference ids,
# and the Llama-3-8B-shape benchmark, P=2 against P=1 on the same machine.
# Binaries come from build-gpucarry/x2.tar.xz (tests/gpu/make_carry_x2.sh).
# Writes to $OUT: info.txt, nccl_test.log, parity.json (+ parity.log),
# bench.json (+ bench.log). From the repo root on the GPU machine:
#   tests/gpu/run_pipeline_x2.sh [--skip-bench]
set -uo pipefail
OUT=${OUT:-/tmp/x2_out}
mkdir -p "$OUT"
SKIP_BENCH=0
[ "${1:-}" = --skip-bench ] && SKIP_BENCH=1
# Keep NVLink multicast off (see ../shared/GPU.md); MPI runs as root there.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export BATON_COMM_TIMEOUT_S=${BATON_COMM_TIMEOUT_S:-120}
PY=python3
C=$PWD/build-gpucarry/x2
mkdir -p "$C"
tar xJf build-gpucarry/x2.tar.xz -C "$C" || { echo "no build-gpucarry/x2.tar.xz"; exit 1; }
BIN=$C/bin
NCCL_LIB=""
if ! ldconfig -p | grep -q 'libnccl.so.2 '; then  # else the pip wheel's copy
  NCCL_LIB=$($PY -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null)
fi
export LD_LIBRARY_PATH=$C/lib:${NCCL_LIB:+$NCCL_LIB:}/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
MPIRUN=(mpirun -np 2 --bind-to none --mca btl_vader_single_copy_mechanism none -x LD_LIBRARY_PATH -x NCCL_NVLS_ENABLE
  -x BATON_COMM_TIMEOUT_S)
step() { echo "== $(date +%T) $*"; }
{
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
  ldconfig -p | grep libnccl.so.2 || echo "nccl from $NCCL_LIB"
  mpirun --version | head -1
  date -u
} >"$OUT/info.txt" 2>&1
cat "$OUT/info.txt"
ldd "$BIN/baton" | grep "not found"
status=0

# The 8B checkpoint takes a while to write: start it now, use it last.
M8=/tmp/m8b
if [ $SKIP_BENCH = 0 ]; then
  (
    start=$SECONDS
    timeout 300 "$BIN/baton" make-model --shape llama-3-8b --dtype bf16 --tokenizer '' --out $M8
    echo "make-model exit $? after $((SECONDS - start)) s"
  ) >"$OUT/make_model.log" 2>&1 &
  MAKE_PID=$!
fi

step "test_gpu_nccl (2 ranks)"
timeout 120 "${MPIRUN[@]}" "$BIN/test_gpu_nccl" >"$OUT/nccl_test.log" 2>&1 || status=1
grep -E "FAIL|failure" "$OUT/nccl_test.log"

step "parity: fixtures, f32 and bf16, 1 GPU vs 2 GPUs"
P=$OUT/parity
mkdir -p "$P"
for f in llama-mini gpt2-mini; do
  $PY - "tests/data/$f/reference.json" >"$P/$f.prompts.jsonl" <<'PYEOF'
import json, sys
for p in json.load(open(sys.argv[1]))["prompts"]:
    print(json.dumps({"prompt_ids": p["ids"], "max_new_tokens": len(p["greedy"]), "ignore_eos": True}))
PYEOF
  for dt in f32 bf16; do
    args=(generate --model "tests/data/$f" --device cuda --dtype $dt --prompts-file "$P/$f.prompts.jsonl"
      --temperature 0 --micro-batches 2 --kv-cache-mb 256)
    timeout 90 "$BIN/baton" "${args[@]}" >"$P/$f.$dt.p1.jsonl" 2>>"$P/parity.log" || status=1
    timeout 90 "${MPIRUN[@]}" "$BIN/baton" "${args[@]}" >"$P/$f.$dt.p2.jsonl" 2>>"$P/parity.log" || status=1
  done
done
$PY - "$P" "$OUT/parity.json" <<'PYEOF' || status=1
import json, os, sys
d, out = sys.argv[1], sys.argv[2]
def ids(path):
    rows = [json.loads(l) for l in open(path) if l.startswith("{")] if os.path.exists(path) else []
    return [r["output_ids"] for r in sorted(rows, key=lambda r: r["index"])]
res, ok = {}, True
for f in ("llama-mini", "gpt2-mini"):
    ref = [p["greedy"] for p in json.load(open(f"tests/data/{f}/reference.json"))["prompts"]]
    r = {}
    for dt in ("f32", "bf16"):
        p1, p2 = ids(f"{d}/{f}.{dt}.p1.jsonl"), ids(f"{d}/{f}.{dt}.p2.jsonl")
        r[dt] = {"prompts": len(ref), "p1_rows": len(p1), "p2_rows": len(p2),
                 "p2_equals_p1": len(p1) == len(ref) and p1 == p2,
                 "p1_equals_reference": p1 == ref, "p2_equals_reference": p2 == ref}
        if dt == "bf16":  # the reference is float32: only P=2 == P=1 is required
            r[dt]["prompts_matching_reference_p2"] = sum(a == b for a, b in zip(p2, ref))
        need = ["p2_equals_p1"] + (["p1_equals_reference", "p2_equals_reference"] if dt == "f32" else [])
        r[dt]["pass"] = all(r[dt][k] for k in need)
        ok &= r[dt]["pass"]
    res[f] = r
res["pass"] = ok
json.dump(res, open(out, "w"), indent=1)
print(json.dumps(res))
sys.exit(0 if ok else 1)
PYEOF

if [ $SKIP_BENCH = 0 ]; then
  step "waiting for make-model"
  wait $MAKE_PID
  cat "$OUT/make_model.log" | tail -3
  B=$OUT/bench
  mkdir -p "$B"
  # 64 prompts of 128 random ids (fixed seed); the first alone for batch 1.
  $PY - "$B" <<'PYEOF'
import json, random, sys
rng = random.Random(1234)
rows = [json.dumps({"prompt_ids": [rng.randrange(1000, 120000) for _ in range(128)]}) for _ in range(64)]
open(sys.argv[1] + "/b64.jsonl", "w").write("\n".join(rows) + "\n")
open(sys.argv[1] + "/b1.jsonl", "w").write(rows[0] + "\n")
PYEOF
  common=(generate --model $M8 --device cuda --dtype bf16 --temperature 0 --ignore-eos --max-new-tokens 128)
  for run in b1.p1 b1.p2 b64.p1 b64.p2; do
    batch=${run%%.*}
    launch=()
    [ "${run##*.}" = p2 ] && launch=("${MPIRUN[@]}")
    mb=()
    [ $batch = b64 ] && mb=(--micro-batches 2)
    step "bench $run"
    timeout 150 "${launch[@]}" "$BIN/baton" "${common[@]}" --prompts-file "$B/$batch.jsonl" "${mb[@]}" \
      >"$B/$run.jsonl" 2>"$B/$run.log" || status=1
    grep -E "tokens/s|rror" "$B/$run.log" | tail -3
  done
  $PY - "$B" "$OUT/bench.json" <<'PYEOF'
import json, re, sys
b, out = sys.argv[1], sys.argv[2]
res = {}
for run in ("b1.p1", "b1.p2", "b64.p1", "b64.p2"):
    text = open(f"{b}/{run}.log").read()
    m = re.search(r"\[(\d+) prompts, (\d+) new tokens in ([\d.]+) s: ([\d.]+) tokens/s\]", text)
    if m:
        prompts, tokens, secs, rate = int(m[1]), int(m[2]), float(m[3]), float(m[4])
        res[run] = {"prompts": prompts, "new_tokens": tokens, "seconds": secs, "tokens_per_s": rate,
                    "ms_per_step": 1000 * secs / (tokens / prompts)}
    else:
        res[run] = {"error": text[-1500:]}
json.dump(res, open(out, "w"), indent=1)
print(json.dumps(res, indent=1))
PYEOF
fi
echo "run_pipeline_x2 status: $status"
exit $status
