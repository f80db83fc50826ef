#!/usr/bin/env python3
"""Client-side tests of the serving API without baton-server.

An in-process FAKE Generation/Health server (a test double: it generates
nothing, it replays what each test scripts and records what it receives)
checks that
  - the Python SDK (baton_client) builds requests field by field, streams,
    cancels, honours deadlines and maps gRPC codes to its typed errors;
  - with --baton-client, the `baton-client` CLI (C++ client library) turns
    its flags into the same request fields, prints `baton generate`'s JSON
    keys, and exits 2 on INVALID_ARGUMENT naming the field, 1 otherwise;
  - with --pip-install, `pip install sdk/python` into a fresh venv generates
    the stubs at build time and the SDK tests pass against the installed copy.
The real end-to-end tests against baton-server are in serve_test.py.

Run with PYTHONPATH=<build>/python:sdk/python (stubs from the CMake build).
"""
import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from concurrent import futures

import grpc

ARGS = None  # set in main()


def _import_sdk():
    global baton_client, pb, pb_grpc, health_pb2, health_pb2_grpc
    import baton_client  # noqa: F401
    from baton.v1 import generation_pb2 as pb
    from baton.v1 import generation_pb2_grpc as pb_grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc


# ---------------------------------------------------------------- the fake server

def token(ids, text, logprobs=(), top=()):
    return pb.GenerateResponse(token=pb.TokenEvent(
        token_ids=ids, text=text, logprobs=list(logprobs),
        top_logprobs=[pb.TopLogprobs(entries=[pb.TopLogprob(token_id=i, logprob=l) for i, l in t]) for t in top]))


def final(reason, text, output_ids, prompt_ids=(), error=""):
    return pb.GenerateResponse(final=pb.FinalEvent(
        finish_reason=reason, text=text, output_ids=output_ids, prompt_ids=list(prompt_ids), error=error,
        usage=pb.Usage(prompt_tokens=3, completion_tokens=len(output_ids), cached_prompt_tokens=1),
        timings=pb.Timings(queue_seconds=0.25, time_to_first_token_seconds=0.5, total_seconds=1.5)))


def echo_handler(request, context):
    """Default script: one token per prompt id (max_new_tokens of them), text "<id>", final LENGTH."""
    ids = list(request.token_ids.ids) if request.HasField("token_ids") else [len(request.text)]
    out = [(ids[i % len(ids)] if ids else 0) + 100 for i in range(request.max_new_tokens)]
    for t in out:
        yield token([t], f"<{t}>")
    yield final(pb.FINISH_REASON_LENGTH, "".join(f"<{t}>" for t in out), out)


