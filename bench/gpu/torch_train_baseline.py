#!/usr/bin/env python3
"""The PyTorch + transformers training baseline for bench/gpu/run_finetune.sh:
the same Hugging Face folder, sequence length, batch and optimizer as the
`baton finetune` run it sits beside, on the same GPU in the same call.

  torch_train_baseline.py --model DIR --seq-len 2048 --batch-size 8 --micro-batch-size 4 --steps 8

Mixed precision as the usual recipe has it: float32 parameters, gradients
and AdamW moments (torch.optim.AdamW, fused), bf16 autocast, SDPA attention,
gradient accumulation over micro-batches, global-norm clipping at 1.0.
Random token ids (seed 0). The first 2 steps are warm-up; tokens/s is over
the rest. MFU = 6 * parameters * tokens/s / 989e12 (H100 SXM dense bf16).
Prints one JSON object.
"""
import argparse
import json
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--micro-batch-size", type=int, default=4)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup-steps", type=int, default=2)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    a = ap.parse_args()
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32, attn_implementation="sdpa")
    model.to("cuda").train()
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01, fused=True)
    vocab = model.config.vocab_size
    accum = a.batch_size // a.micro_batch_size
    g = torch.Generator(device="cuda").manual_seed(0)
    times, losses = [], []
    for step in range(a.steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        total = 0.0
        for _ in range(accum):
            ids = torch.randint(0, vocab, (a.micro_batch_size, a.seq_len), device="cuda", generator=g)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(input_ids=ids, labels=ids).loss / accum
            loss.backward()
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        losses.append(total)
    timed = times[a.warmup_steps:]
    tokens = a.batch_size * a.seq_len
    tok_s = tokens * len(timed) / sum(timed)
    print(json.dumps({
        "framework": f"torch {torch.__version__}",
        "parameters": params, "seq_len": a.seq_len, "batch_size": a.batch_size,
        "micro_batch_size": a.micro_batch_size, "steps": a.steps, "step_seconds": times, "losses": losses,
        "tokens_per_s": tok_s, "mfu": 6 * params * tok_s / (a.peak_tflops * 1e12),
        "peak_memory_gb": torch.cuda.max_memory_allocated() / 1e9,
        "device": torch.cuda.get_device_name(0),
    }))


if __name__ == "__main__":
    main()
