#!/usr/bin/env bash
# One device call for the GPU path: GPU tests, a `baton generate --device
# cuda` smoke run, random Llama-3.2-1B / Llama-3-8B checkpoints made in
# /tmp, Baton's batch-1 decode (against the bandwidth floor), 8B TTFT and
# prefill-attention benchmarks, and the PyTorch + transformers baseline on
# the same checkpoints and card. Writes to $OUT: info.txt (card, disk),
# gpu_tests.log, run.log (everything's stderr), results.json (every
# benchmark's JSON). From the repo root, on the GPU machine:
#   bench/gpu/run_h100.sh [--skip-tests] [--skip-ops] [--skip-hf] [--skip-attention] [--skip-eager] [--ab]
#                        [--op-timings]
# Batch-1 decode runs twice per shape: with CUDA graphs (the default) and,
# unless --skip-eager, with BATON_CUDA_GRAPHS=off (baton_decode_*_eager).
# --ab adds a third run per shape, graphs on, with the switches in AB_OFF
# set to off (default "BATON_GEMV": products of a few rows back on cuBLAS;
# the backend's other switches are BATON_DECODE_ATTENTION and
# BATON_FUSED_ADD_NORM): baton_decode_*_before, so a change and what it
# replaced are measured in the same call.
# --op-timings runs gpu_op_timings (op_timings.json), and again with the
# decode attention kernel off (op_timings_warp_attention.json).
# Binaries come from build-gpucarry/carry.tar.xz (tests/gpu/make_carry.sh,
# built on a machine with Baton's dependencies; the GPU image lacks them).
set -uo pipefail
OUT=${OUT:-/tmp/h100_out}
mkdir -p "$OUT"
SKIP_TESTS=0 SKIP_OPS=0 SKIP_HF=0 SKIP_ATTN=0 SKIP_EAGER=0 AB=0 OP_TIMINGS=0
for a in "$@"; do
  case $a in
    --skip-tests) SKIP_TESTS=1 ;;
    --skip-ops) SKIP_OPS=1 ;;
    --skip-hf) SKIP_HF=1 ;;
    --skip-attention) SKIP_ATTN=1 ;;
    --skip-eager) SKIP_EAGER=1 ;;
    --ab) AB=1 ;;
    --op-timings) OP_TIMINGS=1 ;;
  esac
done
PY=/opt/torch/.venv/bin/python3
LOG=$OUT/run.log
R=$OUT/parts
mkdir -p "$R"
step() { echo "== $(date +%T) $*" | tee -a "$LOG"; }

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  df -h /tmp | tail -1
  date -u
} >"$OUT/info.txt" 2>&1
cat "$OUT/info.txt"

mkdir -p build-gpucarry
tar xJf build-gpucarry/carry.tar.xz -C build-gpucarry || { echo "no carried binaries"; exit 1; }
BIN=$PWD/build-gpucarry/bin
export LD_LIBRARY_PATH=$PWD/build-gpucarry/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}
status=0

if [ $SKIP_TESTS = 0 ]; then
  step "test_gpu_model"
  BATON_TEST_DATA=$PWD/tests/data timeout 300 "$BIN/test_gpu_model" >>"$OUT/gpu_tests.log" 2>&1 || status=1
  grep -E "^\[  (PASSED|FAILED) |^  \[|Failure" "$OUT/gpu_tests.log" | tail -30
  if [ $SKIP_OPS = 0 ]; then
    step "test_gpu_ops"
    timeout 300 "$BIN/test_gpu_ops" >>"$OUT/gpu_tests.log" 2>&1 || status=1
    grep -E "^\[  (PASSED|FAILED) |tests? ran" "$OUT/gpu_tests.log" | tail -6
  fi
  step "baton generate --device cuda (llama-mini, f32 and bf16)"
  for dt in f32 bf16; do
    timeout 60 "$BIN/baton" generate --model tests/data/llama-mini --device cuda --dtype $dt \
      --prompt "Hello, my dog is cute" --max-new-tokens 16 2>&1 | tee -a "$LOG" | tail -2
  done
fi

if [ $OP_TIMINGS = 1 ]; then
  step "gpu_op_timings (decode attention kernel on, then off)"
  timeout 150 "$BIN/gpu_op_timings" "$R/op_timings.json" >>"$LOG" 2>&1 || status=1
  BATON_DECODE_ATTENTION=off timeout 150 "$BIN/gpu_op_timings" "$R/op_timings_warp_attention.json" >>"$LOG" 2>&1 ||
    status=1
fi

