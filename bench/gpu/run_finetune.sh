#!/usr/bin/env bash
# GPU fine-tuning in one device call: the GPU training tests, then
# `baton finetune --device cuda` on the Llama-3.2-1B shape at seq 2048 (bf16
# compute, float32 master weights, gradients and AdamW moments) beside
# PyTorch + transformers training the same checkpoint the same way
# (bench/gpu/torch_train_baseline.py), and, with more GPUs, the layouts of
# LAYOUTS on the same data. Binaries from build-gpucarry/carry.tar.xz
# (tests/gpu/make_carry.sh build/h-cuda). Writes to $OUT: info.txt,
# tests.log, <layout>.jsonl (+ .log) per layout, torch.json, summary.json.
# From the repo root on the GPU machine:
#   [LAYOUTS="1 dp2 pp2dp2_1f1b pp2dp2_gpipe"] [SKIP_TESTS=1] [SKIP_TORCH=1] [MBS=4] [TORCH_MBS=4]
#   bench/gpu/run_finetune.sh
# Layout names: 1 (one GPU), 1_offload (AdamW on the host), dp2 (ZeRO-3 over
# 2 GPUs), pp2 (2 stages),
# pp2dp2_1f1b / pp2dp2_gpipe (4 GPUs).
# NCU=1 also times every kernel of a one-GPU layout under Nsight Compute
# (a second run of NCU_STEPS steps) and sums the time by kernel name
# (bench/gpu/ncu_summary.py): <layout>.kernels.json.
set -uo pipefail
OUT=${OUT:-/tmp/ft_out}
mkdir -p "$OUT"
LAYOUTS=${LAYOUTS:-1}
STEPS=${STEPS:-6}
SEQ=${SEQ:-2048} BATCH=${BATCH:-8} MBS=${MBS:-4} TORCH_MBS=${TORCH_MBS:-$MBS}
PY=/opt/torch/.venv/bin/python3
export NCCL_NVLS_ENABLE=0 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
step() { echo "== $(date +%T) $*"; }
{
  nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader
  date -u
} >"$OUT/info.txt" 2>&1
cat "$OUT/info.txt"
C=$PWD/build-gpucarry
tar xJf build-gpucarry/carry.tar.xz -C "$C" || { echo "no build-gpucarry/carry.tar.xz"; exit 1; }
BIN=$C/bin
export LD_LIBRARY_PATH=$C/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}
status=0

M=/tmp/m1b
( [ -f $M/model.safetensors ] || timeout 300 "$BIN/baton" make-model --shape llama-3.2-1b --dtype bf16 --tokenizer '' \
    --out $M ) >"$OUT/make_model.log" 2>&1 &
MAKE_PID=$!
if [ "${SKIP_TESTS:-0}" = 0 ]; then
  step "test_gpu_training"
  timeout 400 "$BIN/test_gpu_training" >"$OUT/tests.log" 2>&1 || status=1
  grep -E "^\[ *(PASSED|FAILED) *\]|tests? ran|Failure" "$OUT/tests.log" | tail -30
fi
wait $MAKE_PID
tail -1 "$OUT/make_model.log"
# Pre-tokenized data: random ids, one record per sequence, enough for STEPS.
$PY - "$OUT/data.jsonl" $((STEPS * BATCH + BATCH)) "$SEQ" <<'PYEOF'
import json, random, sys
path, n, seq = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(0)
with open(path, "w") as f:
    for _ in range(n):
        f.write(json.dumps({"input_ids": [rng.randrange(0, 128000) for _ in range(seq)]}) + "\n")
