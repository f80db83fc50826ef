"""CPU pipeline scaling: the same batch (32 prompts, 64 new tokens each) on
1 rank and on P ranks (one BLAS thread per rank), tokens/s side by side,
with each run's trace summary (stage busy fractions, bubble). Prints JSON.
The two run in turn --repeats times; the speedup is the ratio of the
medians, since on a shared VM one run can be off by 5 %.

  python3 bench/pipeline_scaling.py --baton build/release/launch/baton [--ranks 2] [--shape gpt2-124m] [--repeats 3]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile
import time


def run(cmd, env):
    start = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{r.stderr[-3000:]}")
    return r, time.time() - start


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--baton", required=True)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--shape", default="gpt2-124m")
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3, help="runs of each, in turn")
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "baton-bench-pipeline"))
    a = p.parse_args()

    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")
    os.makedirs(a.workdir, exist_ok=True)
    model = os.path.join(a.workdir, a.shape)
    if not os.path.exists(os.path.join(model, "model.safetensors")):
        run([a.baton, "make-model", "--shape", a.shape, "--dtype", "f32", "--out", model], env)
    prompts = os.path.join(a.workdir, "prompts.jsonl")
    with open(prompts, "w") as f:
        for i in range(a.prompts):
            ids = [(i * 131 + j * 17) % 2000 + 1 for j in range(16)]
            f.write(json.dumps({"prompt_ids": ids, "seed": i, "temperature": 0.8}) + "\n")

    results = {"bench": "pipeline_scaling", "shape": a.shape, "prompts": a.prompts, "new_tokens": a.new_tokens,
               "threads_per_rank": 1, "runs": []}
    outputs = {}
    for _ in range(a.repeats):
        for ranks in (1, a.ranks):
            trace = os.path.join(a.workdir, f"trace-p{ranks}.json")
            cmd = [a.baton, "generate", "--model", model, "--prompts-file", prompts, "--max-new-tokens",
                   str(a.new_tokens), "--ignore-eos", "--trace", trace, "--threads", "1"]
            if ranks > 1:
                cmd = ["mpirun", "-np", str(ranks), "-x", "OMP_NUM_THREADS", "-x", "OPENBLAS_NUM_THREADS", *cmd]
            r, wall = run(cmd, env)
            rate = float(re.search(r"in ([\d.]+) s: ([\d.]+) tokens/s", r.stderr).group(2))
            summary = json.loads(re.search(r"trace: .* written; (\{.*\})", r.stderr).group(1))
            out = [json.loads(l)["output_ids"] for l in r.stdout.splitlines() if l.startswith("{")]
            if outputs.setdefault(ranks, out) != out:
                raise SystemExit(f"P={ranks} made different tokens on a rerun")
            results["runs"].append({"ranks": ranks, "tokens_per_s": rate, "wall_s_with_load": wall, **summary,
                                    "stages": re.findall(r"stage \d+/\d+: [^\n]*", r.stderr)})
    median = {ranks: statistics.median(x["tokens_per_s"] for x in results["runs"] if x["ranks"] == ranks)
              for ranks in (1, a.ranks)}
    results["median_tokens_per_s"] = {f"P={k}": v for k, v in median.items()}
    results["speedup"] = median[a.ranks] / median[1]
    results["same_tokens"] = outputs[1] == outputs[a.ranks]
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