M1=/tmp/baton-llama-3.2-1b
M8=/tmp/baton-llama-3-8b
step "make-model"
[ -f $M1/model.safetensors ] || timeout 200 "$BIN/baton" make-model --shape llama-3.2-1b --dtype bf16 --tokenizer '' --out $M1 >>"$LOG" 2>&1
[ -f $M8/model.safetensors ] || timeout 300 "$BIN/baton" make-model --shape llama-3-8b --dtype bf16 --tokenizer '' --out $M8 >>"$LOG" 2>&1
ls -la $M1 $M8 | tee -a "$LOG"
df -h /tmp | tail -1 | tee -a "$LOG"

if [ $SKIP_ATTN = 0 ]; then
  step "bench_gpu_attention"
  timeout 120 "$BIN/bench_gpu_attention" >"$R/baton_attention.json" 2>>"$LOG" || status=1
fi
if [ $SKIP_EAGER = 0 ]; then
  for m in 1b 8b; do
    step "bench_gpu_decode llama-$m, CUDA graphs off"
    M=$M1; L=llama-3.2-1b
    [ $m = 8b ] && M=$M8 && L=llama-3-8b
    BATON_CUDA_GRAPHS=off timeout 240 "$BIN/bench_gpu_decode" --model $M --label $L \
      >"$R/baton_decode_${m}_eager.json" 2>>"$LOG" || status=1
  done
fi
if [ $AB = 1 ]; then
  for m in 1b 8b; do
    step "bench_gpu_decode llama-$m, off: ${AB_OFF:-BATON_GEMV}"
    M=$M1; L=llama-3.2-1b
    [ $m = 8b ] && M=$M8 && L=llama-3-8b
    off=()
    for v in ${AB_OFF:-BATON_GEMV}; do off+=("$v=off"); done
    env "${off[@]}" timeout 240 "$BIN/bench_gpu_decode" --model $M --label $L \
      >"$R/baton_decode_${m}_before.json" 2>>"$LOG" || status=1
  done
fi
step "bench_gpu_decode llama-3.2-1b"
timeout 240 "$BIN/bench_gpu_decode" --model $M1 --label llama-3.2-1b --profile >"$R/baton_decode_1b.json" 2>>"$LOG" || status=1
step "bench_gpu_decode llama-3-8b (+ TTFT 2048)"
timeout 300 "$BIN/bench_gpu_decode" --model $M8 --label llama-3-8b --ttft-prompt 2048 --profile \
  >"$R/baton_decode_8b.json" 2>>"$LOG" || status=1

if [ $SKIP_HF = 0 ]; then
  step "hf_baseline"
  PYTHONUNBUFFERED=1 timeout 420 $PY bench/gpu/hf_baseline.py --model llama-3.2-1b=$M1 --model llama-3-8b=$M8 \
    --ttft-model llama-3-8b --ttft-prompt 2048 --repeats 5 >"$R/hf_baseline.json" 2>>"$LOG" || status=1
fi

step "collect"
$PY - "$R" "$OUT/results.json" <<'EOF'
import json, os, sys
parts, out = sys.argv[1], sys.argv[2]
res = {}
for f in sorted(os.listdir(parts)):
    text = open(os.path.join(parts, f)).read()
    try:
        res[f[:-5]] = json.loads(text)
    except Exception as e:
        res[f[:-5]] = {"error": str(e), "text": text[-2000:]}
json.dump(res, open(out, "w"), indent=1)
def g(d, *ks):
    for k in ks:
        d = d.get(k, {}) if isinstance(d, dict) else {}
    return d
for m in ("1b", "8b", "1b_eager", "8b_eager", "1b_before", "8b_before"):
    b = res.get("baton_decode_" + m, {})
    print(m, "baton decode", b.get("decode_tokens_per_s"), "tok/s, floor", b.get("floor_tokens_per_s"),
          "fraction", b.get("fraction_of_floor"), "ttft", b.get("ttft_ms"), "graphs", b.get("cuda_graphs"),
          b.get("decode_graph_replays"))
hf = res.get("hf_baseline", {})
for name, r in g(hf, "models").items() if isinstance(g(hf, "models"), dict) else []:
    print(name, "hf", r.get("tokens_per_s"), "tok/s, decode-only", r.get("decode_tokens_per_s"), "ttft", r.get("ttft_ms"))
print("attention baton", [(r["seq"], round(r["tflops"], 1)) for r in g(res, "baton_attention").get("results", [])])
print("attention sdpa", [(r["seq"], r.get("tflops")) for r in g(hf, "sdpa").get("results", [])])
EOF
echo "run_h100 status: $status"
exit $status
