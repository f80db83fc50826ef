"""CPU fine-tuning across layouts: the same job (llama-mini on the bundled
corpus, seq 128, 8 sequences a step) on 1 rank, pp 2, dp 2 (ZeRO-3 and
replicated) and pp 2 x dp 2, one BLAS thread per rank. Reports tokens/s
(steps after the first), the final loss, and each rank's model-state bytes
(parameters, gradients, AdamW moments), peak gathered and activation bytes,
which show ZeRO-3's 1/dp. Prints JSON.

  python3 bench/finetune_layouts.py --baton build/release/launch/baton [--steps 12]
"""
import argparse
import json
import os
import re
import subprocess
import tempfile

LAYOUTS = [  # name, pp, dp, extra flags
    ("1 rank", 1, 1, []),
    ("pp2 1f1b", 2, 1, ["--schedule", "1f1b"]),
    ("pp2 gpipe", 2, 1, ["--schedule", "gpipe"]),
    ("dp2 zero3", 1, 2, ["--zero", "3"]),
    ("dp2 zero0", 1, 2, ["--zero", "0"]),
    ("pp2 x dp2 zero3", 2, 2, ["--zero", "3"]),
    ("pp2 x dp2 zero3 + checkpointing", 2, 2, ["--zero", "3", "--activation-checkpointing"]),
]
MEMORY = re.compile(r"rank (\d+): layers \[(\d+), (\d+)\): parameters ([\d.]+) MB, gradients ([\d.]+) MB, "
                    r"optimizer ([\d.]+) MB, peak gathered ([\d.]+) MB, peak activations ([\d.]+) MB")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--baton", required=True)
    p.add_argument("--model", default="tests/data/llama-mini")
    p.add_argument("--data", default="tests/data/corpus.txt")
    p.add_argument("--steps", type=int, default=12)
    a = p.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")
    results = {"bench": "finetune_layouts", "model": a.model, "steps": a.steps, "seq_len": 128, "batch_size": 8,
               "nproc": os.cpu_count(), "runs": []}
    for name, pp, dp, extra in LAYOUTS:
        out = tempfile.mkdtemp(prefix="baton-ft-bench-")
        cmd = [a.baton, "finetune", "--model", a.model, "--data", a.data, "--out", out, "--steps", str(a.steps),
               "--lr", "3e-3", "--batch-size", "8", "--seq-len", "128", "--pp", str(pp), "--dp", str(dp), "--json",
               *extra]
        if pp * dp > 1:
            cmd = ["mpirun", "-np", str(pp * dp), "-x", "OMP_NUM_THREADS", "-x", "OPENBLAS_NUM_THREADS", *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise SystemExit(f"{name} failed:\n{r.stderr[-3000:]}")
        lines = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
        steps = [l for l in lines if "step" in l and "done" not in l]
        rates = [s["tokens_per_s"] for s in steps[1:]]
        ranks = sorted((dict(zip(("rank", "first_layer", "last_layer", "parameters_mb", "gradients_mb",
                                  "optimizer_mb", "peak_gathered_mb", "peak_activations_mb"),
                                 [int(x) for x in m[:3]] + [float(x) for x in m[3:]]))
                        for m in MEMORY.findall(r.stderr)), key=lambda d: d["rank"])
        results["runs"].append({"layout": name, "pp": pp, "dp": dp, "tokens_per_s": sum(rates) / len(rates),
                                "final_loss": lines[-1]["final_loss"], "ranks": ranks})
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
