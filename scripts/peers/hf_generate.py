#!/usr/bin/env python3
"""The peer: HuggingFace transformers' generate, timed the way the published hobby benchmarks time it,
writing records in quantbench's schema ("quantbench.result/1" plus "runner") so that
`quantbench report results.jsonl peers.jsonl` shows both side by side.

Method (per run key: model, precision, device, batch, prompt_len, gen_len):
  - load: a checkpoint with from_pretrained(local_files_only=True); a synthetic preset
    (configs/models/PRESET.json) with from_config, random weights, in the precision's dtype.
    Nothing is ever downloaded (HF_HUB_OFFLINE=1 too).
  - warm-up runs, then repetitions of: a forward of the prompt (prefill, use_cache=True), and
    model.generate(do_sample=False, min_new_tokens = max_new_tokens = gen_len, use_cache=True), so
    EOS never stops it early; each timed with torch.cuda.Event pairs (perf_counter on the CPU). The
    prefill forward keeps only the last position's logits, as generate's own first step does.
  - decode tokens/s = batch * (gen_len - 1) / (generate time - prefill time): generate's first
    token comes from its own prefill; the other gen_len - 1 are decode steps. decode_step_ms is
    that time over gen_len - 1, one value per repetition (not per step: generate hides steps).
  - memory: get_memory_footprint() as weight_bytes; torch.cuda.max_memory_allocated over the
    timed runs (peak reset after loading, as quantbench does) as peak_allocated_bytes.
  - precisions: fp32/fp16/bf16 always; int8 and llm.int8 as bitsandbytes load_in_8bit (LLM.int8,
    what the seeds call INT8), nf4/fp4 as load_in_4bit, when bitsandbytes imports; awq needs autoawq
    and a checkpoint quantized by it. Anything else, or a missing package, is an error record.
  - prompts: a checkpoint's tokenizer.json encodes quantbench's built-in passage, repeated to
    prompt_len (as quantbench does); synthetic models take random ids (other ids than quantbench's
    generator draws: the lengths match, which is what timing depends on).

Usage:
  hf_generate.py --sweep configs/sweeps/seed-tables.json --out results/peers.jsonl [--resume] [--only RE]
  hf_generate.py --model tests/fixtures/models/gpt2 --precision fp32 --batch 1 --prompt-len 8 --gen-len 4 --out x.jsonl
"""
import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: never download
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import contextlib  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sweep_plan import choose_model, hub_cache_dir, key_string, prepare_resume, read_sweep  # noqa: E402

# quantbench's built-in prompt (src/engine/prompt.cpp), so checkpoints see the same tokens.
BUILTIN_PROMPT = (
    "The lighthouse keeper climbed the narrow stairs each evening, counting the steps as his father had "
    "taught him. From the lamp room he could see the fishing boats returning to the harbour, their wakes "
    "drawing pale lines across the darkening water. He trimmed the wick, polished the great lens, and wrote "
    "the weather in the log: wind from the south-west, a long swell, clouds building over the hills. When "
    "the light began to turn, he sat by the window with a cup of tea and watched the beam sweep over the "
    "rocks where, many years ago, a ship had been lost in a winter storm.")
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def quantization_config(precision):
    """(transformers quantization config, description) for bitsandbytes and AWQ; raises when missing."""
    import torch
    if precision in ("int8", "llm.int8", "nf4", "fp4"):
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as e:
            raise RuntimeError(f"precision {precision} needs the bitsandbytes package, which is not installed "
                               f"({e})") from None
        from transformers import BitsAndBytesConfig
        if precision in ("int8", "llm.int8"):
            return BitsAndBytesConfig(load_in_8bit=True), "bitsandbytes load_in_8bit (LLM.int8, threshold 6.0)"
        return (BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=precision,
                                   bnb_4bit_compute_dtype=torch.float16),
                f"bitsandbytes load_in_4bit ({precision}, blocksize 64, fp16 compute)")
    if precision == "awq":
        try:
            import awq  # noqa: F401  (autoawq)
        except ImportError as e:
            raise RuntimeError(f"precision awq needs the autoawq package, which is not installed ({e})") from None
        return None, "a checkpoint quantized by AutoAWQ"
    raise RuntimeError(f"precision '{precision}' has no transformers equivalent here")


def placement(device):
    """bitsandbytes layers quantize where they are loaded; device_map (which needs accelerate) puts
    them on the GPU; on the CPU they load where they are."""
    return {"device_map": {"": device}} if device.type == "cuda" else {}


