"""Pipeline parallelism end to end: `mpirun -np P baton ...` must give what
one rank gives (greedy text, logits, sampled batches), split the layers as
asked, keep only its own weights per rank, and end the whole job quickly
when a rank dies."""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

ARGS = None


def model(name):
    return os.path.join(ARGS.data, name)


def reference(name):
    with open(os.path.join(model(name), "reference.json")) as f:
        return json.load(f)


def run(np, *args, timeout=300):
    cmd = [ARGS.baton, *map(str, args)]
    if np > 1:
        cmd = [ARGS.mpirun, "--oversubscribe", "--allow-run-as-root", "-np", str(np), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def json_lines(stdout):
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


class PipelineTestCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="baton-pipe-")

    def ok(self, r):
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        return r

    def prompts_file(self, lines):
        path = os.path.join(self.tmp, f"prompts{len(os.listdir(self.tmp))}.jsonl")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path


class SameAsOneRank(PipelineTestCase):
    def test_greedy_every_fixture_prompt(self):
        for name in ("gpt2-mini", "llama-mini"):
            ref = reference(name)
            path = self.prompts_file([json.dumps({"prompt": p["text"]}) for p in ref["prompts"]])
            for np in (2, 3, 4):
                r = self.ok(run(np, "generate", "--model", model(name), "--prompts-file", path, "--max-new-tokens", 24,
                                "--temperature", 0, "--ignore-eos"))
                out = json_lines(r.stdout)
                self.assertEqual(len(out), len(ref["prompts"]))
                for o, p in zip(out, ref["prompts"]):
                    self.assertEqual(o["output_ids"], p["greedy"], f"{name} np={np}")
                    self.assertEqual(o["text"], p["greedy_text"], f"{name} np={np}")

    def test_logits_equal_one_rank(self):
        for name in ("gpt2-mini", "llama-mini"):
            ids = ",".join(map(str, reference(name)["prompts"][2]["ids"]))
            one = json.loads(self.ok(run(1, "logits", "--model", model(name), "--prompt-ids", ids, "--top-k", 20,
                                         "--json")).stdout)
            for np in (2, 3, 4):
                many = json.loads(self.ok(run(np, "logits", "--model", model(name), "--prompt-ids", ids, "--top-k", 20,
                                              "--json")).stdout)
                self.assertEqual(many["top_ids"], one["top_ids"], f"{name} np={np}")
                for a, b in zip(many["top_logits"], one["top_logits"]):
                    for x, y in zip(a, b):
                        self.assertAlmostEqual(x, y, delta=1e-5)

    def test_sampled_batch_through_micro_batches_equals_each_alone(self):
        ref = reference("gpt2-mini")
        lines = [json.dumps({"prompt": p["text"], "temperature": 0.8, "top_p": 0.9, "seed": 100 + i,
                             "max_new_tokens": 12 + 2 * i, "ignore_eos": True})
                 for i, p in enumerate(ref["prompts"] * 2)]
        batch = json_lines(self.ok(run(2, "generate", "--model", model("gpt2-mini"), "--prompts-file",
                                       self.prompts_file(lines), "--micro-batches", 3)).stdout)
        self.assertEqual(len(batch), len(lines))
        for i, line in enumerate(lines):
            alone = json_lines(self.ok(run(1, "generate", "--model", model("gpt2-mini"), "--prompts-file",
                                           self.prompts_file([line]))).stdout)
            self.assertEqual(batch[i]["output_ids"], alone[0]["output_ids"], f"prompt {i}")
            self.assertEqual(batch[i]["index"], i)


