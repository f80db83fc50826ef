#!/usr/bin/env python3
"""Builds small reference tokenizers and their {text, ids, decoded} cases.

The C++ tokenizer (runtime/tokenizer/) must give the same ids and text as the
Hugging Face `tokenizers` library. The real Llama/Mistral/Qwen tokenizers are
too big (and too licensed) to keep in the tree, so this script trains small
BPE models on tests/data/corpus.txt and wraps them in the same pipelines those
models ship:

  llama2      normalizer Sequence[Prepend("▁"), Replace(" ", "▁")], no
              pre-tokenizer, byte_fallback BPE, decoder
              Sequence[Replace, ByteFallback, Fuse, Strip], <s> prepended by
              TemplateProcessing; merges stored as "a b" strings.
  mistral     pre-tokenizer Metaspace(prepend_scheme "first", split false),
              same decoder as llama2; merges stored as ["a", "b"] pairs.
  metaspace   pre-tokenizer Metaspace("always", split true) with the
              Metaspace decoder (byte tokens then decode literally).
  llama3      Split(Llama-3 regex, Isolated) + ByteLevel(use_regex false),
              ignore_merges, specials appended after the model vocab,
              post-processor Sequence[ByteLevel, TemplateProcessing(BOS)].
  qwen2       NFC normalizer, Split(Qwen2 regex) + ByteLevel, no BOS.

Each variant lands in <out>/<variant>/{tokenizer.json,cases.json}. Every case
also records `decoded_keep_special` (decode with skip_special_tokens=False).
`corpus_ids.json` holds the ids of the whole corpus for llama2, llama3 and
gpt2 so the C++ tests can compare a long input too.

Usage (needs `tokenizers`; run where it is installed):
  python3 tests/data/tokenizer_sp/make_cases.py OUT_DIR
"""
import json
import os
import sys
import traceback

import tokenizers
from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models,
                        normalizers, pre_tokenizers, processors, trainers)

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.dirname(HERE)
CORPUS = os.path.join(DATA, "corpus.txt")
VOCAB_SIZE = 1500

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
               r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

COMMON_TEXTS = [
    "",
    " ",
    "  ",
    "   leading spaces",
    "trailing spaces   ",
    " both sides ",
    "\n",
    "line one\nline two\n\nline four\n",
    "windows\r\nline\r\n",
    "\ttab\tseparated\tvalues",
    "Hello world",
    "Hello, my dog is cute",
    "The GNU General Public License is a free, copyleft license for software.",
    "I'M HERE. YOU'RE NOT. We'LL see, they'VE said, he'D go. I'm sure it's fine.",
    "don't can't won't shouldn't y'all",
    "1234567",
    "3.14159 and 1,000,000 and 2024-11-25",
    "日本語のテキスト",
    "大语言模型推理优化技术深度解析",
    "한국어 텍스트",
    "Привет, мир!",
    "مرحبا بالعالم",
    "emoji 🚀🎉👍🏽 family 👨‍👩‍👧 end",
    "é vs e\u0301 (composed vs decomposed) Å Å",
    "ﬁ ligature, Ω, ß",
    "non\u00a0breaking and zero\u200bwidth",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "{\"key\": [1, 2, 3], 'x': None}",
    "a" * 300,
    "ab" * 150,
    " " * 40 + "indent",
    "!!!???...,,,;;;",
    "mixed\u2581replacement\u2581char",
    "under_score snake_case CamelCase HTTPServer",
]


def corpus_text():
    with open(CORPUS, encoding="utf-8") as f:
        return f.read()


def corpus_paragraphs(n):
    paras = [p for p in corpus_text().split("\n\n") if p.strip()]
    return paras[:n]


def train(pre_tokenizer, special_tokens, initial_alphabet=None, normalizer=None):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    kwargs = dict(vocab_size=VOCAB_SIZE, special_tokens=special_tokens, show_progress=False)
    if initial_alphabet is not None:
        kwargs["initial_alphabet"] = initial_alphabet
    tok.train([CORPUS], trainers.BpeTrainer(**kwargs))
    return json.loads(tok.to_str())


def merges_as_strings(merges):
    return [m if isinstance(m, str) else " ".join(m) for m in merges]


def merges_as_pairs(merges):
    return [m.split(" ", 1) if isinstance(m, str) else list(m) for m in merges]


def sentencepiece_model():
    """A byte_fallback BPE trained with Metaspace words, like a SentencePiece BPE.

    Ids: <unk>=0, <s>=1, </s>=2, <0x00>..<0xFF>=3..258, then learned pieces,
    as in Llama-2's vocab.
    """
    specials = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    j = train(pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True),
              specials)
    model = j["model"]
    model["unk_token"] = "<unk>"
    model["byte_fallback"] = True
    model["fuse_unk"] = True
    return model