def make_fake():
    class Fake(pb_grpc.GenerationServicer):
        def __init__(self):
            self.lock = threading.Lock()
            self.requests = []
            self.handler = echo_handler
            self.unary_error = None  # (code, message) for the unary RPCs
            self.health = {"": health_pb2.HealthCheckResponse.SERVING}

        def _record(self, request):
            with self.lock:
                self.requests.append(request)

        def Generate(self, request, context):
            self._record(request)
            yield from self.handler(request, context)

        def _unary(self, request, context):
            self._record(request)
            if self.unary_error:
                context.abort(*self.unary_error)

        def Tokenize(self, request, context):
            self._unary(request, context)
            return pb.TokenizeResponse(token_ids=[ord(c) for c in request.text] + ([1] if request.add_special_tokens
                                                                                       else []))

        def Detokenize(self, request, context):
            self._unary(request, context)
            text = "".join(chr(i) for i in request.token_ids if not (request.skip_special_tokens and i < 32))
            return pb.DetokenizeResponse(text=text)

        def GetModelInfo(self, request, context):
            self._unary(request, context)
            return pb.ModelInfo(architecture="llama", model_path="/m", num_layers=4, num_stages=2,
                                layers_per_stage=[3, 1], context_length=256, vocab_size=512, dtype="float32",
                                device="cpu", kv_block_size=16, kv_num_blocks=64, eos_token_ids=[2, 3],
                                max_batch_tokens=1024, micro_batches=2)

    class FakeHealth(health_pb2_grpc.HealthServicer):
        def __init__(self, fake):
            self.fake = fake

        def Check(self, request, context):
            status = self.fake.health.get(request.service)
            if status is None:
                context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service '{request.service}'")
            return health_pb2.HealthCheckResponse(status=status)

    fake = Fake()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=48))
    pb_grpc.add_GenerationServicer_to_server(fake, server)
    health_pb2_grpc.add_HealthServicer_to_server(FakeHealth(fake), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return fake, server, f"127.0.0.1:{port}"


class FakeServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake, cls.server, cls.target = make_fake()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop(None)

    def setUp(self):
        self.fake.requests.clear()
        self.fake.handler = echo_handler
        self.fake.unary_error = None
        self.fake.health = {"": health_pb2.HealthCheckResponse.SERVING}

    def only_request(self):
        self.assertEqual(len(self.fake.requests), 1, self.fake.requests)
        return self.fake.requests[0]


def aborting(code, message, after=()):
    def handler(request, context):
        yield from after
        context.abort(code, message)
    return handler


ERROR_CASES = [
    (grpc.StatusCode.INVALID_ARGUMENT, "sampling.top_p: must be in (0, 1], got 1.5", "InvalidArgumentError"),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full (256 waiting)", "ResourceExhaustedError"),
    (grpc.StatusCode.UNAVAILABLE, "worker rank 1 is gone", "UnavailableError"),
    (grpc.StatusCode.CANCELLED, "cancelled by the server", "CancelledError"),
    (grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed in the queue", "DeadlineExceededError"),
    (grpc.StatusCode.INTERNAL, "something broke", "BatonError"),
]


# ---------------------------------------------------------------- the sync SDK

class SyncSdkTest(FakeServerTest):
    def setUp(self):
        super().setUp()
        self.client = baton_client.Client(self.target)

    def tearDown(self):
        self.client.close()

    def test_every_field_reaches_the_server(self):
        def handler(request, context):
            yield token([11, 12], "ab", logprobs=[-0.5, -1.5], top=[[(11, -0.5), (7, -2.0)], [(12, -1.5), (8, -3.0)]])
            yield token([13], "c", logprobs=[-0.25], top=[[(13, -0.25), (9, -4.0)]])
            yield final(pb.FINISH_REASON_STOP, "abc", [11, 12, 13], prompt_ids=[5, 6, 7])
        self.fake.handler = handler
        result = self.client.generate("Hello", max_new_tokens=5, temperature=0.7, top_k=40, top_p=0.9, min_p=0.05,
                                      repetition_penalty=1.1, seed=2**40 + 7, stop=["\n\n", "END"], ignore_eos=True,
                                      logprobs=2, request_id="req-1")
        r = self.only_request()
        self.assertEqual(r.WhichOneof("prompt"), "text")
        self.assertEqual(r.text, "Hello")
        self.assertEqual(r.max_new_tokens, 5)
        s = r.sampling
        for name, want in (("temperature", 0.7), ("top_k", 40), ("top_p", 0.9), ("min_p", 0.05),
                           ("repetition_penalty", 1.1), ("seed", 2**40 + 7)):
            self.assertTrue(s.HasField(name), name)
            self.assertAlmostEqual(getattr(s, name), want, places=5, msg=name)
        self.assertEqual(list(r.stop), ["\n\n", "END"])
        self.assertTrue(r.ignore_eos)
        self.assertEqual(r.logprobs, 2)
        self.assertEqual(r.request_id, "req-1")

        self.assertEqual(result.text, "abc")
        self.assertEqual(result.output_ids, [11, 12, 13])
        self.assertEqual(result.finish_reason, "stop")
        self.assertEqual(result.prompt_ids, [5, 6, 7])
        self.assertEqual(result.usage, baton_client.Usage(3, 3, 1))
        self.assertEqual(result.timings, baton_client.Timings(0.25, 0.5, 1.5))
        self.assertEqual(result.logprobs, [-0.5, -1.5, -0.25])
        self.assertEqual([[(e.token_id, e.logprob) for e in t] for t in result.top_logprobs],
                         [[(11, -0.5), (7, -2.0)], [(12, -1.5), (8, -3.0)], [(13, -0.25), (9, -4.0)]])

    def test_unset_fields_stay_unset_and_zero_is_sent(self):
        result = self.client.generate(token_ids=[4, 5, 6], max_new_tokens=2)
        r = self.only_request()
        self.assertEqual(r.WhichOneof("prompt"), "token_ids")
        self.assertEqual(list(r.token_ids.ids), [4, 5, 6])
        for name in ("temperature", "top_k", "top_p", "min_p", "repetition_penalty", "seed"):
            self.assertFalse(r.sampling.HasField(name), name)  # the server's defaults apply
        self.assertEqual((list(r.stop), r.ignore_eos, r.logprobs), ([], False, 0))
        self.assertEqual(result.output_ids, [104, 105])
        self.assertEqual(result.finish_reason, "length")
        self.assertEqual(result.prompt_ids, [4, 5, 6])  # the request's, as the final event carried none
        self.assertIsNone(result.logprobs)

        self.fake.requests.clear()
        self.client.generate([9, 8], temperature=0, top_k=0, stop="STOP")  # a list prompt is token ids
        r = self.only_request()
        self.assertEqual(list(r.token_ids.ids), [9, 8])
        self.assertEqual(r.max_new_tokens, 32)  # the default, as `baton generate`'s
        self.assertTrue(r.sampling.HasField("temperature"))  # 0 (greedy) is sent, not dropped
        self.assertEqual(r.sampling.temperature, 0)
        self.assertTrue(r.sampling.HasField("top_k"))
        self.assertEqual(list(r.stop), ["STOP"])

    def test_bad_prompts_fail_locally(self):
        for kwargs, field in (({"prompt": "a", "token_ids": [1]}, "prompt"), ({}, "prompt"),
                              ({"token_ids": [1, "2"]}, "token_ids"), ({"token_ids": "12"}, "token_ids")):
            with self.assertRaises(baton_client.InvalidArgumentError) as caught:
                self.client.generate(**kwargs)
            self.assertEqual(caught.exception.field, field)
            self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(self.fake.requests, [])

    def test_stream_yields_events_as_they_come(self):
        client_saw_first = threading.Event()
        waited = {}

        def handler(request, context):
            yield token([1], "He")
            # The rest is sent only once the client has seen the first event:
            # a client that buffered the stream would make this wait time out.
            waited["ok"] = client_saw_first.wait(timeout=10)
            yield token([2], "llo")
            yield token([3], "")
            yield final(pb.FINISH_REASON_EOS, "Hello", [1, 2, 3])
        self.fake.handler = handler
        events = []
        for event in self.client.generate("x", stream=True):
            events.append(event)
            client_saw_first.set()
        self.assertTrue(waited["ok"])
        self.assertEqual([type(e).__name__ for e in events], ["TokenEvent"] * 3 + ["FinalEvent"])
        self.assertEqual("".join(e.text for e in events[:-1]), events[-1].text)
        self.assertEqual(events[0].token_ids, [1])
        self.assertEqual(events[-1].finish_reason, "eos")
        self.assertEqual(events[-1].output_ids, [1, 2, 3])

    def test_cancel_mid_stream_reaches_the_server(self):
        server_saw_cancel = threading.Event()

        def handler(request, context):
            context.add_callback(server_saw_cancel.set)
            for i in range(1000):
                if not context.is_active():
                    return
                yield token([i], "t")
                time.sleep(0.01)
            yield final(pb.FINISH_REASON_LENGTH, "", [])
        self.fake.handler = handler
        stream = self.client.generate("x", stream=True)
        first = next(stream)
        self.assertEqual(first.token_ids, [0])
        stream.cancel()
        self.assertEqual([type(e).__name__ for e in stream if type(e).__name__ == "FinalEvent"], [])
        self.assertTrue(server_saw_cancel.wait(timeout=5), "the server never saw the cancel")

    def test_status_codes_map_to_typed_errors(self):
        for code, message, name in ERROR_CASES:
            with self.subTest(code=code):
                self.fake.handler = aborting(code, message)
                with self.assertRaises(baton_client.BatonError) as caught:
                    self.client.generate("x")
                e = caught.exception
                self.assertEqual(type(e).__name__, name)
                self.assertIs(type(e), getattr(baton_client, name))
                self.assertEqual((e.code, e.message), (code, message))
        self.fake.handler = aborting(*ERROR_CASES[0][:2])
        with self.assertRaises(baton_client.InvalidArgumentError) as caught:
            self.client.generate("x")
        self.assertEqual(caught.exception.field, "sampling.top_p")
        self.assertIn("1.5", str(caught.exception))

    def test_error_after_tokens_raises_in_the_stream(self):
        self.fake.handler = aborting(grpc.StatusCode.UNAVAILABLE, "worker rank 1 is gone", after=[token([1], "a")])
        stream = self.client.generate("x", stream=True)
        self.assertEqual(next(stream).text, "a")
        with self.assertRaises(baton_client.UnavailableError):
            next(stream)
        with self.assertRaises(baton_client.UnavailableError):  # and without stream=True
            self.client.generate("x")

    def test_error_finish_raises_generation_error(self):
        self.fake.handler = lambda r, c: iter([token([1], "a"), final(pb.FINISH_REASON_ERROR, "", [1],
                                                                      error="stage 1 failed: out of memory")])
        with self.assertRaises(baton_client.GenerationError) as caught:
            self.client.generate("x")
        self.assertIn("out of memory", caught.exception.message)
        events = list(self.client.generate("x", stream=True))  # a stream hands the final event over as it is
        self.assertEqual(events[-1].finish_reason, "error")

    def test_deadline(self):
        def slow(request, context):
            time.sleep(3)
            yield final(pb.FINISH_REASON_LENGTH, "", [])
        self.fake.handler = slow
        start = time.monotonic()
        with self.assertRaises(baton_client.DeadlineExceededError):
            self.client.generate("x", timeout=0.3)
        self.assertLess(time.monotonic() - start, 2.5)

    def test_unary_rpcs(self):
        self.assertEqual(self.client.tokenize("hi", add_special_tokens=True), [104, 105, 1])
        self.assertTrue(self.fake.requests[-1].add_special_tokens)
        self.assertEqual(self.client.detokenize([1, 104, 105], skip_special_tokens=True), "hi")
        self.assertEqual(list(self.fake.requests[-1].token_ids), [1, 104, 105])
        info = self.client.model_info()
        self.assertEqual((info.architecture, info.num_stages, info.layers_per_stage, info.eos_token_ids),
                         ("llama", 2, [3, 1], [2, 3]))
        self.assertEqual(info.kv_num_blocks * info.kv_block_size, 1024)
        self.fake.unary_error = (grpc.StatusCode.INVALID_ARGUMENT, "token_ids[1]: 9999 is not below vocab_size 512")
        with self.assertRaises(baton_client.InvalidArgumentError) as caught:
            self.client.detokenize([1, 9999])
        self.assertEqual(caught.exception.field, "token_ids[1]")

    def test_health(self):
        self.fake.health = {"": health_pb2.HealthCheckResponse.SERVING,
                            "baton.v1.Generation": health_pb2.HealthCheckResponse.NOT_SERVING}
        self.assertEqual(self.client.health(), "SERVING")
        self.assertEqual(self.client.health("baton.v1.Generation"), "NOT_SERVING")
        with self.assertRaises(baton_client.BatonError) as caught:
            self.client.health("nope")
        self.assertEqual(caught.exception.code, grpc.StatusCode.NOT_FOUND)

    def test_wait_until_serving(self):
        self.fake.health = {"": health_pb2.HealthCheckResponse.NOT_SERVING}
        with self.assertRaises(baton_client.DeadlineExceededError) as caught:
            self.client.wait_until_serving(timeout=0.5)
        self.assertIn("NOT_SERVING", caught.exception.message)
        threading.Timer(0.3, lambda: self.fake.health.update({"": health_pb2.HealthCheckResponse.SERVING})).start()
        self.client.wait_until_serving(timeout=5)
        self.assertEqual(self.client.health(), "SERVING")

    def test_unreachable_server_is_unavailable(self):
        with baton_client.Client("127.0.0.1:1") as client:
            with self.assertRaises(baton_client.UnavailableError):
                client.generate("x", timeout=5)

    def test_threads_share_one_client(self):
        def one(i):
            return self.client.generate(token_ids=[i], max_new_tokens=3).output_ids
        with futures.ThreadPoolExecutor(8) as pool:
            outputs = list(pool.map(one, range(16)))
        self.assertEqual(outputs, [[i + 100] * 3 for i in range(16)])


# ---------------------------------------------------------------- the asyncio SDK

class AsyncSdkTest(FakeServerTest):
    def run_async(self, coroutine_fn):
        async def wrapper():
            async with baton_client.AsyncClient(self.target) as client:
                return await coroutine_fn(client)
        return asyncio.run(wrapper())

    def test_generate_and_fields(self):
        async def go(client):
            return await client.generate("Hi", max_new_tokens=3, top_p=0.5, seed=3, stop="x", logprobs=1)
        result = self.run_async(go)
        r = self.only_request()
        self.assertEqual((r.text, r.max_new_tokens, r.sampling.top_p, r.sampling.seed, list(r.stop), r.logprobs),
                         ("Hi", 3, 0.5, 3, ["x"], 1))
        self.assertFalse(r.sampling.HasField("temperature"))
        self.assertEqual(result.output_ids, [102, 102, 102])
        self.assertEqual(result.text, "<102><102><102>")
        self.assertEqual(result.logprobs, [])  # requested, but the fake sent none

    def test_stream_and_concurrency(self):
        async def go(client):
            async def collect(i):
                stream = await client.generate(token_ids=[i], max_new_tokens=4, stream=True)
                return [e async for e in stream]
            return await asyncio.gather(*(collect(i) for i in range(8)))
        for i, events in enumerate(self.run_async(go)):
            self.assertEqual([type(e).__name__ for e in events], ["TokenEvent"] * 4 + ["FinalEvent"])
            self.assertEqual([t for e in events[:-1] for t in e.token_ids], [i + 100] * 4)
            self.assertEqual(events[-1].output_ids, [i + 100] * 4)

    def test_errors(self):
        for code, message, name in ERROR_CASES:
            with self.subTest(code=code):
                self.fake.handler = aborting(code, message)

                async def go(client):
                    try:
                        await client.generate("x")
                    except baton_client.BatonError as e:
                        return e
                e = self.run_async(go)
                self.assertIs(type(e), getattr(baton_client, name))
                self.assertEqual((e.code, e.message), (code, message))

        self.fake.unary_error = (grpc.StatusCode.RESOURCE_EXHAUSTED, "busy")

        async def tokenize(client):
            await client.tokenize("a")
        with self.assertRaises(baton_client.ResourceExhaustedError):
            self.run_async(tokenize)

    def test_deadline_and_cancel(self):
        server_saw_cancel = threading.Event()

        def endless(request, context):
            context.add_callback(server_saw_cancel.set)
            i = 0
            while context.is_active():
                yield token([i], "t")
                i += 1
                time.sleep(0.01)
        self.fake.handler = endless

        async def deadline(client):
            await client.generate("x", timeout=0.3)
        with self.assertRaises(baton_client.DeadlineExceededError):
            self.run_async(deadline)
        self.assertTrue(server_saw_cancel.wait(timeout=5))
        server_saw_cancel.clear()

        async def cancel(client):
            stream = await client.generate("x", stream=True)
            first = await stream.__anext__()
            stream.cancel()
            rest = [e async for e in stream]
            return first, rest
        first, rest = self.run_async(cancel)
        self.assertEqual(first.token_ids, [0])
        self.assertFalse(any(type(e).__name__ == "FinalEvent" for e in rest))
        self.assertTrue(server_saw_cancel.wait(timeout=5), "the server never saw the cancel")

    def test_unary_and_health(self):
        async def go(client):
            await client.wait_until_serving(timeout=5)
            return (await client.tokenize("ab"), await client.detokenize([104, 105]),
                    (await client.model_info()).vocab_size, await client.health())
        self.assertEqual(self.run_async(go), ([97, 98], "hi", 512, "SERVING"))


# ---------------------------------------------------------------- the baton-client CLI

class CliTest(FakeServerTest):
    def cli(self, *args):
        command = [ARGS.baton_client, args[0], "--server", self.target] + list(args[1:])
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    def test_flags_become_request_fields_and_json_matches_baton_generate(self):
        def handler(request, context):
            yield token([11], "ab", logprobs=[-0.5], top=[[(11, -0.5), (7, -2.0)]])
            yield final(pb.FINISH_REASON_STOP, "ab", [11])
        self.fake.handler = handler
        p = self.cli("generate", "--prompt-ids", "1,2,3", "--max-new-tokens", "7", "--temperature", "0.5",
                     "--top-k", "5", "--top-p", "0.75", "--min-p", "0.1", "--repetition-penalty", "1.25",
                     "--seed", "42", "--stop", "\n\n", "--stop", "END", "--ignore-eos", "--logprobs", "2",
                     "--request-id", "cli-1", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        r = self.only_request()
        self.assertEqual(list(r.token_ids.ids), [1, 2, 3])
        self.assertEqual(r.max_new_tokens, 7)
        for name, want in (("temperature", 0.5), ("top_k", 5), ("top_p", 0.75), ("min_p", 0.1),
                           ("repetition_penalty", 1.25), ("seed", 42)):
            self.assertTrue(r.sampling.HasField(name), name)
            self.assertAlmostEqual(getattr(r.sampling, name), want, places=5, msg=name)
        self.assertEqual((list(r.stop), r.ignore_eos, r.logprobs, r.request_id),
                         (["\n\n", "END"], True, 2, "cli-1"))
        out = json.loads(p.stdout)
        # `baton generate --json`'s keys, then the server's extras.
        self.assertEqual(out["prompt_ids"], [1, 2, 3])
        self.assertEqual((out["output_ids"], out["text"], out["finish_reason"]), ([11], "ab", "stop"))
        self.assertEqual(out["usage"], {"prompt_tokens": 3, "completion_tokens": 1, "cached_prompt_tokens": 1})
        self.assertEqual(out["timings"],
                         {"queue_seconds": 0.25, "time_to_first_token_seconds": 0.5, "total_seconds": 1.5})
        self.assertEqual(out["logprobs"], [-0.5])
        self.assertEqual(out["top_logprobs"], [[{"token_id": 11, "logprob": -0.5}, {"token_id": 7, "logprob": -2.0}]])

    def test_unset_flags_stay_unset(self):
        p = self.cli("generate", "--prompt", "hello world", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        r = self.only_request()
        self.assertEqual((r.WhichOneof("prompt"), r.text, r.max_new_tokens), ("text", "hello world", 32))
        for name in ("temperature", "top_k", "top_p", "min_p", "repetition_penalty", "seed"):
            self.assertFalse(r.sampling.HasField(name), name)
        out = json.loads(p.stdout)
        self.assertNotIn("prompt_ids", out)  # text prompt, and the server sent none
        self.assertNotIn("logprobs", out)
        self.assertEqual(out["output_ids"], [111] * 32)

    def test_text_streams_as_it_arrives(self):
        client_saw_first = threading.Event()
        waited = {}

        def handler(request, context):
            yield token([1], "Hello")
            waited["ok"] = client_saw_first.wait(timeout=10)
            yield token([2], ", world")
            yield final(pb.FINISH_REASON_EOS, "Hello, world", [1, 2])
        self.fake.handler = handler
        proc = subprocess.Popen([ARGS.baton_client, "generate", "--server", self.target, "--prompt", "x", "--stream"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = proc.stdout.read(5)  # arrives before the server sends the rest
        client_saw_first.set()
        rest, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 0, err)
        self.assertEqual(first, "Hello")
        self.assertEqual(rest, ", world\n")
        self.assertTrue(waited["ok"])
        self.assertIn("[1 prompts, 2 new tokens", err)

        p = self.cli("generate", "--prompt", "x", "--stream", "--json")
        lines = [json.loads(line) for line in p.stdout.splitlines()]
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(lines[0], {"token_ids": [1], "text": "Hello"})
        self.assertEqual(lines[-1]["finish_reason"], "eos")

    def test_prompts_file_runs_concurrently_in_order(self):
        in_flight, most = [0], [0]
        lock = threading.Lock()

        def handler(request, context):
            with lock:
                in_flight[0] += 1
                most[0] = max(most[0], in_flight[0])
            time.sleep(0.3)
            with lock:
                in_flight[0] -= 1
            if request.HasField("sampling") and request.sampling.HasField("top_p") and request.sampling.top_p > 1:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "sampling.top_p: must be in (0, 1], got 2")
            yield from echo_handler(request, context)
        self.fake.handler = handler
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            f.write("plain text prompt\n\n")
            for i in range(6):
                f.write(json.dumps({"prompt_ids": [i], "max_new_tokens": 2, "temperature": 0.5, "stop": ["z"]}) + "\n")
            f.write(json.dumps({"prompt": "bad", "top_p": 2}) + "\n")
        try:
            p = self.cli("generate", "--prompts-file", f.name, "--max-new-tokens", "1", "--concurrency", "4")
        finally:
            os.unlink(f.name)
        self.assertEqual(p.returncode, 2, p.stderr)  # the bad line is INVALID_ARGUMENT; the others still finish
        self.assertIn("sampling.top_p", p.stderr)
        lines = [json.loads(line) for line in p.stdout.splitlines()]
        self.assertEqual([line["index"] for line in lines], list(range(8)))
        self.assertEqual(lines[0]["output_ids"], [len("plain text prompt") + 100])
        for i in range(6):
            self.assertEqual(lines[1 + i]["output_ids"], [i + 100, i + 100])
            self.assertEqual(lines[1 + i]["prompt_ids"], [i])
        self.assertEqual(lines[7]["code"], "INVALID_ARGUMENT")
        self.assertEqual(len(self.fake.requests), 8)
        by_prompt = {tuple(r.token_ids.ids): r for r in self.fake.requests if r.HasField("token_ids")}
        self.assertEqual(list(by_prompt[(3,)].stop), ["z"])
        self.assertAlmostEqual(by_prompt[(3,)].sampling.temperature, 0.5)
        self.assertGreater(most[0], 1, "prompts were not sent concurrently")
        self.assertLessEqual(most[0], 4)

    def test_exit_codes_and_messages(self):
        self.fake.handler = aborting(grpc.StatusCode.INVALID_ARGUMENT, "max_new_tokens: 9000 exceeds the context 256")
        p = self.cli("generate", "--prompt", "x", "--json")
        self.assertEqual(p.returncode, 2)
        self.assertIn("INVALID_ARGUMENT", p.stderr)
        self.assertIn("max_new_tokens", p.stderr)
        self.fake.handler = aborting(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full")
        p = self.cli("generate", "--prompt", "x")
        self.assertEqual(p.returncode, 1)
        self.assertIn("RESOURCE_EXHAUSTED", p.stderr)
        self.fake.handler = lambda r, c: iter([final(pb.FINISH_REASON_ERROR, "", [], error="stage 1 died")])
        p = self.cli("generate", "--prompt", "x", "--json")
        self.assertEqual(p.returncode, 1)
        self.assertIn("stage 1 died", p.stderr)
        p = self.cli("generate", "--prompt-ids", "1,two")
        self.assertEqual(p.returncode, 2)
        self.assertIn("--prompt-ids", p.stderr)
        p = self.cli("generate", "--prompt", "x", "--prompt-ids", "1")
        self.assertEqual(p.returncode, 2)
        p = subprocess.run([ARGS.baton_client, "generate", "--server", "127.0.0.1:1", "--prompt", "x"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn("UNAVAILABLE", p.stderr)

    def test_deadline(self):
        def slow(request, context):
            time.sleep(3)
            yield final(pb.FINISH_REASON_LENGTH, "", [])
        self.fake.handler = slow
        p = self.cli("generate", "--prompt", "x", "--timeout", "0.3")
        self.assertEqual(p.returncode, 1)
        self.assertIn("DEADLINE_EXCEEDED", p.stderr)

    def test_other_commands(self):
        p = self.cli("tokenize", "--text", "hi", "--add-special-tokens")
        self.assertEqual((p.returncode, p.stdout), (0, "104,105,1\n"), p.stderr)
        p = self.cli("tokenize", "--text", "hi", "--json")
        self.assertEqual(json.loads(p.stdout), {"token_ids": [104, 105]})
        p = self.cli("detokenize", "--ids", "1,104,105", "--skip-special-tokens", "--json")
        self.assertEqual(json.loads(p.stdout), {"text": "hi"})
        self.assertTrue(self.fake.requests[-1].skip_special_tokens)
        p = self.cli("info")
        info = json.loads(p.stdout)
        self.assertEqual((info["architecture"], info["layers_per_stage"], info["kv_num_blocks"]), ("llama", [3, 1], 64))
        p = self.cli("health")
        self.assertEqual((p.returncode, p.stdout), (0, "SERVING\n"))
        self.fake.health[""] = health_pb2.HealthCheckResponse.NOT_SERVING
        p = self.cli("health")
        self.assertEqual((p.returncode, p.stdout), (1, "NOT_SERVING\n"))
        self.fake.unary_error = (grpc.StatusCode.INVALID_ARGUMENT, "token_ids[0]: -1 is negative")
        p = self.cli("detokenize", "--ids", "-1")
        self.assertEqual(p.returncode, 2)
        self.assertIn("token_ids[0]", p.stderr)


# ---------------------------------------------------------------- pip install

class PipInstallTest(unittest.TestCase):
    """`pip install sdk/python` in a fresh venv (offline: Debian's grpcio and
    protobuf through --system-site-packages), then this file's SDK tests
    against the installed package, with no build tree on the path."""

    def test_pip_install_then_sdk_tests(self):
        with tempfile.TemporaryDirectory() as work:
            # A copy keeps pip's build files out of the source tree; the
            # package finds ../../proto as in a checkout.
            shutil.copytree(os.path.join(ARGS.source, "proto"), os.path.join(work, "proto"))
            shutil.copytree(os.path.join(ARGS.source, "sdk", "python"), os.path.join(work, "sdk", "python"),
                            ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
            venv = os.path.join(work, "venv")
            subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv], check=True)
            python = os.path.join(venv, "bin", "python")
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            env["PIP_NO_INDEX"] = "1"
            p = subprocess.run([python, "-m", "pip", "install", "--no-build-isolation", "--no-cache-dir",
                                os.path.join(work, "sdk", "python")], env=env, capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            p = subprocess.run([python, os.path.abspath(__file__), "--expect-installed", "SyncSdkTest",
                                "AsyncSdkTest"], env=env, capture_output=True, text=True, timeout=600, cwd=work)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn("OK", p.stderr)


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baton-client", help="baton-client binary: also run CliTest")
    parser.add_argument("--pip-install", metavar="SOURCE_DIR", dest="source", help="checkout: also run PipInstallTest")
    parser.add_argument("--expect-installed", action="store_true",
                        help="fail unless baton_client and its stubs come from this Python's site-packages")
    ARGS, rest = parser.parse_known_args()
    _import_sdk()
    if ARGS.expect_installed:
        import baton.v1
        for module in (baton_client, baton.v1):
            if not os.path.abspath(module.__file__).startswith(os.path.abspath(sys.prefix)):
                sys.exit(f"{module.__name__} comes from {module.__file__}, not from the venv {sys.prefix}")
    names = rest or ["SyncSdkTest", "AsyncSdkTest"] + (["CliTest"] if ARGS.baton_client else []) + (
        ["PipInstallTest"] if ARGS.source else [])
    unittest.main(argv=[sys.argv[0], "-v"] + names)


if __name__ == "__main__":
    main()
