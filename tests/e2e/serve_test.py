"""baton-server end to end: `mpirun -np 2 baton-server` on the bundled model,
real clients over loopback (generated stubs, the Python SDK, baton-client).

Each case checks what a client sees against the fixtures (greedy ids and
text from transformers) or against the same request run alone."""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import grpc

ARGS = None
pb = pb_grpc = health_pb = health_grpc = None


def data(name):
    return os.path.join(ARGS.data, name)


def reference(name="llama-mini"):
    with open(os.path.join(data(name), "reference.json")) as f:
        return json.load(f)


class Server:
    """One `mpirun -np N baton-server` job; the ports are picked by the server."""

    def __init__(self, *extra, np=2, model="llama-mini"):
        self.log = tempfile.NamedTemporaryFile(prefix="baton-server-", suffix=".log", delete=False)
        cmd = [ARGS.server, "--model", data(model), "--port", "0", "--metrics-port", "0", "--host", "127.0.0.1",
               "--threads", "1", *map(str, extra)]
        if np > 1:
            cmd = [ARGS.mpirun, "--oversubscribe", "--allow-run-as-root", "-np", str(np), *cmd]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on [^:]+:(\d+), metrics on (-?\d+), pid (\d+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r}\n{self.stderr()}")
        self.port, self.metrics_port, self.pid = int(m[1]), int(m[2]), int(m[3])
        self.target = f"127.0.0.1:{self.port}"
        self.channel = grpc.insecure_channel(self.target)
        self.stub = pb_grpc.GenerationStub(self.channel)
        self.wait_serving()

    def stderr(self):
        with open(self.log.name) as f:
            return f.read()[-4000:]

    def health(self):
        stub = health_grpc.HealthStub(self.channel)
        return stub.Check(health_pb.HealthCheckRequest(), timeout=5).status

    def wait_serving(self, timeout=120):
        end = time.time() + timeout
        while time.time() < end:
            try:
                if self.health() == health_pb.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server never reported SERVING\n" + self.stderr())

    def metrics(self):
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, value = line.rsplit(" ", 1)
                values[key] = float(value)
        return values

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.channel.close()


def request(ids=None, max_new_tokens=24, text=None, **sampling):
    r = pb.GenerateRequest(max_new_tokens=max_new_tokens)
    if ids is not None:
        r.token_ids.ids.extend(ids)
    if text is not None:
        r.text = text
    for key in ("stop",):
        if key in sampling:
            r.stop.extend(sampling.pop(key))
    for key in ("ignore_eos", "logprobs"):
        if key in sampling:
            setattr(r, key, sampling.pop(key))
    for key, value in sampling.items():
        setattr(r.sampling, key, value)
    return r


def collect(stub, req, timeout=120):
    """Streams one request: (token events, final event)."""
    tokens, final = [], None
    for event in stub.Generate(req, timeout=timeout):
        if event.HasField("token"):
            tokens.append(event.token)
        else:
            final = event.final
    return tokens, final


GREEDY = dict(temperature=0.0, ignore_eos=True)


class ServeTestCase(unittest.TestCase):
    server = None

    @classmethod
    def setUpClass(cls):
        cls.ref = reference()
        cls.server = Server("--kv-cache-mb", 8)
        cls.stub = cls.server.stub

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def greedy_case(self, i):
        p = self.ref["prompts"][i % len(self.ref["prompts"])]
        return p