def load_model(plan, precision, device, seed):
    """(model in eval mode on device, details for the record)."""
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM

    resolved = plan["resolved"]
    if resolved is None:
        raise FileNotFoundError(f"model '{plan['run_spec']}' is in no local directory or hub cache "
                                f"({hub_cache_dir()}); nothing is downloaded")
    runner = f"transformers {transformers.__version__} eager generate"
    dense = precision in DTYPES
    dtype = getattr(torch, DTYPES[precision]) if dense else torch.float16
    quant, description = (None, f"dense {DTYPES[precision]}") if dense else quantization_config(precision)
    details = {"runner": runner, "compute_dtype": precision if dense else "fp16",
               "format_options": {"method": description}}
    torch.manual_seed(seed)
    if resolved["source"] == "synthetic":
        with open(resolved["preset"]) as f:
            fields = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
        config = AutoConfig.for_model(fields.pop("model_type"), **fields)
        if precision == "awq":
            raise RuntimeError("awq in transformers needs a checkpoint quantized by AutoAWQ; synthetic weights have none")
        if dense:
            with torch.device(device):  # random init on the device: seconds for 7B, not minutes
                model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        else:
            # transformers quantizes while loading a checkpoint: write the random weights, load them.
            staging = tempfile.mkdtemp(prefix="qb-hf-synthetic-")
            try:
                with torch.device(device):
                    AutoModelForCausalLM.from_config(config, dtype=dtype).save_pretrained(staging)
                model = AutoModelForCausalLM.from_pretrained(staging, dtype=dtype, quantization_config=quant,
                                                             local_files_only=True, **placement(device))
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    else:
        if precision == "awq":
            config = AutoConfig.from_pretrained(resolved["dir"], local_files_only=True)
            method = (getattr(config, "quantization_config", None) or {}).get("quant_method")
            if method != "awq":
                raise RuntimeError(f"awq in transformers needs a checkpoint quantized by AutoAWQ; {resolved['dir']} "
                                   f"is not one")
        kwargs = {"dtype": dtype, "local_files_only": True}
        if quant is not None:
            kwargs.update(quantization_config=quant, **placement(device))
        model = AutoModelForCausalLM.from_pretrained(resolved["dir"], **kwargs)
        if quant is None and precision != "awq":
            model = model.to(device)
    return model.eval(), details


def make_prompt(plan, vocab_size, batch, length, seed):
    import torch
    if plan["tokenizer"]:
        from tokenizers import Tokenizer
        ids = Tokenizer.from_file(plan["tokenizer"]).encode(BUILTIN_PROMPT, add_special_tokens=True).ids
        row = [ids[i % len(ids)] for i in range(length)]
        return torch.tensor([row] * batch, dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab_size, (batch, length), generator=generator, dtype=torch.long)


def model_parameters(model):
    return int(model.num_parameters())


class _Timer:
    ms = 0.0


@contextlib.contextmanager
def timer(device):
    """Device time between two CUDA events on the current stream (synchronized), or wall time on the CPU."""
    import torch
    result = _Timer()
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        yield result
        end.record()
        end.synchronize()
        result.ms = start.elapsed_time(end)
    else:
        begin = time.perf_counter()
        yield result
        result.ms = (time.perf_counter() - begin) * 1e3


def percentile(sorted_values, q):
    """Linear interpolation between closest ranks, as src/bench/stats.cpp."""
    rank = q / 100 * (len(sorted_values) - 1)
    lower = math.floor(rank)
    upper = min(lower + 1, len(sorted_values) - 1)
    return sorted_values[lower] + (rank - lower) * (sorted_values[upper] - sorted_values[lower])


def summary(values):
    """quantbench's summary: count, mean, median, min, max, sample stddev, p90, p99."""
    v = sorted(values)
    n = len(v)
    if n == 0:
        return {"count": 0, "mean": 0, "median": 0, "min": 0, "max": 0, "stddev": 0, "p90": 0, "p99": 0}
    mean = sum(v) / n
    stddev = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1)) if n > 1 else 0.0
    return {"count": n, "mean": mean, "median": percentile(v, 50), "min": v[0], "max": v[-1], "stddev": stddev,
            "p90": percentile(v, 90), "p99": percentile(v, 99)}


def environment(device_name, command_line):
    import torch
    import transformers
    env = {"runner": "scripts/peers/hf_generate.py", "python": platform.python_version(), "torch": torch.__version__,
           "transformers": transformers.__version__, "cpu": platform.processor() or platform.machine(),
           "os": platform.platform(), "command_line": command_line,
           "utc_time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    for package in ("bitsandbytes", "awq"):
        try:
            env[package] = __import__(package).__version__
        except Exception:  # absent, or present without a version
            env[package] = None
    if device_name == "cuda":
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, gpu_memory_bytes=props.total_memory, sm_count=props.multi_processor_count,
                   compute_capability=f"{props.major}.{props.minor}", cuda_runtime=torch.version.cuda)
    return env


