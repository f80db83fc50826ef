#!/usr/bin/env python3
"""serve_bench: a load generator for baton-server.

Closed loop (each of C clients sends its next request when the last one
ends) or open loop (--rate requests/s, Poisson arrivals). Prompt and output
lengths are drawn uniformly from ranges; a --shared-prefix fraction of the
requests start with the same system prompt. Prints one JSON object per
concurrency level: throughput (generated tokens/s, requests/s), TTFT and
inter-token latency p50/p90/p99, and errors.

Against a running server:   serve_bench.py --server HOST:PORT --concurrency 1,8,32
Starting its own (CPU):     serve_bench.py --spawn "mpirun -np 2 build/release/launch/baton-server" ...
"""
import argparse
import json
import random
import re
import shlex
import subprocess
import sys
import threading
import time

import grpc


def percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(q / 100 * (len(values) - 1)))))
    return values[k]


def summary(values):
    return {"p50": percentile(values, 50), "p90": percentile(values, 90), "p99": percentile(values, 99)}


class Workload:
    def __init__(self, args, vocab):
        self.args = args
        self.vocab = vocab
        rng = random.Random(args.seed)
        self.prefix = [rng.randrange(1, vocab) for _ in range(args.prefix_len)]

    def request(self, pb, rng):
        a = self.args
        n_in = rng.randint(*a.input_len)
        ids = [rng.randrange(1, self.vocab) for _ in range(n_in)]
        if rng.random() < a.shared_prefix:
            ids = self.prefix + ids
        r = pb.GenerateRequest(max_new_tokens=rng.randint(*a.output_len), ignore_eos=True)
        r.token_ids.ids.extend(ids)
        r.sampling.temperature = a.temperature
        return r


def run_level(stub, pb, workload, concurrency, args):
    """Runs args.requests_per_client * concurrency requests; returns the stats."""
    lock = threading.Lock()
    ttft, itl, errors, tokens = [], [], [], [0]
    total = args.requests_per_client * concurrency
    issued = [0]

    def next_request(rng):
        with lock:
            if issued[0] >= total:
                return None
            issued[0] += 1
        return workload.request(pb, rng)

    def one(req):
        start = time.perf_counter()
        last = None
        try:
            for event in stub.Generate(req, timeout=args.timeout):
                now = time.perf_counter()
                if event.HasField("token"):
                    with lock:
                        if last is None:
                            ttft.append(now - start)
                        else:
                            itl.append(now - last)
                        tokens[0] += len(event.token.token_ids)
                    last = now
        except grpc.RpcError as e:
            with lock:
                errors.append(e.code().name)

    def client(index):
        rng = random.Random(args.seed * 1000 + index)
        while True:
            req = next_request(rng)
            if req is None:
                return
            if args.rate > 0:
                time.sleep(rng.expovariate(args.rate / concurrency))
            one(req)

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return {
        "concurrency": concurrency,
        "requests": total,
        "errors": len(errors),
        "error_codes": sorted(set(errors)),
        "seconds": round(elapsed, 3),
        "output_tokens": tokens[0],
        "tokens_per_s": round(tokens[0] / elapsed, 2),
        "requests_per_s": round((total - len(errors)) / elapsed, 3),
        "ttft_s": summary(ttft),
        "inter_token_s": summary(itl),
    }


def spawn(command, model, kv_mb):
    cmd = shlex.split(command) + ["--model", model, "--port", "0", "--metrics-port", "-1", "--kv-cache-mb",
                                  str(kv_mb)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    m = re.search(r"listening on [^:]+:(\d+), metrics on -?\d+, pid (\d+)", line)
    if not m:
        proc.kill()
        sys.exit(f"serve_bench: server did not start: {line!r}")
    return proc, f"127.0.0.1:{m[1]}", int(m[2])


def parse_range(text):
    lo, _, hi = text.partition(",")
    return int(lo), int(hi or lo)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", help="HOST:PORT of a running server")
    p.add_argument("--spawn", help="command that starts baton-server (ports are picked, the server is stopped after)")
    p.add_argument("--model", default="tests/data/llama-mini", help="with --spawn")
    p.add_argument("--kv-cache-mb", type=float, default=64, help="with --spawn")
    p.add_argument("--stubs", default="build/release/python", help="folder of the generated Python stubs")
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--requests-per-client", type=int, default=4)
    p.add_argument("--rate", type=float, default=0, help="requests/s over all clients (0: closed loop)")
    p.add_argument("--input-len", type=parse_range, default=(32, 64), help="MIN,MAX prompt tokens")
    p.add_argument("--output-len", type=parse_range, default=(32, 32), help="MIN,MAX new tokens")
    p.add_argument("--shared-prefix", type=float, default=0.0, help="fraction of requests with the shared prefix")
    p.add_argument("--prefix-len", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    sys.path.insert(0, args.stubs)
    from baton.v1 import generation_pb2 as pb, generation_pb2_grpc as pb_grpc

    proc = None
    if args.spawn:
        proc, args.server, pid = spawn(args.spawn, args.model, args.kv_cache_mb)
    try:
        channel = grpc.insecure_channel(args.server)
        stub = pb_grpc.GenerationStub(channel)
        grpc.channel_ready_future(channel).result(timeout=120)
        info = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=60)
        workload = Workload(args, info.vocab_size)
        # One warm request so the first level does not pay for connection setup.
        run_level(stub, pb, workload, 1, argparse.Namespace(**{**vars(args), "requests_per_client": 1}))
        levels = [run_level(stub, pb, workload, int(c), args) for c in args.concurrency.split(",")]
        base = levels[0]["tokens_per_s"]
        for level in levels:
            level["speedup_vs_first"] = round(level["tokens_per_s"] / base, 2) if base else None
            print(json.dumps({"bench": "serve_bench", "model": info.model_path, "stages": info.num_stages, **level}))
    finally:
        if proc:
            import os
            import signal
            os.kill(pid, signal.SIGTERM)
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
