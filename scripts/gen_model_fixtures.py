#!/usr/bin/env python3
"""Golden checkpoints and HuggingFace reference outputs for quantbench's model code.

Run from the repo root (CPU, a few minutes):
    .venv/bin/python scripts/gen_model_fixtures.py            # everything
    .venv/bin/python scripts/gen_model_fixtures.py --only tiny  # or: --only real

Writes
  tests/fixtures/models/<name>/  a tiny random-weight checkpoint per architecture, built by transformers' own
      class from a config and saved by save_pretrained (safetensors, float32): config.json,
      generation_config.json, model.safetensors, tokenizer.json, tokenizer_config.json, and
      reference.safetensors with what transformers computes for it (see REFERENCE KEYS).
      Names: gpt2, gpt2-noprefix, llama, llama3, mistral, qwen2, opt, opt-350m-style, phi.
  tests/fixtures/references/<model>.safetensors  references for the two REAL checkpoints in
      ../shared/data/models/ (gpt2-tiny-wikitext fp32 sharded; llama-tiny-wikitext bf16, upcast exactly to
      float32 at load).

Why: quantbench's C++ models must reproduce transformers' float32 logits (relative error < 1e-4) and greedy
tokens exactly. Tiny random weights keep the fixtures committable (all of models/ < 2 MB) while exercising each
architecture's quirks; init std 0.25 and random biases / norm weights make a forgotten bias or norm show.

Tokenizer: one byte-level BPE (vocab 320 = 256 bytes + "<|endoftext|>" (id 0) + 63 merges) trained by
`tokenizers` on ../shared/data/wikitext-2/valid.txt; training is deterministic (checked), copied into every dir.

REFERENCE KEYS (tiny models; float32 logits, int64 ids; eager attention, float32, CPU)
  input_ids_b1 [1,12]  logits_b1 [1,12,V]  greedy_b1 [1,8]
  input_ids_b3 [3,10]  logits_b3 [3,10,V]  greedy_b3 [3,8]
  rope_inv_freq [head_dim*partial/2]  (RoPE models only: the model's inv_freq buffer, after llama3 scaling)
  greedy_*: the 8 tokens model.generate appends (do_sample=False, use_cache=True, no EOS: eos_token_id=None),
  also checked equal to a no-cache argmax loop. __metadata__: prompt_b1 (text the 12 ids decode to),
  prompt_b3 (JSON list), model, transformers_version, torch_version, sdpa_max_abs_diff and sdpa_rel_diff
  (eager vs sdpa logits), greedy_min_margin (smallest top-1 minus top-2 logit over the greedy steps).
REFERENCE KEYS (real models, tests/fixtures/references/<model>.safetensors)
  input_ids_b1 [1,32], input_ids_b3 [3,24]   WikiText-2 test paragraphs through the model's tokenizer
  logits_last_b1 [1,V]                       full logits of the last prompt position
  vocab_index [256]                          sorted columns: every argmax seen (prompt positions and greedy
                                             tokens) plus a seeded random fill
  logits_sampled_b1 [1,32,256], logits_sampled_b3 [3,24,256]   logits at vocab_index
  greedy_b1 [1,16], greedy_b3 [3,16]         16 greedy new tokens, EOS ignored
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import torch
import transformers
from safetensors import safe_open
from safetensors.torch import load_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (AutoModelForCausalLM, AutoTokenizer, GenerationConfig, GPT2Config, LlamaConfig,
                          MistralConfig, OPTConfig, PhiConfig, PreTrainedTokenizerFast, Qwen2Config)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixtures_common import save_file_stable  # noqa: E402

SHARED_DATA = os.path.join("..", "shared", "data")
MODELS_OUT = os.path.join("tests", "fixtures", "models")
REFERENCES_OUT = os.path.join("tests", "fixtures", "references")
TOKENIZER_VOCAB = 320  # 384 put models/ over its 2 MB budget: V sets the embeddings and the logits
EOS_ID = 0  # "<|endoftext|>" is the trainer's first special token
INIT_STD = 0.25  # 0.15 left random GPT-2/OPT (tied heads) repeating one token in greedy decoding
BIAS_STD = 0.1
NORM_WEIGHT_STD = 0.2  # norm weights are 1 + N(0, 0.2^2)
TINY_NEW_TOKENS = 8
REAL_NEW_TOKENS = 16
SDPA_TOLERANCE = 1e-5
# A tiny fixture is kept only if every greedy step's top-1 logit beats the top-2 by this much (far above the
# ~1e-6 by which two float32 implementations differ here, so a correct model cannot flip a token) and each
# greedy row has this many distinct tokens (a row repeating one token would hide a broken KV cache).
MIN_GREEDY_MARGIN = 2e-3
MIN_DISTINCT_GREEDY = 3
SEED_TRIES = 100


def shared_data(*parts: str) -> str:
    return os.path.join(SHARED_DATA, *parts)


# ---------------------------------------------------------------------------------------------------------
# tokenizer


def train_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=TOKENIZER_VOCAB, special_tokens=["<|endoftext|>"], min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train([shared_data("wikitext-2", "valid.txt")], trainer)
    assert tokenizer.get_vocab_size() == TOKENIZER_VOCAB and tokenizer.token_to_id("<|endoftext|>") == EOS_ID
    return tokenizer


def save_tokenizer(tokenizer: Tokenizer, out_dir: str, model_max_length: int) -> None:
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<|endoftext|>",
                                      eos_token="<|endoftext|>", unk_token="<|endoftext|>",
                                      model_max_length=model_max_length)
    wrapped.save_pretrained(out_dir)
    # Compact tokenizer.json (transformers writes it indented): same content, a third of the bytes.
    tokenizer.save(os.path.join(out_dir, "tokenizer.json"), pretty=False)


# ---------------------------------------------------------------------------------------------------------
# tiny architectures. Shared sizes: hidden 32, 2 layers, intermediate 64; V = tokenizer vocab.

COMMON = dict(vocab_size=TOKENIZER_VOCAB, bos_token_id=EOS_ID, eos_token_id=EOS_ID, pad_token_id=None)


def tiny_configs() -> dict[str, transformers.PretrainedConfig]:
    llama_like = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, rms_norm_eps=1e-5,
                      initializer_range=INIT_STD, max_position_embeddings=512, **COMMON)
    return {
        # Conv1D weights [in, out], fused c_attn, learned positions, tied head.
        "gpt2": GPT2Config(n_embd=32, n_layer=2, n_head=4, n_inner=64, n_positions=64,
                           activation_function="gelu_new", initializer_range=INIT_STD,
                           tie_word_embeddings=True, **COMMON),
        # GQA 4 query heads / 2 kv heads (head_dim 8), untied head.
        "llama": LlamaConfig(num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
                             rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, **llama_like),
        # head_dim 16 with theta 1e4 puts inv_freq in all three llama3 bands for original context 64:
        # wavelength 6.3 (< 64/4, kept), 19.9 and 62.8 (between, smoothed), >= 199 (> 64, divided by 8).
        "llama3": LlamaConfig(num_attention_heads=2, num_key_value_heads=1, head_dim=16, tie_word_embeddings=True,
                              rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                                               "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                               "original_max_position_embeddings": 64}, **llama_like),
        # head_dim 16 != hidden/heads = 8, so q_proj is [64, 32]; the window (128) exceeds every test sequence.
        "mistral": MistralConfig(num_attention_heads=4, num_key_value_heads=2, head_dim=16, sliding_window=128,
                                 tie_word_embeddings=False,
                                 rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, **llama_like),
        # Biases on q/k/v only; theta 1e6 as real Qwen2 checkpoints use.
        "qwen2": Qwen2Config(num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
                             rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, **llama_like),
        # Pre-norm, relu, learned positions with OPT's offset of 2 rows, tied head.
        "opt": OPTConfig(hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4,
                         max_position_embeddings=64, do_layer_norm_before=True, word_embed_proj_dim=32,
                         activation_function="relu", init_std=INIT_STD, dropout=0.0, tie_word_embeddings=True,
                         **COMMON),
        # Like facebook/opt-350m: post-norm (no final layer norm) and embeddings of width 16 projected to 32.
        "opt-350m-style": OPTConfig(hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4,
                                    max_position_embeddings=64, do_layer_norm_before=False,
                                    word_embed_proj_dim=16, activation_function="relu", init_std=INIT_STD,
                                    dropout=0.0, tie_word_embeddings=True, **COMMON),
        # Partial rotary (4 of 8 dims per head), parallel attention + MLP off one LayerNorm, biases everywhere
        # including lm_head, untied.
        "phi": PhiConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=4, max_position_embeddings=512, hidden_act="gelu_new",
                         initializer_range=INIT_STD, tie_word_embeddings=False, resid_pdrop=0.0, embd_pdrop=0.0,
                         partial_rotary_factor=0.5,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                          "partial_rotary_factor": 0.5}, **COMMON),
    }


def randomize_biases_and_norms(model: torch.nn.Module, seed: int) -> None:
    """transformers inits biases to 0 and norm weights to 1; make both random so that dropping them shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(".bias"):
                param.copy_(torch.randn(param.shape, generator=gen) * BIAS_STD)
            elif param.dim() == 1 and name.endswith(".weight"):  # every 1-D weight here is a norm's
                param.copy_(1.0 + torch.randn(param.shape, generator=gen) * NORM_WEIGHT_STD)