def sweep_note(plan):
    return {"entry": plan["entry"], "requested_model": plan["requested_model"], "fell_back": plan["fell_back"]}


def error_record(key, kind, message, env, plan):
    return {"schema": "quantbench.result/1", "key": key, "status": "error",
            "runner": f"transformers {__import__('transformers').__version__} eager generate",
            "model": {"spec": plan["run_spec"], "weights": plan["weights"]},
            "error": {"kind": kind, "message": message}, "sweep": sweep_note(plan), "environment": env}


def time_run(model, prompt_ids, gen_len, warmup, repetitions, device):
    """Prefill and whole-generate times (ms) per repetition, after warm-up; the peak allocation."""
    import torch
    from transformers import GenerationConfig

    eos = model.config.eos_token_id
    eos = eos[0] if isinstance(eos, list) else eos
    generation = GenerationConfig(do_sample=False, max_new_tokens=gen_len, min_new_tokens=gen_len, use_cache=True,
                                  pad_token_id=eos if eos is not None else 0, eos_token_id=eos, num_beams=1)
    attention_mask = torch.ones_like(prompt_ids)
    last_logits = {"logits_to_keep": 1} if model._supports_logits_to_keep() else {}
    prefill_ms, generate_ms, produced = [], [], None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode():
        for rep in range(warmup + repetitions):
            with timer(device) as prefill:  # what generate's own first step does: last-position logits only
                model(input_ids=prompt_ids, attention_mask=attention_mask, use_cache=True, **last_logits)
            with timer(device) as whole:
                out = model.generate(input_ids=prompt_ids, attention_mask=attention_mask, generation_config=generation)
            if rep >= warmup:
                prefill_ms.append(prefill.ms)
                generate_ms.append(whole.ms)
                produced = out
    new_tokens = produced.shape[1] - prompt_ids.shape[1]
    if new_tokens != gen_len:
        raise RuntimeError(f"generate produced {new_tokens} new tokens, not {gen_len}")
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    return prefill_ms, generate_ms, produced, peak