def sp_added_tokens():
    return [
        {"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for i, c in enumerate(["<unk>", "<s>", "</s>"])
    ]


def bos_template(bos, bos_id):
    return {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": bos, "type_id": 0}},
                 {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": bos, "type_id": 1}},
                 {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}},
    }


SP_DECODER = {"type": "Sequence", "decoders": [
    {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
    {"type": "ByteFallback"},
    {"type": "Fuse"},
    {"type": "Strip", "content": " ", "start": 1, "stop": 0},
]}


def base_json(model, added_tokens):
    return {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": added_tokens, "normalizer": None, "pre_tokenizer": None,
            "post_processor": None, "decoder": None, "model": model}


def llama2(sp_model):
    model = dict(sp_model)
    model["merges"] = merges_as_strings(model["merges"])
    j = base_json(model, sp_added_tokens())
    j["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
    ]}
    j["post_processor"] = bos_template("<s>", 1)
    j["decoder"] = SP_DECODER
    return j, ["<s>hello</s>", "a <s> b </s> c", "<unk> and <s><s>", "x</s>"]


def mistral(sp_model):
    model = dict(sp_model)
    model["merges"] = merges_as_pairs(model["merges"])
    j = base_json(model, sp_added_tokens())
    j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581",
                          "prepend_scheme": "first", "split": False}
    j["post_processor"] = bos_template("<s>", 1)
    j["decoder"] = SP_DECODER
    return j, ["<s>hello</s>", "a <s> b </s> c", "<s> leading space after special", "x</s>"]


def metaspace(sp_model):
    model = dict(sp_model)
    model["merges"] = merges_as_pairs(model["merges"])
    added = sp_added_tokens()
    # A non-special token that eats spaces on both sides.
    added.append({"id": len(model["vocab"]), "content": "[SEP]", "single_word": False,
                  "lstrip": True, "rstrip": True, "normalized": False, "special": False})
    j = base_json(model, added)
    j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581",
                          "prepend_scheme": "always", "split": True}
    j["decoder"] = {"type": "Metaspace", "replacement": "\u2581",
                    "prepend_scheme": "always", "split": True}
    return j, ["left [SEP] right", "a[SEP]b", "<s>x</s>", "  [SEP]  "]


def byte_level(regex, specials, normalizer=None):
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    j = train(pre, [], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    model = j["model"]
    model["ignore_merges"] = True
    model["merges"] = merges_as_pairs(model["merges"])
    next_id = len(model["vocab"])
    added = []
    for content, special in specials:
        added.append({"id": next_id, "content": content, "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": not special, "special": special})
        next_id += 1
    out = base_json(model, added)
    out["normalizer"] = normalizer
    out["pre_tokenizer"] = j["pre_tokenizer"]
    out["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                      "use_regex": True}
    return out


def llama3(_):
    j = byte_level(LLAMA3_REGEX, [("<|begin_of_text|>", True), ("<|end_of_text|>", True),
                                  ("<|reserved_special_token_0|>", True), ("<|tool|>", False)])
    bos_id = j["added_tokens"][0]["id"]
    j["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        bos_template("<|begin_of_text|>", bos_id),
    ]}
    return j, ["<|begin_of_text|>Hello<|end_of_text|>", "a <|end_of_text|> b",
               "call <|tool|> now", "<|reserved_special_token_0|><|begin_of_text|>"]


def qwen2(_):
    j = byte_level(QWEN2_REGEX, [("<|endoftext|>", True), ("<|im_start|>", True),
                                 ("<|im_end|>", True)], normalizer={"type": "NFC"})
    j["post_processor"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                           "use_regex": False}
    return j, ["<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n",
               "caf\u00e9 cafe\u0301 \u212b A\u030a \u1e9b\u0323 \uac00 \u1100\u1161"]


def make_cases(tok, texts):
    cases = []
    for text in texts:
        ids = tok.encode(text).ids
        cases.append({"text": text, "ids": ids,
                      "decoded": tok.decode(ids),
                      "decoded_keep_special": tok.decode(ids, skip_special_tokens=False)})
    return cases


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else HERE
    print("tokenizers", tokenizers.__version__)
    sp_model = sentencepiece_model()
    corpus_ids = {}
    failures = 0
    for name, build in [("llama2", llama2), ("mistral", mistral), ("metaspace", metaspace),
                        ("llama3", llama3), ("qwen2", qwen2)]:
        try:
            j, extra = build(sp_model)
            text = json.dumps(j, ensure_ascii=False)
            tok = Tokenizer.from_str(text)  # the library must accept what we wrote
            texts = COMMON_TEXTS + extra + corpus_paragraphs(4)
            os.makedirs(os.path.join(out, name), exist_ok=True)
            write_json(os.path.join(out, name, "tokenizer.json"), j)
            write_json(os.path.join(out, name, "cases.json"), make_cases(tok, texts))
            if name in ("llama2", "llama3"):
                corpus_ids[name] = tok.encode(corpus_text()).ids
            print(name, "ok", len(text), "bytes, vocab", tok.get_vocab_size())
        except Exception:  # keep going: one broken variant should not hide the rest
            failures += 1
            print(name, "FAILED")
            traceback.print_exc()
    gpt2 = Tokenizer.from_file(os.path.join(DATA, "gpt2-tokenizer", "tokenizer.json"))
    corpus_ids["gpt2"] = gpt2.encode(corpus_text()).ids
    write_json(os.path.join(out, "corpus_ids.json"), corpus_ids)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
