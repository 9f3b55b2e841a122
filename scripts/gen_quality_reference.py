#!/usr/bin/env python3
"""Reference perplexities from transformers, for `quantbench ppl` to match.

Run from the repo root, after scripts/gen_model_fixtures.py (CPU; the two real models take a few minutes):
    .venv/bin/python scripts/gen_quality_reference.py

Writes tests/fixtures/references/perplexity.json: {"method": ..., "entries": [...]}, one entry per model:
  the two REAL models of ../shared/data/models (float32; the bf16 Llama upcast exactly) on the whole of
  wikitext-2/test.txt with window 256, stride 128, and every tiny fixture model of tests/fixtures/models on
  the first 4000 characters of test.txt with window 64, stride 32.

Method: the sliding-window loop of https://huggingface.co/docs/transformers/perplexity, reproduced line for
line (encode the whole text once with the model's own tokenizer, default call; windows [begin, begin+window)
for begin = 0, stride, 2*stride, ...; labels = input ids with every position before the last
trg_len = end - prev_end set to -100; loss from model(input_ids, labels=labels); stop at the window that
reaches the end). The text is the file's bytes decoded as UTF-8, nothing joined, stripped or translated.

Two numbers come out of that one loop, from the same forward passes:
  ppl_doc    what the documented code prints: exp(sum_w loss_w * (valid_w - 1) / sum_w (valid_w - 1)), summed
             in float32 as the doc does. valid_w - 1 is the doc's belief about how many tokens the model
             scores in window w ("the model only calculates loss over trg_len - 1 labels"). That is true for
             the first window only: transformers shifts labels inside the model, which drops position 0 of
             the window, and only the first window has a label there. Later windows score all trg_len
             labels, so the doc weights each window's mean by one token too few (a small bias).
  ppl_exact  exp(sum_nll / scored_tokens): every scored token's -log p from float64 log_softmax of the
             float32 logits, summed in float64; scored_tokens counts the labels the model really scores,
             which is num_tokens - 1 (every token but the first, each scored exactly once).
doc_loss_tokens records the doc's own count, so both are reproducible.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

SHARED_DATA = os.path.join("..", "shared", "data")
TEXT_FILE = os.path.join(SHARED_DATA, "wikitext-2", "test.txt")
TINY_MODELS = os.path.join("tests", "fixtures", "models")
OUT_FILE = os.path.join("tests", "fixtures", "references", "perplexity.json")
REAL_MODELS = ["gpt2-tiny-wikitext", "llama-tiny-wikitext"]
TINY_ORDER = ["gpt2", "gpt2-noprefix", "llama", "llama3", "mistral", "qwen2", "opt", "opt-350m-style", "phi"]
REAL_WINDOW, REAL_STRIDE = 256, 128
TINY_WINDOW, TINY_STRIDE, TINY_CHARS = 64, 32, 4000


@torch.no_grad()
def sliding_window_perplexity(model, input_ids: torch.Tensor, max_length: int, stride: int) -> dict:
    seq_len = input_ids.size(1)
    # --- the documented loop (names as in the doc) ---
    nll_sum = 0.0
    n_tokens = 0
    prev_end_loc = 0
    # --- the exact token-weighted sums, from the same forward passes ---
    exact_nll_sum = 0.0  # python float: float64
    scored_tokens = 0
    num_windows = 0
    for begin_loc in range(0, seq_len, stride):
        end_loc = min(begin_loc + max_length, seq_len)
        trg_len = end_loc - prev_end_loc  # may be different from stride on last loop
        window_ids = input_ids[:, begin_loc:end_loc]
        target_ids = window_ids.clone()
        target_ids[:, :-trg_len] = -100

        outputs = model(window_ids, labels=target_ids)
        neg_log_likelihood = outputs.loss

        num_valid_tokens = (target_ids != -100).sum().item()
        batch_size = target_ids.size(0)
        num_loss_tokens = num_valid_tokens - batch_size
        nll_sum += neg_log_likelihood * num_loss_tokens
        n_tokens += num_loss_tokens

        # What the model's loss really covers: logits at t predict the label at t + 1.
        shift_labels = target_ids[0, 1:]
        scored = shift_labels != -100
        log_probs = torch.log_softmax(outputs.logits[0, :-1][scored].double(), dim=-1)  # scored rows only
        token_nll = -log_probs.gather(1, shift_labels[scored].unsqueeze(1)).squeeze(1)
        exact_nll_sum += token_nll.sum().item()
        scored_tokens += int(scored.sum().item())
        # Sanity: transformers' float32 mean over the same tokens agrees with ours.
        assert abs(token_nll.mean().item() - neg_log_likelihood.item()) < 1e-4 * max(1.0, token_nll.mean().item())
        num_windows += 1
        if num_windows % 500 == 0:
            print(f"  window {num_windows}, token {end_loc} of {seq_len}", file=sys.stderr, flush=True)

        prev_end_loc = end_loc
        if end_loc == seq_len:
            break

    avg_nll = nll_sum / n_tokens
    ppl = torch.exp(avg_nll)
    assert scored_tokens == seq_len - 1, (scored_tokens, seq_len)
    return {
        "num_windows": num_windows,
        "scored_tokens": scored_tokens,
        "sum_nll": exact_nll_sum,
        "mean_nll": exact_nll_sum / scored_tokens,
        "ppl_exact": math.exp(exact_nll_sum / scored_tokens),
        "doc_loss_tokens": n_tokens,
        "doc_avg_nll": float(avg_nll),
        "ppl_doc": float(ppl),
    }


def evaluate(model_name: str, model_dir: str, text: str, text_note: str, file_sha256: str, max_length: int,
             stride: int) -> dict:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    encodings = tokenizer(text, return_tensors="pt")
    plain = tokenizer(text, add_special_tokens=False, return_tensors="pt")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    result = sliding_window_perplexity(model, encodings.input_ids, max_length, stride)
    entry = {
        "model": model_name,
        "model_dir": model_dir,
        "checkpoint_dtype": json.load(open(os.path.join(model_dir, "config.json"))).get("dtype"),
        "compute_dtype": "float32",
        "attn_implementation": "eager",
        "text_file": "wikitext-2/test.txt",
        "text_file_sha256": file_sha256,
        "text_used": text_note,
        "text_used_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "num_chars": len(text),
        "num_tokens": int(encodings.input_ids.size(1)),
        "special_tokens_added": int(encodings.input_ids.size(1) - plain.input_ids.size(1)),
        "first_token_ids": encodings.input_ids[0, :8].tolist(),
        "window": max_length,
        "stride": stride,
        **result,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
    }
    print(json.dumps({k: entry[k] for k in ("model", "num_tokens", "num_windows", "scored_tokens", "ppl_exact",
                                            "ppl_doc")}), flush=True)
    return entry


def main() -> int:
    torch.set_grad_enabled(False)
    transformers.logging.set_verbosity_error()
    with open(TEXT_FILE, "rb") as f:
        raw = f.read()
    file_sha256 = hashlib.sha256(raw).hexdigest()
    text = raw.decode("utf-8")  # exactly the file: no newline translation, no joining or stripping

    entries = []
    for name in TINY_ORDER:
        entries.append(evaluate(name, os.path.join(TINY_MODELS, name), text[:TINY_CHARS],
                                f"first {TINY_CHARS} characters (Python str[:{TINY_CHARS}]) of the UTF-8 text",
                                file_sha256, TINY_WINDOW, TINY_STRIDE))
    for name in REAL_MODELS:
        entries.append(evaluate(name, os.path.join(SHARED_DATA, "models", name), text,
                                "the whole file as one string", file_sha256, REAL_WINDOW, REAL_STRIDE))

    report = {
        "generator": "scripts/gen_quality_reference.py",
        "method": "HuggingFace sliding-window perplexity (https://huggingface.co/docs/transformers/perplexity)",
        "fields": {
            "ppl_exact": "exp(sum_nll / scored_tokens): token-weighted, float64 sums; the number to match",
            "ppl_doc": "what the doc's loop prints: per-window mean losses weighted by (valid labels - 1), "
                       "float32; biased because windows after the first score all their valid labels",
            "scored_tokens": "labels the model scores (after its internal shift) = num_tokens - 1",
            "doc_loss_tokens": "the doc's n_tokens = scored_tokens - (num_windows - 1)",
            "sum_nll": "sum of -ln p(token) over scored tokens, natural log, float64",
        },
        "entries": entries,
    }
    os.makedirs(os.path.dirname(OUT_FILE), exist_ok=True)
    with open(OUT_FILE, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