def bench_model(args, plan, precision, keys, env, emit):
    """All (batch, prompt_len, gen_len) keys of one model in one precision: one load, one record each."""
    import torch

    device = torch.device(args.device)
    try:
        model, details = load_model(plan, precision, device, args.seed)
    except Exception as e:  # a missing package, a format transformers cannot apply, out of memory
        for key in keys:
            emit(error_record(key, type(e).__name__, str(e), env, plan))
        return
    for key in keys:
        try:
            prompt = make_prompt(plan, model.config.vocab_size, key["batch"], key["prompt_len"], args.seed + 1).to(device)
            prefill_ms, generate_ms, produced, peak = time_run(model, prompt, key["gen_len"], plan["warmup"],
                                                               plan["repetitions"], device)
        except Exception as e:
            emit(error_record(key, type(e).__name__, str(e), env, plan))
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        batch, prompt_len, gen_len = key["batch"], key["prompt_len"], key["gen_len"]
        decode_ms = [g - p for g, p in zip(generate_ms, prefill_ms)]
        record = {
            "schema": "quantbench.result/1",
            "key": key,
            "status": "ok",
            "runner": details["runner"],
            "model": {"spec": plan["run_spec"], "id": plan["id"], "source": plan["source"], "weights": plan["weights"],
                      "architecture": model.config.model_type, "parameters": model_parameters(model)},
            "precision": precision,
            "compute_dtype": details["compute_dtype"],
            "format_options": details["format_options"],
            "run": {"warmup": plan["warmup"], "repetitions": plan["repetitions"], "cuda_graph": False,
                    "stop_at_eos": False, "prompt": plan["prompt_kind"],
                    "attn_implementation": getattr(model.config, "_attn_implementation", None)},
            "timing": {
                "clock": "cuda events around prefill and generate" if device.type == "cuda" else "perf_counter",
                "prefill_ms": summary(prefill_ms),
                "ttft_ms": summary(prefill_ms),
                "decode_step_ms": summary([d / (gen_len - 1) for d in decode_ms]),
                "decode_tokens_per_s": summary([batch * (gen_len - 1) / (d / 1e3) for d in decode_ms]),
                "prefill_tokens_per_s": summary([batch * prompt_len / (p / 1e3) for p in prefill_ms]),
                "e2e_ms": summary(generate_ms),
                "methods": {"decode_tokens_per_s": "batch * (gen_len - 1) / (generate - prefill), per repetition",
                            "decode_step_ms": "(generate - prefill) / (gen_len - 1), per repetition",
                            "e2e_ms": "the whole model.generate call"}},
            "memory": {"weight_bytes": int(model.get_memory_footprint()), "peak_allocated_bytes": int(peak),
                       "methods": {"weight_bytes": "model.get_memory_footprint() (parameters and buffers)",
                                   "peak_allocated_bytes": "torch.cuda.max_memory_allocated over warm-up and timed runs"}},
            "floor": {"note": "not computed for peers"},
            "generated_tokens": produced[:, prompt_len:].tolist(),
            "sweep": sweep_note(plan),
            "environment": env,
        }
        emit(record)
        print(f"[hf] {key['model']} {precision} b{batch} p{prompt_len} g{gen_len}: decode "
              f"{record['timing']['decode_tokens_per_s']['median']:.1f} tok/s, prefill "
              f"{record['timing']['prefill_ms']['median']:.2f} ms", file=sys.stderr)
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--sweep", help="a quantbench sweep definition (configs/sweeps/*.json)")
    source.add_argument("--model", help="one model: local dir, hub id in the local cache, or synthetic:PRESET")
    parser.add_argument("--fallback", help="with --model: synthetic:PRESET when the model is not found")
    parser.add_argument("--precision", default="fp16", help="with --model: comma-separated")
    parser.add_argument("--batch", default="1", help="with --model: comma-separated")
    parser.add_argument("--prompt-len", default="128", help="with --model: comma-separated")
    parser.add_argument("--gen-len", default="128", help="with --model: comma-separated")
    parser.add_argument("--warmup", type=int, help="override the sweep's warm-up runs")
    parser.add_argument("--repetitions", type=int, help="override the sweep's repetitions")
    parser.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    parser.add_argument("--only", help="keep runs whose 'ENTRY|model|precision|device|bB|pP|gG' matches this regex")
    parser.add_argument("--out", required=True, help="JSON Lines file the records are appended to")
    parser.add_argument("--resume", action="store_true", help="skip keys already recorded ok in --out")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch
    try:
        import transformers  # noqa: F401
    except ImportError as e:
        sys.exit(f"hf_generate: the peer is HuggingFace transformers, which does not import here ({e})")
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device_name = "cuda" if args.device.startswith("cuda") else "cpu"
    if args.sweep:
        entries = read_sweep(args.sweep)
        sweep_path = args.sweep
    else:
        ints = lambda text: [int(v) for v in text.split(",")]  # noqa: E731
        entries = [{"name": args.model, "models": [args.model], "fallback": args.fallback,
                    "precisions": args.precision.split(","), "batches": ints(args.batch),
                    "prompt_lens": ints(args.prompt_len), "gen_lens": ints(args.gen_len), "warmup": 1,
                    "repetitions": 3}]
        sweep_path = os.path.join(os.getcwd(), "command-line")
    if os.path.exists(args.out) and os.path.getsize(args.out) > 0 and not args.resume:
        sys.exit(f"hf_generate: {args.out} already holds records: pass --resume, or choose another --out")
    only = re.compile(args.only) if args.only else None
    env = environment(device_name, " ".join(sys.argv))
    counts = {"ran": 0, "failed": 0, "skipped": 0}

    def emit(record):
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
        counts["ran"] += 1
        counts["failed"] += record["status"] != "ok"

    work = []  # (plan, precision, keys): one model load each
    for entry in entries:
        for model_spec in entry["models"]:
            plan = choose_model(model_spec, entry.get("fallback"), sweep_path)
            plan["warmup"] = args.warmup if args.warmup is not None else entry.get("warmup", 2)
            plan["repetitions"] = args.repetitions if args.repetitions is not None else entry.get("repetitions", 5)
            plan["entry"] = entry["name"]
            for precision in entry["precisions"]:
                keys = [{"model": plan["key_model"], "precision": precision, "device": device_name, "batch": batch,
                         "prompt_len": prompt_len, "gen_len": gen_len}
                        for gen_len in entry.get("gen_lens", [128]) for batch in entry.get("batches", [1])
                        for prompt_len in entry.get("prompt_lens", [128])]
                keys = [k for k in keys if not only or only.search(entry["name"] + "|" + key_string(k))]
                work.append((plan, precision, keys))
    planned = {key_string(k) for _, _, keys in work for k in keys}
    done = prepare_resume(args.out, planned) if args.resume else set()
    for plan, precision, keys in work:
        left = [k for k in keys if key_string(k) not in done]
        counts["skipped"] += len(keys) - len(left)
        if left:
            bench_model(args, plan, precision, left, env, emit)
    print(f"[hf] done: {counts['ran']} records ({counts['failed']} failed), {counts['skipped']} skipped; {args.out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
