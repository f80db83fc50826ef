#!/usr/bin/env python3
"""The PyTorch + transformers baseline for bench/gpu/run_h100.sh, on the same
GPU and checkpoints as Baton's benchmarks, in the same device call.

  hf_baseline.py --model NAME=DIR [--model NAME=DIR ...] [--ttft-model NAME --ttft-prompt 2048] [--sdpa 1024,4096]
                 [--batch 32]

Measures: device copy bandwidth (torch, bytes read + written); HF
`generate` batch 1, greedy, 128 prompt / 128 new tokens (tokens/s over the
whole call, and decode-only tokens/s = 127 / (t(128 new) - t(1 new)));
time to first token (generate with 1 new token) of a long prompt; torch
SDPA causal GQA attention in TFLOP/s, FLOPs counted as 4*S^2*H*D/2 like
bench_gpu_attention. Prints one JSON object.

--batch N runs `generate` on N distinct prompts of the same length at once
(no padding needed), the baseline for baton-server's concurrent-request
throughput; tokens/s then counts every row's new tokens.
"""
import argparse
import gc
import json
import statistics
import time

import torch


def sync_time(fn, repeats):
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def copy_bandwidth_gbs(nbytes=1 << 30, repeats=10):
    src = torch.ones(nbytes, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    best = float("inf")
    for i in range(repeats + 2):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        stop.record()
        stop.synchronize()
        if i >= 2:
            best = min(best, start.elapsed_time(stop))
    del src, dst
    return 2 * nbytes / (best * 1e-3) / 1e9


def prompt(tokens, vocab, run, batch=1):
    rows = [[1 + (i * 37 + (run + 101 * b) * 7919 + 13) % (vocab - 1) for i in range(tokens)] for b in range(batch)]
    return torch.tensor(rows, device="cuda")


def bench_generate(model, vocab, prompt_tokens, new_tokens, repeats, batch=1):
    def gen(n, run):
        ids = prompt(prompt_tokens, vocab, run, batch)
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                             do_sample=False, pad_token_id=0)
        assert out.shape == (batch, prompt_tokens + n), out.shape
    gen(new_tokens, 1000)  # warm-up at full length: a short one left the first timed call 3x slow
    full, full_runs = sync_time(lambda: gen(new_tokens, 0), repeats)
    first, _ = sync_time(lambda: gen(1, 0), repeats)
    return {
        "batch": batch,
        "prompt_tokens": prompt_tokens,
        "new_tokens": new_tokens,
        "seconds": full,
        "tokens_per_s": batch * new_tokens / full,
        "tokens_per_s_runs": [batch * new_tokens / t for t in full_runs],
        "decode_tokens_per_s": batch * (new_tokens - 1) / (full - first),
        "first_token_ms": first * 1e3,
    }


def bench_ttft(model, vocab, prompt_tokens, repeats):
    def gen():
        ids = prompt(prompt_tokens, vocab, 3000)
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=1, do_sample=False, pad_token_id=0)
    gen()  # warm-up
    median, runs = sync_time(gen, repeats)
    return {"ttft_prompt_tokens": prompt_tokens, "ttft_ms": median * 1e3, "ttft_ms_runs": [t * 1e3 for t in runs]}


def bench_sdpa(seqs, heads=32, kv_heads=8, d=128, iters=20):
    import torch.nn.functional as F
    results = []
    for s in seqs:
        q = torch.randn(1, heads, s, d, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(1, kv_heads, s, d, device="cuda", dtype=torch.bfloat16)
        v = torch.randn(1, kv_heads, s, d, device="cuda", dtype=torch.bfloat16)
        k_rep = k.repeat_interleave(heads // kv_heads, dim=1)
        v_rep = v.repeat_interleave(heads // kv_heads, dim=1)
        variants = {
            "gqa": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True),
            "kv_repeated": lambda: F.scaled_dot_product_attention(q, k_rep, v_rep, is_causal=True),
        }
        flops = 4.0 * s * s * heads * d / 2
        row = {"seq": s}
        for name, fn in variants.items():
            try:
                for _ in range(3):
                    fn()
                times = []
                for _ in range(iters):
                    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    fn()
                    stop.record()
                    stop.synchronize()
                    times.append(start.elapsed_time(stop))
                ms = statistics.median(times)
                row[name] = {"ms": ms, "tflops": flops / (ms * 1e-3) / 1e12}
            except Exception as e:  # an SDPA variant this torch lacks is reported, not fatal
                row[name] = {"error": str(e)[:200]}
        best = max((r["tflops"] for r in row.values() if isinstance(r, dict) and "tflops" in r), default=None)
        row["tflops"] = best
        results.append(row)
    return {"heads": heads, "kv_heads": kv_heads, "head_dim": d, "causal": True, "flops": "4*S^2*H*D/2",
            "results": results}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", default=[], help="NAME=DIR")
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1, help="prompts per generate call")
    ap.add_argument("--ttft-model", default="")
    ap.add_argument("--ttft-prompt", type=int, default=2048)
    ap.add_argument("--sdpa", default="1024,4096")
    args = ap.parse_args()
    from transformers import AutoModelForCausalLM
    import transformers

    out = {"bench": "hf_baseline", "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
           "transformers": transformers.__version__, "copy_bandwidth_gbs": copy_bandwidth_gbs(), "models": {}}
    for spec in args.model:
        name, path = spec.split("=", 1)
        t0 = time.perf_counter()
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16, device_map="cuda")
        model.eval()
        load_s = time.perf_counter() - t0
        vocab = model.config.vocab_size
        weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        with torch.inference_mode():
            r = bench_generate(model, vocab, args.prompt_tokens, args.new_tokens, args.repeats, args.batch)
            r.update({"load_s": load_s, "weight_bytes": weight_bytes})
            if name == args.ttft_model:
                r.update(bench_ttft(model, vocab, args.ttft_prompt, 5))
        out["models"][name] = r
        del model
        gc.collect()
        torch.cuda.empty_cache()
    if args.sdpa:
        out["sdpa"] = bench_sdpa([int(s) for s in args.sdpa.split(",")])
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