class Generation(ServeTestCase):
    def test_32_concurrent_greedy_streams_equal_the_fixture(self):
        def one(i):
            p = self.greedy_case(i)
            tokens, final = collect(self.stub, request(text=p["text"], max_new_tokens=24, **GREEDY))
            return p, tokens, final

        self.server.metrics()  # opens the utilization window
        with ThreadPoolExecutor(32) as pool:
            results = list(pool.map(one, range(32)))
        m = self.server.metrics()
        busy = [m[f'baton_stage_busy_ratio{{stage="{i}"}}'] for i in range(2)]
        # Both stages computed for part of the window, and the bubble is
        # what they did not (averaged over the two).
        self.assertTrue(all(0 < b <= 1 for b in busy), busy)
        self.assertAlmostEqual(m["baton_pipeline_bubble_ratio"], 1 - sum(busy) / 2, places=6)
        for p, tokens, final in results:
            self.assertEqual(list(final.output_ids), p["greedy"])
            self.assertEqual(final.text, p["greedy_text"])
            self.assertEqual(final.finish_reason, pb.FINISH_REASON_LENGTH)
            self.assertEqual([t for e in tokens for t in e.token_ids], p["greedy"])
            self.assertEqual("".join(e.text for e in tokens), p["greedy_text"])
            self.assertEqual(final.usage.prompt_tokens, len(p["ids"]))
            self.assertEqual(final.usage.completion_tokens, 24)
            self.assertGreater(final.timings.total_seconds, 0)

    def test_mixed_sampling_in_one_batch_equals_each_alone(self):
        ids = self.ref["prompts"][1]["ids"]
        variants = [dict(temperature=0.0), dict(temperature=0.8, seed=1), dict(temperature=1.2, top_k=5, seed=2),
                    dict(temperature=0.9, top_p=0.7, seed=3), dict(temperature=1.0, min_p=0.1, seed=4),
                    dict(temperature=0.7, repetition_penalty=1.3, seed=5)]
        alone = [list(collect(self.stub, request(ids, 16, ignore_eos=True, **v))[1].output_ids) for v in variants]
        with ThreadPoolExecutor(len(variants) * 2) as pool:
            together = list(pool.map(lambda v: list(collect(self.stub, request(ids, 16, ignore_eos=True, **v))[1]
                                                    .output_ids), variants * 2))
        self.assertEqual(together, alone * 2)
        self.assertNotEqual(alone[1], alone[2], "different seeds and settings should differ")

    def test_stop_string_and_eos_fields(self):
        p = self.ref["prompts"][0]
        stop = p["greedy_text"][6:10]
        tokens, final = collect(self.stub, request(text=p["text"], stop=[stop], **GREEDY))
        self.assertEqual(final.finish_reason, pb.FINISH_REASON_STOP)
        self.assertEqual(final.text, p["greedy_text"][:p["greedy_text"].index(stop)])

    def test_logprobs_follow_the_reference_logits(self):
        p = self.ref["prompts"][0]
        tokens, final = collect(self.stub, request(p["ids"], 3, logprobs=5, **GREEDY))
        first = tokens[0]
        top = first.top_logprobs[0].entries
        self.assertEqual([e.token_id for e in top], p["last_top10_ids"][:5])
        self.assertEqual(first.token_ids[0], top[0].token_id)
        self.assertAlmostEqual(first.logprobs[0], top[0].logprob, places=5)
        # log-softmax keeps differences: logprob_i - logprob_0 == logit_i - logit_0
        for e, logit in zip(top, p["last_top10_logits"]):
            self.assertAlmostEqual(e.logprob - top[0].logprob, logit - p["last_top10_logits"][0], delta=1e-3)
        self.assertTrue(all(e.logprob <= 0 for e in top))

    def test_tokenize_detokenize_and_model_info(self):
        p = self.ref["prompts"][2]
        ids = self.stub.Tokenize(pb.TokenizeRequest(text=p["text"]), timeout=10).token_ids
        self.assertEqual(list(ids), p["ids"])
        text = self.stub.Detokenize(pb.DetokenizeRequest(token_ids=p["greedy"]), timeout=10).text
        self.assertEqual(text, p["greedy_text"])
        info = self.stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
        config = json.load(open(os.path.join(data("llama-mini"), "config.json")))
        self.assertEqual(info.architecture, "llama")
        self.assertEqual(info.num_layers, config["num_hidden_layers"])
        self.assertEqual(info.vocab_size, config["vocab_size"])
        self.assertEqual(info.num_stages, 2)
        self.assertEqual(sum(info.layers_per_stage), config["num_hidden_layers"])
        self.assertGreater(info.kv_num_blocks, 0)

    def test_repeated_prefix_hits_the_prefix_cache(self):
        prefix = (self.ref["prompts"][3]["ids"] * 8)[:64]
        before = self.server.metrics()
        first = collect(self.stub, request(prefix + [5, 6], 8, **GREEDY))[1]
        second = collect(self.stub, request(prefix + [5, 6], 8, **GREEDY))[1]
        other_tail = collect(self.stub, request(prefix + [7], 8, **GREEDY))[1]
        after = self.server.metrics()
        self.assertEqual(list(second.output_ids), list(first.output_ids))
        self.assertGreaterEqual(second.usage.cached_prompt_tokens, 48)
        self.assertGreaterEqual(other_tail.usage.cached_prompt_tokens, 48)
        self.assertGreater(after["baton_prefix_cache_hits_total"], before["baton_prefix_cache_hits_total"])


