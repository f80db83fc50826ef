"""Tiny Qwen2, Mistral and Llama-3.1-style checkpoints with transformers'
float32 reference logits and greedy continuations, for the architecture
features the two main fixtures do not cover: q/k/v biases (Qwen2), a sliding
window shorter than the prompt (Mistral), llama3 RoPE scaling, an explicit
head_dim and untied embeddings (Llama). Run on the GPU machine, which has
PyTorch + transformers:  python3 make_arch_fixtures.py OUTDIR
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM)

torch.use_deterministic_algorithms(True)
OUT = sys.argv[1]
V = 512
COMMON = dict(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6, initializer_range=0.1,
              bos_token_id=1, eos_token_id=2, attn_implementation="eager")
SPECS = [
    ("qwen2-tiny", Qwen2ForCausalLM, Qwen2Config(**COMMON, rope_theta=1e6, tie_word_embeddings=True)),
    ("mistral-tiny", MistralForCausalLM, MistralConfig(**COMMON, rope_theta=1e6, sliding_window=8,
                                                       tie_word_embeddings=False)),
    ("llama31-tiny", LlamaForCausalLM, LlamaConfig(**{**COMMON, "hidden_size": 96}, head_dim=32,
                                                    rope_theta=5e5, tie_word_embeddings=False,
                                                    rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                                                  "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                                  "original_max_position_embeddings": 32})),
]
LENGTHS = [1, 7, 20, 45]

for i, (name, cls, cfg) in enumerate(SPECS):
    torch.manual_seed(100 + i)
    model = cls(cfg).float().eval()
    with torch.no_grad():  # nonzero biases so that they matter
        for n, p in model.named_parameters():
            if n.endswith(".bias"):
                p.normal_(0, 0.2)
    d = os.path.join(OUT, name)
    model.save_pretrained(d, safe_serialization=True)
    gen = torch.Generator().manual_seed(7 + i)
    ref, tensors = {"model": name, "prompts": []}, {}
    with torch.no_grad():
        for j, n in enumerate(LENGTHS):
            ids = torch.randint(3, V, (1, n), generator=gen)
            logits = model(ids).logits[0].float()
            tensors[f"logits.{j}"] = logits.contiguous()
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=16, do_sample=False,
                                 eos_token_id=None, pad_token_id=0)[0, n:].tolist()
            ref["prompts"].append({"ids": ids[0].tolist(), "greedy": out})
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
    save_file(tensors, os.path.join(d, "reference.safetensors"))
    print(name, "done", json.load(open(os.path.join(d, "config.json"))).get("rope_parameters"), flush=True)
