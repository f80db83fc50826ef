#!/usr/bin/env python3
"""Summarizes bench/gpu/run_serving_h100.sh's raw files into one JSON object.

  serving_summary.py DIR > serving.json

DIR holds, per client run NAME: NAME.jsonl (`baton-client generate --json`,
one line per prompt, with the server's timings) and NAME.err (its stderr,
whose last line is "[P prompts, N new tokens in S s: T tokens/s]", timed by
the client from the first request sent to the last answer), plus
hf_bN.json from hf_baseline.py --batch N. Runs named c64_* are the 64-request load,
b1_* single requests. Standard library only: it runs on the device's Python.
Time to first token and the per-request inter-token latency,
(total - first token) / (tokens - 1), come from the server's own timings.
"""
import json
import os
import re
import statistics
import sys

STATS = re.compile(r"\[(\d+) prompts, (\d+) new tokens in ([0-9.]+) s: ([0-9.]+) tokens/s\]")


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def load_run(d, name):
    run = {"name": name}
    lines = [json.loads(l) for l in open(os.path.join(d, name + ".jsonl")) if l.strip()]
    errors = [l for l in lines if "error" in l]
    ok = [l for l in lines if "error" not in l]
    m = None
    for line in open(os.path.join(d, name + ".err")):
        m = STATS.search(line) or m
    if m:
        run.update(prompts=int(m.group(1)), new_tokens=int(m.group(2)), seconds=float(m.group(3)),
                   tokens_per_s=float(m.group(4)))
    run["errors"] = len(errors)
    if errors:
        run["first_error"] = errors[0]
    if ok:
        ttft = [l["timings"]["time_to_first_token_seconds"] * 1e3 for l in ok]
        itl = [(l["timings"]["total_seconds"] - l["timings"]["time_to_first_token_seconds"]) * 1e3 /
               max(1, l["usage"]["completion_tokens"] - 1) for l in ok]
        run.update(
            completion_tokens=[min(l["usage"]["completion_tokens"] for l in ok),
                               max(l["usage"]["completion_tokens"] for l in ok)],
            prompt_tokens=[min(l["usage"]["prompt_tokens"] for l in ok), max(l["usage"]["prompt_tokens"] for l in ok)],
            cached_prompt_tokens=sum(l["usage"]["cached_prompt_tokens"] for l in ok),
            finish_reasons=sorted({l["finish_reason"] for l in ok}),
            ttft_ms={"median": statistics.median(ttft), "p90": pct(ttft, 90), "max": max(ttft)},
            itl_ms={"median": statistics.median(itl), "p90": pct(itl, 90), "max": max(itl)},
            total_s_max=max(l["timings"]["total_seconds"] for l in ok),
        )
    return run


def main():
    d = sys.argv[1]
    names = sorted(f[:-6] for f in os.listdir(d) if f.endswith(".jsonl"))
    out = {"runs": {}}
    for name in names:
        try:
            out["runs"][name] = load_run(d, name)
        except Exception as e:  # a broken run is reported, the others still summarized
            out["runs"][name] = {"error": repr(e)}
    c64 = [r for n, r in out["runs"].items() if n.startswith("c64_") and n != "c64_warmup" and "tokens_per_s" in r]
    b1 = [r for n, r in out["runs"].items() if n.startswith("b1_") and "ttft_ms" in r]
    if c64:
        out["server_c64_tokens_per_s_median"] = statistics.median(r["tokens_per_s"] for r in c64)
        out["server_c64_tokens_per_s_runs"] = [r["tokens_per_s"] for r in c64]
    if b1:
        out["server_b1_ttft_ms_median"] = statistics.median(r["ttft_ms"]["median"] for r in b1)
        out["server_b1_itl_ms_median"] = statistics.median(r["itl_ms"]["median"] for r in b1)
        out["server_b1_tokens_per_s_median"] = statistics.median(r["tokens_per_s"] for r in b1 if "tokens_per_s" in r)
    out["hf"] = {}
    for f in sorted(f for f in os.listdir(d) if f.startswith("hf_b") and f.endswith(".json")):
        batch = f[len("hf_b"):-len(".json")]
        text = open(os.path.join(d, f)).read()
        try:
            hf = json.loads(text)
            out["hf"][batch] = hf
            m = next(iter(hf["models"].values()))
            out["hf_b%s_tokens_per_s" % batch] = m["tokens_per_s"]
            if c64:
                out["server_c64_over_hf_b%s" % batch] = out["server_c64_tokens_per_s_median"] / m["tokens_per_s"]
        except Exception as e:  # a failed baseline is reported with its output's tail
            out["hf"][batch] = {"error": repr(e), "text": text[-2000:]}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
