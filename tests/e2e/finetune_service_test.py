"""The FineTuning gRPC service end to end: `mpirun -np 2 baton-server
--finetune-dir DIR` on the bundled llama-mini, driven through the Python SDK,
the raw stubs and `baton-client finetune`.

What a client sees is checked against independent facts: the losses a job
streams equal those of the same `baton finetune --json` run by hand; the
output folder loads in `baton generate`; a cancelled job's processes are gone
from /proc; generation answers the fixture's greedy tokens while a job runs."""
import argparse
import asyncio
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc

ARGS = None
baton_client = None
ft = ft_grpc = health_pb = health_grpc = None


def data(name):
    return os.path.join(ARGS.data, name)


def reference():
    with open(os.path.join(data("llama-mini"), "reference.json")) as f:
        return json.load(f)


def processes_mentioning(text):
    """Pids of live processes whose command line contains `text` (zombies have none)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    pids.append(int(entry))
        except OSError:
            pass
    return pids


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill(0): count it as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Server:
    """One baton-server job (under mpirun when np > 1) with a fresh fine-tuning folder."""

    def __init__(self, *extra, np=2, finetune=True):
        self.dir = os.path.realpath(tempfile.mkdtemp(prefix="baton-ft-service-"))
        shutil.copy(data("corpus.txt"), os.path.join(self.dir, "corpus.txt"))
        self.log = tempfile.NamedTemporaryFile(prefix="baton-server-", suffix=".log", delete=False)
        cmd = [ARGS.server, "--model", data("llama-mini"), "--port", "0", "--metrics-port", "-1", "--host",
               "127.0.0.1", "--threads", "1", "--kv-cache-mb", "8", *map(str, extra)]
        if finetune:
            cmd += ["--finetune-dir", self.dir, "--baton-binary", ARGS.baton]
        if np > 1:
            cmd = [ARGS.mpirun, "--oversubscribe", "--allow-run-as-root", "-np", str(np), *cmd]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on [^:]+:(\d+), metrics on (-?\d+), pid (\d+)", line)
        if not m:
            self.proc.kill()
            shutil.rmtree(self.dir, ignore_errors=True)
            raise RuntimeError(f"server did not start: {line!r}\n{self.stderr()}")
        self.port, self.pid = int(m[1]), int(m[3])
        self.target = f"127.0.0.1:{self.port}"
        self.client = baton_client.Client(self.target)
        self.client.wait_until_serving(timeout=120)
        self.channel = grpc.insecure_channel(self.target)
        self.stub = ft_grpc.FineTuningStub(self.channel)

    def stderr(self):
        with open(self.log.name) as f:
            return f.read()[-6000:]

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.client.close()
        self.channel.close()
        self.proc.stdout.close()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


SHORT = dict(steps=6, seq_len=32, batch_size=2, lr=1e-3, lr_schedule="constant", seed=7)
LONG = dict(steps=1000000, seq_len=32, batch_size=2)


def first_step(client, job_id, timeout=120):
    """Waits for the job's first step event, then stops watching."""
    with client.watch_finetune_job(job_id, timeout=timeout) as events:
        for event in events:
            if isinstance(event, baton_client.FinetuneStep):
                return event
            raise AssertionError(f"job ended before its first step: {event}")
    raise AssertionError("watch ended without an event")