class Failures(ServeTestCase):
    def invalid(self, req, field):
        with self.assertRaises(grpc.RpcError) as ctx:
            collect(self.stub, req)
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, ctx.exception.details())
        self.assertIn(field, ctx.exception.details())

    def test_each_invalid_field_is_named_while_good_requests_finish(self):
        p = self.ref["prompts"][4]
        with ThreadPoolExecutor(8) as pool:
            good = [pool.submit(collect, self.stub, request(p["ids"], 24, **GREEDY)) for _ in range(8)]
            vocab = json.load(open(os.path.join(data("llama-mini"), "config.json")))["vocab_size"]
            context = json.load(open(os.path.join(data("llama-mini"), "config.json")))["max_position_embeddings"]
            self.invalid(request([1, vocab, 2]), "outside the vocabulary")
            self.invalid(request([1, -1]), "outside the vocabulary")
            self.invalid(request([1] * 10, max_new_tokens=context), "context")
            self.invalid(request([1, 2], max_new_tokens=-1), "max_new_tokens")
            self.invalid(request([1, 2], temperature=-1.0), "temperature")
            self.invalid(request([1, 2], temperature=float("nan")), "temperature")
            self.invalid(request([1, 2], top_p=0.0), "top_p")
            self.invalid(request([1, 2], top_p=1.5), "top_p")
            self.invalid(request([1, 2], min_p=2.0), "min_p")
            self.invalid(request([1, 2], top_k=-3), "top_k")
            self.invalid(request([1, 2], repetition_penalty=0.0), "repetition_penalty")
            self.invalid(request([1, 2], logprobs=21), "logprobs")
            self.invalid(request([1, 2], stop=["x"] * 100), "stop")
            self.invalid(request([1, 2], stop=[""]), "stop")
            self.invalid(pb.GenerateRequest(max_new_tokens=4), "prompt")
            self.invalid(request(text=""), "prompt")
            for g in good:
                self.assertEqual(list(g.result()[1].output_ids), p["greedy"])

    def test_deadline_is_deadline_exceeded_and_the_server_goes_on(self):
        with self.assertRaises(grpc.RpcError) as ctx:
            collect(self.stub, request([1, 2, 3], 1000, ignore_eos=True, temperature=0.0), timeout=0.2)
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        p = self.ref["prompts"][0]
        self.assertEqual(list(collect(self.stub, request(p["ids"], 24, **GREEDY))[1].output_ids), p["greedy"])
        self.wait_idle_kv()

    def wait_idle_kv(self):
        end = time.time() + 10
        while time.time() < end:
            m = self.server.metrics()
            if m["baton_kv_cache_usage_ratio"] == 0 and m["baton_requests_running"] == 0:
                return
            time.sleep(0.05)
        self.fail(f"KV cache never went back to idle: {self.server.metrics()}")

    def test_cancel_mid_stream_frees_the_kv_cache(self):
        self.wait_idle_kv()
        call = self.stub.Generate(request([1, 2, 3], 1000, ignore_eos=True, temperature=0.0), timeout=120)
        seen = 0
        for event in call:
            seen += 1
            if seen == 3:
                self.assertGreater(self.server.metrics()["baton_kv_cache_usage_ratio"], 0)
                call.cancel()
                break
        self.wait_idle_kv()
        m = self.server.metrics()
        self.assertGreaterEqual(m.get('baton_requests_total{status="cancelled"}', 0), 1)


