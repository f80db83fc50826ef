#!/usr/bin/env python3
"""Streams one generation from a running baton-server, then prints a few
of its Prometheus metrics. Used by scripts/quickstart.sh.

    quickstart.py HOST:PORT METRICS_PORT [PROMPT [MAX_NEW_TOKENS]]

Greedy, so that a model fine-tuned on a text continues it verbatim.
"""
import sys
import urllib.request

from baton_client import Client

WANTED = ("baton_requests_total", "baton_generation_tokens_total", "baton_time_to_first_token_seconds_sum",
          "baton_kv_cache_usage_ratio", "baton_requests_running")


def main():
    target, metrics_port = sys.argv[1], int(sys.argv[2])
    prompt = sys.argv[3] if len(sys.argv) > 3 else "Pipeline parallelism splits a model"
    max_new_tokens = int(sys.argv[4]) if len(sys.argv) > 4 else 32
    with Client(target) as client:
        client.wait_until_serving(timeout=120)
        info = client.model_info()
        print(f"model {info.architecture}: {info.num_layers} layers over {info.num_stages} stages "
              f"{list(info.layers_per_stage)}, {info.device}")
        print(f"prompt: {prompt}\nstream: ", end="", flush=True)
        final = None
        for event in client.generate(prompt, max_new_tokens=max_new_tokens, temperature=0, stream=True):
            if hasattr(event, "finish_reason"):
                final = event
            else:
                print(event.text, end="", flush=True)
        print(f"\nfinish: {final.finish_reason}, usage: {final.usage}")
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    print("metrics:")
    for line in text.splitlines():
        if line.startswith(WANTED):
            print("  " + line)


if __name__ == "__main__":
    main()