class FineTuning(unittest.TestCase):
    """A server that runs jobs directly (no launcher): one rank, at most one at a time."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.client = cls.server.client
        cls.dir = cls.server.dir

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_short_job_streams_each_step_succeeds_and_its_output_loads(self):
        job = self.client.create_finetune_job("corpus.txt", "run-sdk", **SHORT)
        self.assertIn(job.state, ("queued", "running"))
        self.assertEqual(job.out, os.path.join(self.dir, "run-sdk"))
        self.assertEqual(job.total_steps, 6)
        self.assertEqual(job.request["steps"], 6)
        self.assertEqual(job.request["out"], "run-sdk")
        self.assertTrue(job.log_path.startswith(os.path.join(self.dir, job.id)), job.log_path)

        steps, final = self.client.wait_finetune_job(job.id, timeout=300)
        self.assertEqual([s.step for s in steps], [1, 2, 3, 4, 5, 6])
        for s in steps:
            self.assertTrue(math.isfinite(s.loss) and s.loss > 0, s)
            self.assertEqual(s.lr, 1e-3)
            self.assertGreater(s.tokens_per_s, 0)
        self.assertEqual(final.state, "succeeded", final.error)
        self.assertEqual((final.step, final.total_steps, final.pid), (6, 6, 0))
        self.assertTrue(math.isfinite(final.final_loss))
        self.assertEqual(final.loss, steps[-1].loss)
        self.assertTrue(0 < final.create_time <= final.start_time <= final.finish_time)

        # The same run by hand: the service passed every flag through.
        by_hand = os.path.join(self.dir, "by-hand")
        r = subprocess.run([ARGS.baton, "finetune", "--model", data("llama-mini"), "--data",
                            os.path.join(self.dir, "corpus.txt"), "--out", by_hand, "--steps", "6", "--seq-len", "32",
                            "--batch-size", "2", "--lr", "0.001", "--lr-schedule", "constant", "--seed", "7",
                            "--json"], capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
        for mine, theirs in zip(steps, lines[:-1]):
            self.assertAlmostEqual(mine.loss, theirs["loss"], delta=1e-5 * theirs["loss"])
            self.assertAlmostEqual(mine.grad_norm, theirs["grad_norm"], delta=1e-5 * theirs["grad_norm"])
        self.assertAlmostEqual(final.final_loss, lines[-1]["final_loss"], delta=1e-5 * lines[-1]["final_loss"])

        # A late watcher sees every step, then the final state.
        events = list(self.client.watch_finetune_job(job.id, timeout=60))
        self.assertEqual([e.step for e in events[:-1]], [1, 2, 3, 4, 5, 6])
        self.assertEqual([e.loss for e in events[:-1]], [s.loss for s in steps])
        self.assertEqual(events[-1].state, "succeeded")
        self.assertEqual(self.client.get_finetune_job(job.id).state, "succeeded")
        self.assertIn(job.id, [j.id for j in self.client.list_finetune_jobs()])

        async def watch_async():
            async with baton_client.AsyncClient(self.server.target) as client:
                return await client.wait_finetune_job(job.id, timeout=60)

        async_steps, async_final = asyncio.run(watch_async())
        self.assertEqual(async_steps, steps)
        self.assertEqual(async_final.state, "succeeded")

        ids = reference()["prompts"][0]["ids"][:8]
        g = subprocess.run([ARGS.baton, "generate", "--model", job.out, "--prompt-ids", ",".join(map(str, ids)),
                            "--max-new-tokens", "8", "--temperature", "0", "--ignore-eos", "--json"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(g.returncode, 0, g.stderr)
        self.assertEqual(len(json.loads(g.stdout)["output_ids"]), 8)

    def test_cancel_ends_the_process_queue_and_generation_keeps_working(self):
        long = self.client.create_finetune_job("corpus.txt", "run-long", **LONG)
        first_step(self.client, long.id)
        running = self.client.get_finetune_job(long.id)
        self.assertEqual(running.state, "running")
        self.assertGreater(running.pid, 0)
        self.assertTrue(alive(running.pid))
        self.assertTrue(processes_mentioning(os.path.join(self.dir, "run-long")))

        # Generation is served while the job trains.
        p = reference()["prompts"][1]
        result = self.client.generate(token_ids=p["ids"], max_new_tokens=24, temperature=0.0, ignore_eos=True,
                                      timeout=120)
        self.assertEqual(list(result.output_ids), p["greedy"])
        self.assertEqual(self.client.get_finetune_job(long.id).state, "running")

        # One job at a time: the next one waits, and cancelling it never starts it.
        queued = self.client.create_finetune_job("corpus.txt", "run-queued", steps=3, seq_len=32, batch_size=2)
        self.assertEqual(queued.state, "queued")
        cancelled = self.client.cancel_finetune_job(queued.id, timeout=30)
        self.assertEqual((cancelled.state, cancelled.start_time, cancelled.pid), ("cancelled", 0, 0))

        # A watcher that is following the job gets its end.
        watched = {}
        watcher = threading.Thread(target=lambda: watched.update(r=self.client.wait_finetune_job(long.id, timeout=120)))
        watcher.start()
        time.sleep(0.5)
        started = time.time()
        cancelled = self.client.cancel_finetune_job(long.id, timeout=60)
        self.assertLess(time.time() - started, 30)
        self.assertEqual(cancelled.state, "cancelled")
        self.assertEqual(cancelled.pid, 0)
        self.assertFalse(alive(running.pid), f"pid {running.pid} still alive after CancelJob")
        self.assertEqual(processes_mentioning(os.path.join(self.dir, "run-long")), [])
        watcher.join(timeout=60)
        steps, final = watched["r"]
        self.assertEqual(final.state, "cancelled")
        self.assertGreaterEqual(len(steps), 1)
        self.assertEqual(steps[0].step, 1)
        # Cancelling again changes nothing; the queued job never ran.
        self.assertEqual(self.client.cancel_finetune_job(long.id).state, "cancelled")
        self.assertFalse(os.path.exists(os.path.join(self.dir, "run-queued")))

    def test_failed_job_reports_exit_and_log(self):
        job = self.client.create_finetune_job("corpus.txt", "run-bad", steps=2, seq_len=100000, batch_size=1)
        _, final = self.client.wait_finetune_job(job.id, timeout=120)
        self.assertEqual(final.state, "failed")
        self.assertIn("exited with code 2", final.error)
        self.assertIn("seq-len", final.error)  # the binary's own message, from the end of the log
        with open(final.log_path) as f:
            self.assertIn("seq-len", f.read())

    def test_paths_that_leave_the_finetune_dir_are_invalid_argument(self):
        outside = tempfile.mkdtemp(prefix="baton-ft-outside-")
        os.symlink(outside, os.path.join(self.dir, "escape_link"))
        cases = [
            (dict(data="corpus.txt", out="../escape"), "out"),
            (dict(data="corpus.txt", out=os.path.join(outside, "abs")), "out"),
            (dict(data="corpus.txt", out="escape_link/x"), "out"),
            (dict(data="corpus.txt", out=self.dir), "out"),
            (dict(data="../../../../../../etc/passwd", out="ok"), "data"),
            (dict(data="/etc/hostname", out="ok"), "data"),
            (dict(data="missing.txt", out="ok"), "data"),
            (dict(data="corpus.txt", out="ok", resume="../x"), "resume"),
        ]
        for kwargs, field in cases:
            with self.subTest(**kwargs):
                with self.assertRaises(baton_client.InvalidArgumentError) as ctx:
                    self.client.create_finetune_job(steps=1, **kwargs)
                self.assertEqual(ctx.exception.field, field, ctx.exception.message)
        self.assertEqual(os.listdir(outside), [])
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(self.dir), "escape")))
        # The raw gRPC code, without the SDK's mapping.
        with self.assertRaises(grpc.RpcError) as ctx:
            self.server.stub.CreateJob(ft.CreateJobRequest(data="corpus.txt", out="../escape"), timeout=30)
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("../escape", ctx.exception.details())
        shutil.rmtree(outside)

    def test_bad_hyperparameters_are_named(self):
        cases = [(dict(steps=0), "steps"), (dict(lr=-1.0), "lr"), (dict(lr=float("nan")), "lr"),
                 (dict(seq_len=1), "seq_len"), (dict(lr_schedule="linear"), "lr_schedule"), (dict(zero=2), "zero"),
                 (dict(schedule="zigzag"), "schedule"), (dict(batch_size=4, micro_batch_size=3), "micro_batch_size"),
                 (dict(pp=0), "pp"), (dict(warmup=-1), "warmup"), (dict(grad_clip=float("inf")), "grad_clip"),
                 (dict(model="/nonexistent-model"), "model")]
        for kwargs, field in cases:
            with self.subTest(**kwargs):
                with self.assertRaises(baton_client.InvalidArgumentError) as ctx:
                    self.client.create_finetune_job("corpus.txt", "bad", **kwargs)
                self.assertEqual(ctx.exception.field, field, ctx.exception.message)
        with self.assertRaises(baton_client.FailedPreconditionError) as ctx:
            self.client.create_finetune_job("corpus.txt", "bad", pp=2)
        self.assertIn("--finetune-launcher", ctx.exception.message)
        with self.assertRaises(TypeError):
            self.client.create_finetune_job("corpus.txt", "bad", learning_rate=1.0)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "bad")))

    def test_unknown_job_is_not_found(self):
        for call in (self.client.get_finetune_job, self.client.cancel_finetune_job,
                     lambda i: list(self.client.watch_finetune_job(i, timeout=30))):
            with self.assertRaises(baton_client.NotFoundError) as ctx:
                call("ft-000000000000")
            self.assertIn("ft-000000000000", ctx.exception.message)
        with self.assertRaises(baton_client.InvalidArgumentError):
            self.client.get_finetune_job("")

    def test_baton_client_finetune_commands(self):
        base = [ARGS.client, "finetune"]
        server = ["--server", self.server.target]
        r = subprocess.run(base + ["create", *server, "--data", "corpus.txt", "--out", "run-cli", "--steps", "3",
                                   "--seq-len", "32", "--batch-size", "2", "--lr", "0.002", "--watch", "--json"],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
        created, steps, final = lines[0], lines[1:-1], lines[-1]
        self.assertIn(created["state"], ("JOB_STATE_QUEUED", "JOB_STATE_RUNNING"))
        self.assertEqual([s["step"] for s in steps], [1, 2, 3])
        self.assertTrue(all(math.isfinite(s["loss"]) for s in steps))
        self.assertEqual(final["state"], "JOB_STATE_SUCCEEDED")
        self.assertEqual(final["id"], created["id"])
        self.assertEqual(final["request"]["lr"], 0.002)

        r = subprocess.run(base + ["get", created["id"], *server, "--json"], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["state"], "JOB_STATE_SUCCEEDED")
        r = subprocess.run(base + ["watch", created["id"], *server], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(re.findall(r"^step \d+ ", r.stdout, re.M)), 3)
        self.assertIn("SUCCEEDED", r.stdout)
        r = subprocess.run(base + ["list", *server, "--json"], capture_output=True, text=True, timeout=60)
        self.assertIn(created["id"], [json.loads(l)["id"] for l in r.stdout.splitlines()])

        r = subprocess.run(base + ["get", "ft-000000000000", *server], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn("ft-000000000000", r.stderr)
        r = subprocess.run(base + ["create", *server, "--data", "corpus.txt", "--out", "../escape"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertIn("out: path '../escape'", r.stderr)


class WithLauncher(unittest.TestCase):
    """Jobs started through a nested mpirun (the server itself runs under mpirun)."""

    def test_nested_mpirun_job_succeeds_and_sigterm_cancels_running_jobs(self):
        server = Server("--finetune-launcher", "mpirun --allow-run-as-root --oversubscribe -np {ranks}",
                        "--max-finetune-jobs", "2")
        try:
            client = server.client
            # pp=2: the launcher gets {ranks} = 2, and both ranks report their stage in the job's log.
            job = client.create_finetune_job("corpus.txt", "run-mpi", steps=3, seq_len=32, batch_size=2, pp=2)
            steps, final = client.wait_finetune_job(job.id, timeout=300)
            self.assertEqual(final.state, "succeeded", final.error)
            self.assertEqual([s.step for s in steps], [1, 2, 3])
            self.assertTrue(os.path.isfile(os.path.join(final.out, "model.safetensors")))
            with open(final.log_path) as f:
                log = f.read()
            self.assertIn("rank 1:", log)

            # Two long jobs run at once; SIGTERM to the server ends both, and their watchers hear it.
            long = [client.create_finetune_job("corpus.txt", f"run-long-{i}", **LONG) for i in range(2)]
            for j in long:
                first_step(client, j.id)
            pids = [client.get_finetune_job(j.id).pid for j in long]
            self.assertTrue(all(alive(pid) for pid in pids))
            watched = {}
            watchers = [threading.Thread(target=lambda i=i: watched.update({i: client.wait_finetune_job(
                long[i].id, timeout=120)})) for i in range(2)]
            for w in watchers:
                w.start()
            time.sleep(0.5)
            os.kill(server.pid, signal.SIGTERM)
            self.assertEqual(server.proc.wait(timeout=90), 0, server.stderr())
            for w in watchers:
                w.join(timeout=30)
            for i in range(2):
                self.assertEqual(watched[i][1].state, "cancelled", server.stderr())
                self.assertFalse(alive(pids[i]))
                self.assertEqual(processes_mentioning(os.path.join(server.dir, f"run-long-{i}")), [])
        finally:
            server.stop()


class NotEnabled(unittest.TestCase):
    def test_without_finetune_dir_every_call_is_failed_precondition(self):
        server = Server(np=1, finetune=False)
        try:
            with self.assertRaises(baton_client.FailedPreconditionError) as ctx:
                server.client.create_finetune_job("corpus.txt", "x", steps=1)
            self.assertIn("--finetune-dir", ctx.exception.message)
            with self.assertRaises(baton_client.FailedPreconditionError):
                server.client.list_finetune_jobs()
        finally:
            server.stop()

    def test_missing_baton_binary_is_a_startup_error(self):
        work = tempfile.mkdtemp(prefix="baton-ft-service-")
        r = subprocess.run([ARGS.server, "--model", data("llama-mini"), "--port", "0", "--metrics-port", "-1",
                            "--finetune-dir", work, "--baton-binary", "/nonexistent/baton"],
                           capture_output=True, text=True, timeout=120)
        shutil.rmtree(work)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--baton-binary", r.stderr)


def main():
    global ARGS, baton_client, ft, ft_grpc
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--client", required=True)
    parser.add_argument("--baton", required=True)
    parser.add_argument("--mpirun", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--stubs", required=True, help="folder of the generated Python stubs")
    parser.add_argument("--sdk", required=True, help="sdk/python")
    ARGS, rest = parser.parse_known_args()
    sys.path[:0] = [ARGS.stubs, ARGS.sdk]
    import baton_client as sdk
    from baton.v1 import finetuning_pb2, finetuning_pb2_grpc
    baton_client, ft, ft_grpc = sdk, finetuning_pb2, finetuning_pb2_grpc
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)


if __name__ == "__main__":
    main()