class Partition(PipelineTestCase):
    def stage_lines(self, stderr):
        found = re.findall(r"stage (\d+)/(\d+): layers \[(\d+), (\d+)\)[^,]*, weights ([\d.]+) MB", stderr)
        return sorted((int(s), int(a), int(b), float(mb)) for s, _, a, b, mb in found)

    def test_uneven_split_and_override_give_the_same_tokens(self):
        args = ("generate", "--model", model("llama-mini"), "--prompt", "The quick brown fox", "--max-new-tokens", 16,
                "--temperature", 0, "--ignore-eos", "--json")
        auto = self.ok(run(3, *args))
        ranges = [(a, b) for _, a, b, _ in self.stage_lines(auto.stderr)]
        self.assertEqual(sorted(b - a for a, b in ranges), [1, 1, 2])  # 4 layers over 3 stages
        self.assertEqual([a for a, _ in ranges[1:]], [b for _, b in ranges[:-1]])  # contiguous
        override = self.ok(run(3, *args, "--layers-per-stage", "1,1,2"))
        self.assertEqual([(s, a, b) for s, a, b, _ in self.stage_lines(override.stderr)],
                         [(0, 0, 1), (1, 1, 2), (2, 2, 4)])
        self.assertEqual(json_lines(auto.stdout), json_lines(override.stdout))
        self.assertEqual(json_lines(auto.stdout)[0]["output_ids"], json_lines(self.ok(run(1, *args)).stdout)[0]["output_ids"])

    def test_bad_splits_are_clear_errors(self):
        base = ("generate", "--model", model("llama-mini"), "--prompt-ids", "1,2")
        r = run(2, *base, "--layers-per-stage", "1,2")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("sums to 3", r.stderr)
        r = run(2, *base, "--stages", "3")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--stages 3", r.stderr)
        r = run(1, *base, "--layers-per-stage", "2,2")
        self.assertEqual(r.returncode, 2)
        self.assertIn("2 entries for 1 stages", r.stderr)
        r = run(5, *base)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("5 pipeline stages", r.stderr)

    def test_each_rank_keeps_only_its_weights(self):
        totals = {}
        for np in (1, 2, 4):
            stages = self.stage_lines(self.ok(run(np, "generate", "--model", model("llama-mini"), "--prompt-ids", "1,2",
                                                  "--max-new-tokens", 1)).stderr)
            self.assertEqual(len(stages), np)
            totals[np] = [mb for *_, mb in stages]
        whole = totals[1][0]
        for np in (2, 4):
            self.assertLess(max(totals[np]), 0.75 * whole, f"np={np}: {totals[np]}")
            # The tied embedding sits on the first stage and, as the LM head, on the last.
            embed_mb = 2048 * 256 * 4 / 1e6
            self.assertAlmostEqual(sum(totals[np]), whole + embed_mb, delta=0.3)
        print("per-rank weight MB:", json.dumps(totals), file=sys.stderr)


class DeadRank(PipelineTestCase):
    def test_killed_rank_ends_the_job_quickly(self):
        path = self.prompts_file([json.dumps({"prompt_ids": [1 + i, 2, 3], "max_new_tokens": 500, "ignore_eos": True})
                                  for i in range(8)])
        cmd = [ARGS.mpirun, "--oversubscribe", "--allow-run-as-root", "-np", "3", ARGS.baton, "generate", "--model",
               model("gpt2-mini"), "--prompts-file", path]
        job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        victim = None
        deadline = time.time() + 60
        while victim is None and time.time() < deadline and job.poll() is None:
            time.sleep(0.2)
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open(f"/proc/{pid}/environ", "rb") as f:
                        env = f.read().split(b"\0")
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        argv0 = f.read().split(b"\0")[0]
                except OSError:
                    continue
                if argv0.endswith(b"baton") and b"OMPI_COMM_WORLD_RANK=1" in env:
                    victim = int(pid)
        self.assertIsNotNone(victim, "rank 1 never started")
        time.sleep(1.0)  # let it get into the middle of generating
        self.assertIsNone(job.poll(), "the job finished before the kill; make it longer")
        os.kill(victim, signal.SIGKILL)
        killed_at = time.time()
        try:
            _, err = job.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            job.kill()
            self.fail("job still running 30 s after a rank was killed")
        self.assertLess(time.time() - killed_at, 10.0)
        self.assertNotEqual(job.returncode, 0, err[-2000:])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--baton", required=True)
    parser.add_argument("--mpirun", required=True)
    parser.add_argument("--data", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)
