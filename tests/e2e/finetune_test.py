"""End-to-end test of `baton finetune`: from the command line it reproduces
the fixtures' `train` reference (two 32-token sequences, AdamW lr 1e-3,
wd 0.01, no clipping, constant LR, file order), and the exported Hugging Face
folder loads back: `baton generate` runs on it, and fine-tuning from it starts
at the loss the first run ended with."""
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


def fixture_args(model_dir, data, out, steps=3, lr="1e-3"):
    return ["finetune", "--model", model_dir, "--data", data, "--out", out, "--steps", steps, "--lr", lr,
            "--batch-size", 2, "--seq-len", 32, "--lr-schedule", "constant", "--weight-decay", 0.01,
            "--grad-clip", 0, "--no-shuffle", "--json"]


class FinetuneTest(unittest.TestCase):
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
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest)
