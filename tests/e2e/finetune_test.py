"""End-to-end test of `baton finetune`: from the command line it reproduces
the fixtures' `train` reference (two 32-token sequences, AdamW lr 1e-3,
wd 0.01, no clipping, constant LR, file order), on one rank and on 2 x 2
ranks under mpirun; the exported Hugging Face folder loads back: `baton
generate` runs on it, and fine-tuning from it starts at the loss the first
run ended with; and a run resumed from its step-2 checkpoint continues with
the same losses as an unbroken one."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import unittest

ARGS = None


def baton(*args, timeout=600):
    return subprocess.run([ARGS.baton, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def mpirun_baton(ranks, *args, timeout=600):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMP_NUM_THREADS="1")
    return subprocess.run([ARGS.mpirun, "-np", str(ranks), ARGS.baton, *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env)


def json_lines(stdout):
    return [json.loads(l) for l in stdout.splitlines() if l.strip().startswith("{")]


def fixture_args(model_dir, data, out, steps=3, lr="1e-3"):
    return ["finetune", "--model", model_dir, "--data", data, "--out", out, "--steps", steps, "--lr", lr,
            "--batch-size", 2, "--seq-len", 32, "--lr-schedule", "constant", "--weight-decay", 0.01,
            "--grad-clip", 0, "--no-shuffle", "--json"]


class FinetuneTest(unittest.TestCase):
    def reference_batch(self, name, tmp):
        with open(os.path.join(ARGS.data, name, "reference.json")) as f:
            train = json.load(f)["train"]
        data = os.path.join(tmp, "batch.jsonl")
        with open(data, "w") as f:
            for ids in train["batch_ids"]:
                f.write(json.dumps({"input_ids": ids}) + "\n")
        return train, data

    def test_pipeline_x_zero3_layout_from_the_command_line(self):
        # pp 2 x dp 2 (ZeRO-3), GPipe with activation checkpointing and the
        # optimizer offloaded: the same numbers as transformers'
        # single-process run.
        for name in ("gpt2-mini", "llama-mini"):
            tmp = tempfile.mkdtemp(prefix="baton-finetune-")
            train, data = self.reference_batch(name, tmp)
            r = mpirun_baton(4, *fixture_args(os.path.join(ARGS.data, name), data, os.path.join(tmp, "out")),
                             "--pp", 2, "--dp", 2, "--zero", 3, "--schedule", "gpipe", "--activation-checkpointing",
                             "--offload-optimizer")
            self.assertEqual(r.returncode, 0, r.stderr)
            lines = json_lines(r.stdout)
            losses = train["losses_before_each_step_and_after_last"]
            for i, s in enumerate(lines[:3]):
                self.assertAlmostEqual(s["loss"], losses[i], delta=1e-4 * losses[i], msg=f"{name} step {i + 1}")
            self.assertAlmostEqual(lines[3]["final_loss"], losses[3], delta=1e-4 * losses[3])
            # Each rank reports its share: ZeRO-3 halves the model states.
            self.assertEqual(r.stderr.count("optimizer"), 4, r.stderr)
            self.assertEqual(r.stderr.count("MB (host)"), 4, r.stderr)

    def test_resume_continues_with_the_same_losses(self):
        tmp = tempfile.mkdtemp(prefix="baton-finetune-")
        common = ["finetune", "--model", os.path.join(ARGS.data, "llama-mini"), "--data",
                  os.path.join(ARGS.data, "corpus.txt"), "--steps", 4, "--lr", "3e-3", "--batch-size", 4,
                  "--seq-len", 32, "--warmup", 1, "--seed", 7, "--pp", 2, "--dp", 2, "--json"]
        whole = mpirun_baton(4, *common, "--out", os.path.join(tmp, "whole"))
        self.assertEqual(whole.returncode, 0, whole.stderr)
        broken = mpirun_baton(4, *common, "--out", os.path.join(tmp, "a"), "--checkpoint-every", 2)
        self.assertEqual(broken.returncode, 0, broken.stderr)
        ckpt = os.path.join(tmp, "a", "checkpoints")
        self.assertEqual(open(os.path.join(ckpt, "latest")).read().strip(), "2")
        resumed = mpirun_baton(4, *common, "--out", os.path.join(tmp, "b"), "--resume", ckpt)
        self.assertEqual(resumed.returncode, 0, resumed.stderr)
        self.assertIn("resumed from", resumed.stderr)
        want = [l["loss"] for l in json_lines(whole.stdout)[2:4]]
        got = [l["loss"] for l in json_lines(resumed.stdout)[:2]]
        self.assertEqual([l["step"] for l in json_lines(resumed.stdout)[:2]], [3, 4])
        for w, g in zip(want, got):
            self.assertAlmostEqual(g, w, delta=1e-6 * w)
        # A fresh run into a folder holding checkpoints is refused, and a
        # resume with other data-stream flags too.
        again = mpirun_baton(4, *common, "--out", os.path.join(tmp, "a"), "--checkpoint-every", 2)
        self.assertEqual(again.returncode, 2, again.stderr)
        self.assertIn("already holds checkpoints", again.stderr)
        other = [a if a != 7 else 8 for a in common]
        mismatch = mpirun_baton(4, *other, "--out", os.path.join(tmp, "c"), "--resume", ckpt)
        self.assertEqual(mismatch.returncode, 2, mismatch.stderr)
        self.assertIn("seed", mismatch.stderr)

    def check_model(self, name, export_tol):
        model_dir = os.path.join(ARGS.data, name)
        with open(os.path.join(model_dir, "reference.json")) as f:
            train = json.load(f)["train"]
        tmp = tempfile.mkdtemp(prefix="baton-finetune-")
        data = os.path.join(tmp, "batch.jsonl")
        with open(data, "w") as f:
            for ids in train["batch_ids"]:
                f.write(json.dumps({"input_ids": ids}) + "\n")
        out = os.path.join(tmp, "out")
        r = baton(*fixture_args(model_dir, data, out))
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
        steps, done = lines[:-1], lines[-1]
        losses = train["losses_before_each_step_and_after_last"]
        norms = train["global_grad_l2_norm_each_step"]
        self.assertEqual(len(steps), 3)
        for i, s in enumerate(steps):
            self.assertAlmostEqual(s["loss"], losses[i], delta=1e-4 * losses[i], msg=f"{name} loss, step {i + 1}")
            self.assertAlmostEqual(s["grad_norm"], norms[i], delta=1e-4 * norms[i], msg=f"{name} grad norm {i + 1}")
            self.assertEqual(s["lr"], 1e-3)
        self.assertTrue(done["done"])
        self.assertAlmostEqual(done["final_loss"], losses[3], delta=1e-4 * losses[3], msg=f"{name} loss after 3 steps")

        for f in ("config.json", "model.safetensors", "tokenizer.json"):
            self.assertTrue(os.path.exists(os.path.join(out, f)), f)
        g = baton("generate", "--model", out, "--prompt-ids", ",".join(map(str, train["batch_ids"][0][:8])),
                  "--max-new-tokens", 8, "--json")
        self.assertEqual(g.returncode, 0, g.stderr)
        self.assertEqual(len(json.loads(g.stdout)["output_ids"]), 8)
        # The exported weights are the trained ones: a (negligible-lr) run
        # from the export starts at the loss the first run ended with.
        # export_tol allows for rounding to the checkpoint's dtype (bf16).
        r2 = baton(*fixture_args(out, data, os.path.join(tmp, "out2"), steps=1, lr="1e-12"))
        self.assertEqual(r2.returncode, 0, r2.stderr)
        first = json.loads(r2.stdout.splitlines()[0])
        self.assertAlmostEqual(first["loss"], done["final_loss"], delta=export_tol * done["final_loss"])

    def test_gpt2_mini(self):
        self.check_model("gpt2-mini", 1e-5)  # float32 checkpoint: exact round trip

    def test_llama_mini(self):
        self.check_model("llama-mini", 2e-2)  # bf16 checkpoint

    def test_text_data_trains(self):
        tmp = tempfile.mkdtemp(prefix="baton-finetune-")
        r = baton("finetune", "--model", os.path.join(ARGS.data, "llama-mini"), "--data",
                  os.path.join(ARGS.data, "corpus.txt"), "--out", os.path.join(tmp, "out"), "--steps", 20, "--lr", 3e-3,
                  "--batch-size", 4, "--micro-batch-size", 2, "--seq-len", 64, "--lr-schedule", "cosine",
                  "--warmup", 2, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = [json.loads(l) for l in r.stdout.splitlines()]
        self.assertEqual(lines[0]["lr"], 0.0)  # warmup starts at 0
        # Batches differ from step to step, so compare averages: from ~8.0
        # (random weights) the loss falls well over a nat in 20 steps.
        first, last = [l["loss"] for l in lines[:2]], [l["loss"] for l in lines[15:20]]
        self.assertLess(sum(last) / len(last), sum(first) / len(first) - 1.0)

    def test_bad_flags_exit_2(self):
        tmp = tempfile.mkdtemp(prefix="baton-finetune-")
        corpus = os.path.join(ARGS.data, "corpus.txt")
        for extra, word in ((["--lr-schedule", "linear"], "linear"), (["--seq-len", 1], "--seq-len"),
                            (["--batch-size", 4, "--micro-batch-size", 3], "--micro-batch-size")):
            r = baton("finetune", "--model", os.path.join(ARGS.data, "gpt2-mini"), "--data", corpus, "--out",
                      os.path.join(tmp, "o"), "--steps", 1, *extra)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(word, r.stderr)
        missing = baton("finetune", "--data", os.path.join(tmp, "nope.txt"), "--out", os.path.join(tmp, "o"))
        self.assertNotEqual(missing.returncode, 0)
        self.assertIn("nope.txt", missing.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--baton", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--mpirun", default="mpirun")
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest)