def build_tiny(name: str, config, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager")
    randomize_biases_and_norms(model, seed + 1)
    return model.eval()


def write_gpt2_noprefix(src_dir: str, out_dir: str, n_positions: int, n_layer: int) -> None:
    """OpenAI's original gpt2 layout: keys without `transformer.`, plus the causal-mask buffers
    h.N.attn.bias (F32 [1,1,n_positions,n_positions], lower-triangular ones) and h.N.attn.masked_bias
    (F32 scalar -1e4) that are not parameters; no lm_head.weight (tied to wte)."""
    os.makedirs(out_dir, exist_ok=True)
    for file_name in os.listdir(src_dir):
        if file_name != "model.safetensors" and file_name != "reference.safetensors":
            shutil.copy(os.path.join(src_dir, file_name), os.path.join(out_dir, file_name))
    tensors = load_file(os.path.join(src_dir, "model.safetensors"))
    renamed = {}
    for key, value in tensors.items():
        assert key.startswith("transformer."), key
        renamed[key[len("transformer."):]] = value
    mask = torch.tril(torch.ones(n_positions, n_positions, dtype=torch.float32)).view(1, 1, n_positions, n_positions)
    for layer in range(n_layer):
        renamed[f"h.{layer}.attn.bias"] = mask.clone()
        renamed[f"h.{layer}.attn.masked_bias"] = torch.tensor(-1e4, dtype=torch.float32)
    save_file_stable(renamed, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})