class Clients(ServeTestCase):
    def test_python_sdk_sync_stream_and_async(self):
        sys.path.insert(0, ARGS.sdk)
        import baton_client
        p = self.ref["prompts"][1]
        client = baton_client.Client(self.server.target)
        result = client.generate(token_ids=p["ids"], max_new_tokens=24, temperature=0.0, ignore_eos=True)
        self.assertEqual(list(result.output_ids), p["greedy"])
        self.assertEqual(result.text, p["greedy_text"])
        events = list(client.generate(prompt=p["text"], max_new_tokens=24, temperature=0.0, ignore_eos=True,
                                      stream=True))
        streamed = "".join(getattr(e, "text", "") for e in events[:-1])
        self.assertEqual(streamed, p["greedy_text"])
        with self.assertRaises(baton_client.InvalidArgumentError):
            client.generate(token_ids=[1, 2], max_new_tokens=4, top_p=0.0)

        import asyncio

        async def run_async():
            async with baton_client.AsyncClient(self.server.target) as ac:
                r = await ac.generate(token_ids=p["ids"], max_new_tokens=24, temperature=0.0, ignore_eos=True)
                return list(r.output_ids)

        self.assertEqual(asyncio.run(run_async()), p["greedy"])

    def test_baton_client_cli(self):
        p = self.ref["prompts"][2]
        r = subprocess.run([ARGS.client, "generate", "--server", self.server.target, "--prompt", p["text"],
                            "--max-new-tokens", "24", "--temperature", "0", "--ignore-eos", "--json"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(out["output_ids"], p["greedy"])
        self.assertEqual(out["text"], p["greedy_text"])
        r = subprocess.run([ARGS.client, "generate", "--server", self.server.target, "--prompt-ids", "1,2",
                            "--temperature", "-2"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertIn("temperature", r.stderr)
        r = subprocess.run([ARGS.client, "generate", "--server", self.server.target, "--prompt", p["text"],
                            "--max-new-tokens", "24", "--temperature", "0", "--ignore-eos", "--stream"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(p["greedy_text"], r.stdout)


class Lifecycle(unittest.TestCase):
    """Each case starts its own server."""

    def setUp(self):
        self.ref = reference()

    def test_kv_exhaustion_preempts_and_every_request_completes(self):
        # 6 blocks of 16 tokens per stage: 96 tokens for 8 requests of ~40.
        server = Server("--kv-cache-bytes", 6 * 16 * 4 * 2 * 2 * 64 * 4, "--no-prefix-caching")
        try:
            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(lambda i: (self.ref["prompts"][i % 6],
                                                   collect(server.stub, request(self.ref["prompts"][i % 6]["ids"], 24,
                                                                                **GREEDY))[1]), range(8)))
            for p, final in results:
                self.assertEqual(list(final.output_ids), p["greedy"])
            self.assertGreater(server.metrics()["baton_preemptions_total"], 0)
        finally:
            server.stop()

    def test_sigterm_drains_running_requests_and_exits_0(self):
        server = Server()
        p = self.ref["prompts"][0]
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(collect, server.stub, request(p["ids"], 24, **GREEDY)) for _ in range(4)]
            time.sleep(0.3)
            os.kill(server.pid, signal.SIGTERM)
            for f in futures:
                self.assertEqual(list(f.result()[1].output_ids), p["greedy"])
        self.assertEqual(server.proc.wait(timeout=60), 0, server.stderr())
        server.channel.close()
        # Gone for good: the port no longer accepts connections.
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.port), timeout=5)

    def test_killed_worker_ends_the_job_within_10_seconds(self):
        server = Server()
        call = server.stub.Generate(request([1, 2, 3], 1000, ignore_eos=True, temperature=0.0), timeout=120)
        next(iter(call))
        workers = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True).stdout.split()
        workers = [int(w) for w in workers if int(w) != server.pid]
        self.assertTrue(workers, "no worker rank found")
        os.kill(workers[0], signal.SIGKILL)
        start = time.time()
        code = server.proc.wait(timeout=30)
        self.assertLess(time.time() - start, 10)
        self.assertNotEqual(code, 0)
        with self.assertRaises(grpc.RpcError) as ctx:
            for _ in call:
                pass
        self.assertIn(ctx.exception.code(), (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED))
        server.channel.close()


def main():
    global ARGS, pb, pb_grpc, health_pb, health_grpc
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--client", required=True)
    parser.add_argument("--mpirun", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--stubs", required=True, help="folder of the generated Python stubs")
    parser.add_argument("--sdk", required=True, help="sdk/python")
    ARGS, rest = parser.parse_known_args()
    sys.path.insert(0, ARGS.stubs)
    from baton.v1 import generation_pb2, generation_pb2_grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    pb, pb_grpc = generation_pb2, generation_pb2_grpc
    health_pb, health_grpc = health_pb2, health_pb2_grpc
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)


if __name__ == "__main__":
    main()
