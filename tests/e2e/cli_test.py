"""End-to-end tests of the `baton` CLI against the fixtures, and of every
bad-input path: each must exit with code 2 and a message naming the fault,
never crash (the sanitizer build runs this too)."""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

ARGS = None


def baton(*args, timeout=300):
    return subprocess.run([ARGS.baton, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def model(name):
    return os.path.join(ARGS.data, name)


def reference(name):
    with open(os.path.join(model(name), "reference.json")) as f:
        return json.load(f)


def write_safetensors(path, tensors, data_len=None, raw_header=None):
    """tensors: name -> (dtype, shape, begin, end); data is zero bytes."""
    header = raw_header if raw_header is not None else json.dumps(
        {n: {"dtype": d, "shape": s, "data_offsets": [b, e]} for n, (d, s, b, e) in tensors.items()}).encode()
    if data_len is None:
        data_len = max([e for (_, _, _, e) in tensors.values()] + [0])
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + b"\0" * data_len)


class CliTestCase(unittest.TestCase):
    def assertOk(self, r):
        self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def assertBadInput(self, r, *needles):
        self.assertEqual(r.returncode, 2, f"stdout={r.stdout!r} stderr={r.stderr!r}")
        for needle in needles:
            self.assertIn(needle, r.stderr)
        for crash in ("AddressSanitizer", "runtime error", "terminate called", "Segmentation"):
            self.assertNotIn(crash, r.stderr)


class GenerateMatchesReference(CliTestCase):
    def test_greedy_text_prompt_matches_transformers(self):
        for name in ("gpt2-mini", "llama-mini"):
            for p in reference(name)["prompts"]:
                r = self.assertOk(baton("generate", "--model", model(name), "--prompt", p["text"],
                                        "--max-new-tokens", 24, "--temperature", 0, "--ignore-eos", "--json"))
                out = json.loads(r.stdout)
                self.assertEqual(out["prompt_ids"], p["ids"], name)
                self.assertEqual(out["output_ids"], p["greedy"], name)
                self.assertEqual(out["text"], p["greedy_text"], name)
                self.assertEqual(out["finish_reason"], "length")

    def test_prompt_ids_and_logits(self):
        p = reference("llama-mini")["prompts"][0]
        ids = ",".join(map(str, p["ids"]))
        r = self.assertOk(baton("logits", "--model", model("llama-mini"), "--prompt-ids", ids, "--top-k", 20, "--json"))
        out = json.loads(r.stdout)
        self.assertEqual(len(out["top_ids"]), len(p["ids"]))
        for pos, (got_ids, got, want) in enumerate(zip(out["top_ids"], out["top_logits"],
                                                       p["top20_logits_each_position"])):
            for a, b in zip(got, want):
                self.assertAlmostEqual(a, b, delta=1e-4 + 1e-5, msg=f"position {pos}")
            self.assertEqual(got_ids[0], p["top20_ids_each_position"][pos][0])

    def test_default_model_runs(self):
        r = self.assertOk(baton("generate", "--prompt", "Hello", "--max-new-tokens", 4, "--json"))
        self.assertEqual(len(json.loads(r.stdout)["output_ids"]), 4)


class Sampling(CliTestCase):
    def run_sampled(self, seed):
        r = self.assertOk(baton("generate", "--model", model("gpt2-mini"), "--prompt", "The license", "--temperature",
                                1.0, "--top-k", 50, "--top-p", 0.95, "--min-p", 0.01, "--repetition-penalty", 1.2,
                                "--seed", seed, "--max-new-tokens", 16, "--ignore-eos", "--json"))
        return json.loads(r.stdout)["output_ids"]

    def test_seed_reproducible(self):
        self.assertEqual(self.run_sampled(7), self.run_sampled(7))
        self.assertNotEqual(self.run_sampled(7), self.run_sampled(8))

    def test_stop_string_cuts_text(self):
        p = reference("gpt2-mini")["prompts"][2]
        stop = p["greedy_text"][10:16]
        r = self.assertOk(baton("generate", "--model", model("gpt2-mini"), "--prompt", p["text"], "--temperature", 0,
                                "--max-new-tokens", 24, "--ignore-eos", "--stop", stop, "--json"))
        out = json.loads(r.stdout)
        self.assertEqual(out["finish_reason"], "stop")
        self.assertEqual(out["text"], p["greedy_text"][:p["greedy_text"].find(stop)])
        self.assertEqual(out["output_ids"], p["greedy"][:len(out["output_ids"])])

    def test_eos_ends_generation(self):
        # Force EOS (id 0 for the mini models) by making it the only choice.
        r = self.assertOk(baton("generate", "--model", model("gpt2-mini"), "--prompt-ids", "40,1766",
                                "--max-new-tokens", 64, "--temperature", 0, "--json"))
        out = json.loads(r.stdout)
        if 0 in out["output_ids"]:
            self.assertEqual(out["finish_reason"], "eos")
            self.assertEqual(out["output_ids"][-1], 0)
        else:
            self.assertEqual(out["finish_reason"], "length")


class BadRequests(CliTestCase):
    def gen(self, *extra):
        return baton("generate", "--model", model("gpt2-mini"), *extra)

    def test_request_fields(self):
        self.assertBadInput(self.gen("--prompt-ids", "1,2,5000"), "5000", "vocabulary")
        self.assertBadInput(self.gen("--prompt-ids", "1,-3"), "-3")
        self.assertBadInput(self.gen("--prompt-ids", "1,x"), "--prompt-ids", "'x'")
        self.assertBadInput(self.gen("--prompt", ""), "--prompt")
        self.assertBadInput(self.gen("--prompt-ids", ",".join(["5"] * 600)), "context of 512")
        self.assertBadInput(self.gen("--prompt-ids", "1,2", "--max-new-tokens", 600), "max_new_tokens")
        self.assertBadInput(self.gen("--prompt-ids", "1", "--temperature", -1), "temperature")
        self.assertBadInput(self.gen("--prompt-ids", "1", "--top-p", 0), "top_p")
        self.assertBadInput(self.gen("--prompt-ids", "1", "--top-p", 1.5), "top_p")
        self.assertBadInput(self.gen("--prompt-ids", "1", "--top-k", -2), "top_k")
        self.assertBadInput(self.gen("--prompt-ids", "1", "--repetition-penalty", 0), "repetition_penalty")
        self.assertBadInput(self.gen("--prompt-ids", "1", "--stop", ""), "stop")
        self.assertBadInput(self.gen("--prompt-ids", "1", "--no-such-flag"))
        self.assertBadInput(baton("generate", "--model", "/nonexistent/model", "--prompt-ids", "1"), "/nonexistent/model")


class BadCheckpoints(CliTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="baton-e2e-")
        self.model = os.path.join(self.dir, "m")
        shutil.copytree(model("gpt2-mini"), self.model)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def gen(self):
        return baton("generate", "--model", self.model, "--prompt-ids", "1,2", "--max-new-tokens", 2)

    def weights(self):
        return os.path.join(self.model, "model.safetensors")

    def test_truncated_safetensors(self):
        with open(self.weights(), "r+b") as f:
            f.truncate(os.path.getsize(self.weights()) // 2)
        self.assertBadInput(self.gen(), "model.safetensors")

    def test_offsets_past_end(self):
        write_safetensors(self.weights(), {"transformer.wte.weight": ("F32", [2048, 128], 0, 2048 * 128 * 4)},
                          data_len=100)
        self.assertBadInput(self.gen(), "transformer.wte.weight")

    def test_dtype_shape_bytes_mismatch(self):
        write_safetensors(self.weights(), {"transformer.wte.weight": ("F32", [2048, 128], 0, 1000)})
        self.assertBadInput(self.gen(), "transformer.wte.weight")

    def test_bad_header_json(self):
        write_safetensors(self.weights(), {}, data_len=8, raw_header=b"{not json")
        self.assertBadInput(self.gen(), "model.safetensors")

    def test_missing_tensor(self):
        write_safetensors(self.weights(), {"transformer.wte.weight": ("F32", [2048, 128], 0, 2048 * 128 * 4)})
        self.assertBadInput(self.gen(), "missing")

    def edit_json(self, file, edit):
        path = os.path.join(self.model, file)
        with open(path) as f:
            j = json.load(f)
        edit(j)
        with open(path, "w") as f:
            json.dump(j, f)

    def test_config_missing_heads(self):
        self.edit_json("config.json", lambda j: j.pop("n_head"))
        self.assertBadInput(self.gen(), "n_head")
        llama = os.path.join(self.dir, "llama")
        shutil.copytree(model("llama-mini"), llama)
        self.model = llama
        self.edit_json("config.json", lambda j: j.pop("num_attention_heads"))
        self.assertBadInput(self.gen(), "num_attention_heads")

    def test_unknown_model_type(self):
        self.edit_json("config.json", lambda j: j.update(model_type="t5"))
        self.assertBadInput(self.gen(), "model_type", "t5")

    def test_tokenizer_unknown_model_type(self):
        self.edit_json("tokenizer.json", lambda j: j["model"].update(type="WordPiece"))
        self.assertBadInput(self.gen(), "WordPiece")


class MakeModel(CliTestCase):
    def test_tiny_shapes_generate(self):
        with tempfile.TemporaryDirectory() as d:
            for shape in ("gpt2-tiny", "llama-tiny", "qwen2-tiny", "mistral-tiny"):
                out = os.path.join(d, shape)
                self.assertOk(baton("make-model", "--shape", shape, "--out", out, "--dtype", "bf16"))
                r = self.assertOk(baton("generate", "--model", out, "--prompt", "Hi there", "--max-new-tokens", 5,
                                        "--ignore-eos", "--json"))
                self.assertEqual(len(json.loads(r.stdout)["output_ids"]), 5, shape)

    def test_bad_shape_named(self):
        self.assertBadInput(baton("make-model", "--shape", "llama-99b", "--out", "/tmp/x"), "llama-99b")
        self.assertBadInput(baton("make-model", "--shape", "gpt2-tiny", "--arch", "llama", "--out", "/tmp/x"), "--arch")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--baton", required=True)
    parser.add_argument("--data", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)