# ---------------------------------------------------------------------------------------------------------
# prompts and reference computation


def test_paragraphs() -> list[str]:
    """Paragraph lines of WikiText-2 test (the long lines), in file order, as written (leading space kept)."""
    with open(shared_data("wikitext-2", "test.txt"), encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    return [line for line in lines if len(line) > 300]


def prompts_from_text(tokenize, detokenize, paragraphs: list[str], count: int, length: int,
                      skip: int) -> tuple[torch.Tensor, list[str]]:
    """`count` prompts of `length` ids: the first ids of paragraphs skip, skip+3, ... whose decoded text
    re-encodes to the same ids (so a tokenizer test can use the text too)."""
    ids_rows, texts = [], []
    index = skip
    while len(ids_rows) < count:
        ids = tokenize(paragraphs[index])[:length]
        text = detokenize(ids)
        if len(ids) == length and tokenize(text) == ids:
            ids_rows.append(ids)
            texts.append(text)
        index += 3
    return torch.tensor(ids_rows, dtype=torch.int64), texts


@torch.no_grad()
def greedy(model, input_ids: torch.Tensor, new_tokens: int) -> tuple[torch.Tensor, float]:
    """The tokens generate() appends, and the smallest top-1 minus top-2 logit gap over those steps."""
    # generate() fills unset fields from model.generation_config, whose eos_token_id would stop a row at EOS
    # (and pad it); replacing the model's own config is what makes EOS an ordinary token here.
    model.generation_config = GenerationConfig(do_sample=False, max_new_tokens=new_tokens, min_new_tokens=0,
                                               eos_token_id=None, pad_token_id=None, bos_token_id=None,
                                               use_cache=True, num_beams=1)
    out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids))
    appended = out[:, input_ids.shape[1]:]
    assert appended.shape[1] == new_tokens
    # Independent check: argmax over a full no-cache forward each step.
    ids = input_ids
    min_margin = float("inf")
    for _ in range(new_tokens):
        last = model(ids, use_cache=False).logits[:, -1, :]
        top2 = last.topk(2, dim=-1).values
        min_margin = min(min_margin, (top2[:, 0] - top2[:, 1]).min().item())
        ids = torch.cat([ids, last.argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(ids[:, input_ids.shape[1]:], appended), "generate() differs from the argmax loop"
    return appended.contiguous(), min_margin


@torch.no_grad()
def logits_of(model, input_ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids, attention_mask=torch.ones_like(input_ids), use_cache=False).logits.float()


def load_model(path: str, attn: str):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation=attn).eval()


def sdpa_diff(path: str, batches: list[torch.Tensor], eager_logits: list[torch.Tensor]) -> tuple[float, float]:
    """Eager vs sdpa logits: (max |difference|, ||difference|| / ||eager||) over the batches."""
    sdpa = load_model(path, "sdpa")
    max_abs, rel = 0.0, 0.0
    for ids, ref in zip(batches, eager_logits):
        delta = (logits_of(sdpa, ids) - ref).double()
        max_abs = max(max_abs, delta.abs().max().item())
        rel = max(rel, (delta.norm() / ref.double().norm()).item())
    return max_abs, rel


def rope_inv_freq(model) -> torch.Tensor | None:
    for name, buffer in model.named_buffers():
        if name.endswith("rotary_emb.inv_freq"):
            return buffer.detach().float().clone()
    return None


def write_tiny_reference(name: str, out_dir: str, tokenizer: Tokenizer, in_memory_model) -> dict | None:
    """Writes reference.safetensors; None (nothing written) when this draw of weights makes a poor fixture."""
    tokenize = lambda text: tokenizer.encode(text).ids  # noqa: E731
    detokenize = lambda ids: tokenizer.decode(ids)  # noqa: E731
    paragraphs = test_paragraphs()
    ids_b1, text_b1 = prompts_from_text(tokenize, detokenize, paragraphs, 1, 12, skip=0)
    ids_b3, text_b3 = prompts_from_text(tokenize, detokenize, paragraphs, 3, 10, skip=1)

    model = load_model(out_dir, "eager")  # references come from the files on disk, not the model in memory
    logits_b1, logits_b3 = logits_of(model, ids_b1), logits_of(model, ids_b3)
    assert torch.equal(logits_b1, logits_of(in_memory_model, ids_b1)), f"{name}: reload changed the logits"
    greedy_b1, margin_b1 = greedy(model, ids_b1, TINY_NEW_TOKENS)
    greedy_b3, margin_b3 = greedy(model, ids_b3, TINY_NEW_TOKENS)
    min_margin = min(margin_b1, margin_b3)
    distinct = min(len(set(row)) for row in greedy_b1.tolist() + greedy_b3.tolist())
    if logits_b1.std() < 0.3 or min_margin < MIN_GREEDY_MARGIN or distinct < MIN_DISTINCT_GREEDY:
        return None
    diff, rel_diff = sdpa_diff(out_dir, [ids_b1, ids_b3], [logits_b1, logits_b3])
    tensors = {
        "input_ids_b1": ids_b1, "logits_b1": logits_b1, "greedy_b1": greedy_b1,
        "input_ids_b3": ids_b3, "logits_b3": logits_b3, "greedy_b3": greedy_b3,
    }
    inv_freq = rope_inv_freq(model)
    if inv_freq is not None:
        tensors["rope_inv_freq"] = inv_freq
    metadata = {
        "model": name, "prompt_b1": text_b1[0], "prompt_b3": json.dumps(text_b3),
        "transformers_version": transformers.__version__, "torch_version": torch.__version__,
        "sdpa_max_abs_diff": f"{diff:.3e}", "sdpa_rel_diff": f"{rel_diff:.3e}", "attn_implementation": "eager",
        "dtype": "float32", "greedy_min_margin": f"{min_margin:.4f}",
    }
    save_file_stable({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out_dir, "reference.safetensors"),
                     metadata=metadata)
    return {"name": name, "sdpa_max_abs_diff": diff, "sdpa_rel_diff": rel_diff, "logits_std": logits_b1.std().item(),
            "greedy_min_margin": min_margin, "greedy_b1": greedy_b1.tolist()}


def check_reference(name: str, model_dir: str) -> None:
    """The saved checkpoint, loaded fresh, reproduces its saved reference exactly."""
    ref = load_file(os.path.join(model_dir, "reference.safetensors"))
    model = load_model(model_dir, "eager")
    for batch in ("b1", "b3"):
        got = logits_of(model, ref[f"input_ids_{batch}"])
        assert torch.equal(got, ref[f"logits_{batch}"]), f"{name}: logits_{batch} not reproduced"
        tokens, _ = greedy(model, ref[f"input_ids_{batch}"], TINY_NEW_TOKENS)
        assert torch.equal(tokens, ref[f"greedy_{batch}"]), f"{name}: greedy_{batch} not reproduced"


def generate_tiny() -> list[dict]:
    tokenizer = train_tokenizer()
    assert tokenizer.to_str() == train_tokenizer().to_str(), "BPE training is not deterministic"
    summaries = []
    for index, (name, config) in enumerate(tiny_configs().items()):
        out_dir = os.path.join(MODELS_OUT, name)
        # Seeds are tried in order until the fixture is well conditioned (see MIN_GREEDY_MARGIN); the seed
        # used goes in the summary and the search is deterministic.
        for seed in range(1000 + 100 * index, 1000 + 100 * index + SEED_TRIES):
            shutil.rmtree(out_dir, ignore_errors=True)
            model = build_tiny(name, config, seed=seed)
            model.save_pretrained(out_dir, safe_serialization=True)
            max_positions = getattr(config, "n_positions", None) or config.max_position_embeddings
            save_tokenizer(tokenizer, out_dir, max_positions)
            summary = write_tiny_reference(name, out_dir, tokenizer, model)
            if summary is not None:
                break
        else:
            raise RuntimeError(f"{name}: no seed gave a well-conditioned fixture")
        summaries.append({**summary, "seed": seed})
        check_reference(name, out_dir)
        if name == "gpt2":
            noprefix_dir = os.path.join(MODELS_OUT, "gpt2-noprefix")
            shutil.rmtree(noprefix_dir, ignore_errors=True)
            write_gpt2_noprefix(out_dir, noprefix_dir, config.n_positions, config.n_layer)
            # Same weights, so the same reference; check that transformers loads this layout to the same logits.
            shutil.copy(os.path.join(out_dir, "reference.safetensors"), noprefix_dir)
            check_reference("gpt2-noprefix", noprefix_dir)
            summaries.append({"name": "gpt2-noprefix", "same_reference_as": "gpt2"})
    return summaries


# ---------------------------------------------------------------------------------------------------------
# references for the real checkpoints in ../shared/data/models


def check_exact_upcast(model, model_dir: str) -> None:
    """Every stored tensor (bf16 or fp32, any shard) equals the float32 parameter it became."""
    params = model.state_dict()
    for file_name in sorted(os.listdir(model_dir)):
        if file_name.endswith(".safetensors"):
            with safe_open(os.path.join(model_dir, file_name), framework="pt") as reader:
                for key in reader.keys():
                    assert torch.equal(reader.get_tensor(key).float(), params[key]), f"{model_dir}: {key} changed"


def write_real_reference(model_name: str) -> dict:
    model_dir = shared_data("models", model_name)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenize = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    detokenize = lambda ids: tokenizer.decode(ids)  # noqa: E731
    paragraphs = test_paragraphs()
    ids_b1, text_b1 = prompts_from_text(tokenize, detokenize, paragraphs, 1, 32, skip=0)
    ids_b3, text_b3 = prompts_from_text(tokenize, detokenize, paragraphs, 3, 24, skip=1)

    model = load_model(model_dir, "eager")
    stored_dtype = json.load(open(os.path.join(model_dir, "config.json"))).get("dtype")
    check_exact_upcast(model, model_dir)
    logits_b1, logits_b3 = logits_of(model, ids_b1), logits_of(model, ids_b3)
    greedy_b1, margin_b1 = greedy(model, ids_b1, REAL_NEW_TOKENS)
    greedy_b3, margin_b3 = greedy(model, ids_b3, REAL_NEW_TOKENS)
    diff, rel_diff = sdpa_diff(model_dir, [ids_b1, ids_b3], [logits_b1, logits_b3])

    vocab = logits_b1.shape[-1]
    must_have = torch.cat([logits_b1.argmax(-1).flatten(), logits_b3.argmax(-1).flatten(), greedy_b1.flatten(),
                           greedy_b3.flatten()]).unique()
    gen = torch.Generator().manual_seed(20240611)
    rest = torch.tensor([i for i in torch.randperm(vocab, generator=gen).tolist()
                         if i not in set(must_have.tolist())][: 256 - must_have.numel()], dtype=torch.int64)
    vocab_index = torch.cat([must_have, rest]).sort().values
    assert vocab_index.numel() == 256
    tensors = {
        "input_ids_b1": ids_b1, "input_ids_b3": ids_b3,
        "logits_last_b1": logits_b1[:, -1, :].contiguous(),
        "vocab_index": vocab_index,
        "logits_sampled_b1": logits_b1[:, :, vocab_index].contiguous(),
        "logits_sampled_b3": logits_b3[:, :, vocab_index].contiguous(),
        "greedy_b1": greedy_b1, "greedy_b3": greedy_b3,
    }
    metadata = {
        "model": model_name, "checkpoint_dtype": str(stored_dtype), "compute_dtype": "float32",
        "prompt_b1": text_b1[0], "prompt_b3": json.dumps(text_b3), "attn_implementation": "eager",
        "transformers_version": transformers.__version__, "torch_version": torch.__version__,
        "sdpa_max_abs_diff": f"{diff:.3e}", "sdpa_rel_diff": f"{rel_diff:.3e}",
        "greedy_min_margin": f"{min(margin_b1, margin_b3):.4f}",
    }
    os.makedirs(REFERENCES_OUT, exist_ok=True)
    path = os.path.join(REFERENCES_OUT, f"{model_name}.safetensors")
    save_file_stable(tensors, path, metadata=metadata)
    return {"name": model_name, "sdpa_max_abs_diff": diff, "sdpa_rel_diff": rel_diff,
            "greedy_min_margin": min(margin_b1, margin_b3), "greedy_b1": greedy_b1.tolist(),
            "bytes": os.path.getsize(path)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["tiny", "real"], help="generate one half only")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    transformers.logging.set_verbosity_error()
    summaries = []
    if args.only in (None, "tiny"):
        summaries += generate_tiny()
    if args.only in (None, "real"):
        summaries += [write_real_reference(m) for m in ("gpt2-tiny-wikitext", "llama-tiny-wikitext")]
    for summary in summaries:
        print(json.dumps(summary))
        if summary.get("sdpa_max_abs_diff", 0.0) > SDPA_TOLERANCE:
            print(f"NOTE: {summary['name']}: sdpa differs from eager by {summary['sdpa_max_abs_diff']:.2e} at most "
                  f"(relative {summary['sdpa_rel_diff']:.2e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