PYEOF
# `baton finetune`'s arguments shared by every run of a layout (none has a
# space: word splitting is safe); $1: steps. Reads $layout and $mbs.
finetune_args() {
  echo finetune --device cuda --dtype bf16 --model $M --data "$OUT/data.jsonl" --out /tmp/ft_$layout \
    --seq-len "$SEQ" --batch-size "$BATCH" --micro-batch-size "$mbs" --steps "$1" --lr 1e-5 --lr-schedule constant \
    --no-shuffle --json
}
for layout in $LAYOUTS; do
  case $layout in
    1) np=1 mbs=$MBS args=() ;;
    1_offload) np=1 mbs=$MBS args=(--offload-optimizer) ;;
    dp2) np=2 mbs=$MBS args=(--dp 2 --zero 3) ;;
    # Stages pipeline micro-batches: one sequence each.
    pp2) np=2 mbs=1 args=(--pp 2 --schedule 1f1b) ;;
    pp2dp2_1f1b) np=4 mbs=1 args=(--pp 2 --dp 2 --zero 3 --schedule 1f1b) ;;
    pp2dp2_gpipe) np=4 mbs=1 args=(--pp 2 --dp 2 --zero 3 --schedule gpipe) ;;
    *) echo "unknown layout $layout"; status=1; continue ;;
  esac
  launch=()
  [ $np -gt 1 ] && launch=(mpirun -np $np --bind-to none --mca btl_vader_single_copy_mechanism none -x LD_LIBRARY_PATH
    -x NCCL_NVLS_ENABLE)
  step "baton finetune, layout $layout"
  timeout 300 "${launch[@]}" "$BIN/baton" $(finetune_args "$STEPS") "${args[@]}" >"$OUT/$layout.jsonl" \
    2>"$OUT/$layout.log" || status=1
  grep -E "rank|rror" "$OUT/$layout.log" | head -6
  tail -2 "$OUT/$layout.jsonl"
  nvidia-smi --query-gpu=index,memory.used --format=csv,noheader | tr '\n' ' '
  echo
  rm -rf /tmp/ft_$layout
  if [ "${NCU:-0}" = 1 ] && [ $np = 1 ]; then
    step "kernel times under ncu, layout $layout"
    ncu_steps=${NCU_STEPS:-2}
    timeout 500 ncu --csv --metrics gpu__time_duration.sum --cache-control none --clock-control none \
      --log-file "$OUT/$layout.ncu.csv" "$BIN/baton" $(finetune_args "$ncu_steps") "${args[@]}" >/dev/null \
      2>"$OUT/$layout.ncu.log" || status=1
    $PY bench/gpu/ncu_summary.py "$OUT/$layout.ncu.csv" --divide "$ncu_steps" >"$OUT/$layout.kernels.json" || status=1
    head -c 3000 "$OUT/$layout.kernels.json"
    rm -rf /tmp/ft_$layout "$OUT/$layout.ncu.csv"
  fi
done
if [ "${SKIP_TORCH:-0}" = 0 ]; then
  step "torch baseline"
  timeout 300 $PY bench/gpu/torch_train_baseline.py --model $M --seq-len "$SEQ" --batch-size "$BATCH" \
    --micro-batch-size "$TORCH_MBS" --steps "$STEPS" >"$OUT/torch.json" 2>"$OUT/torch.log" || status=1
  tail -c 600 "$OUT/torch.json"
  grep -iE "error" "$OUT/torch.log" | tail -3
fi
$PY - "$OUT" "$M" "$LAYOUTS" <<'PYEOF'
import json, math, os, sys
out, model, layouts = sys.argv[1], sys.argv[2], sys.argv[3].split()
from safetensors import safe_open
with safe_open(os.path.join(model, "model.safetensors"), "pt") as f:
    params = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
res = {"parameters": params}
for layout in layouts:
    rows = [json.loads(l) for l in open(f"{out}/{layout}.jsonl") if l.startswith("{")] if os.path.exists(f"{out}/{layout}.jsonl") else []
    steps = [r for r in rows if "step" in r]
    timed = steps[2:] or steps
    if not timed:
        res[layout] = {"error": "no steps"}
        continue
    tok_s = sum(r["tokens_per_s"] for r in timed) / len(timed)
    res[layout] = {"losses": [r["loss"] for r in steps], "tokens_per_s": tok_s,
                   "mfu": 6 * params * tok_s / 989e12, "grad_norms": [r["grad_norm"] for r in steps]}
if os.path.exists(f"{out}/torch.json"):
    try:
        res["torch"] = json.load(open(f"{out}/torch.json"))
    except Exception as e:
        res["torch"] = {"error": repr(e)}
json.dump(res, open(f"{out}/summary.json", "w"), indent=1)
print(json.dumps({k: ({kk: vv for kk, vv in v.items() if kk in ("tokens_per_s", "mfu", "losses")} if isinstance(v, dict) else v) for k, v in res.items()}))
PYEOF
rm -f "$OUT/data.jsonl"
echo "run_finetune status: $status"
exit $status
