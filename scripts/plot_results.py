#!/usr/bin/env python3
"""Plots from quantbench result files (JSON array or JSON Lines; quantbench's records, `quantbench ppl`
quality records, and peers' records such as scripts/peers/hf_generate.py writes). PNGs into --out:

  decode_vs_params.png  decode tokens/s against parameter count per precision (log x), and beside it
                        the speedup over the same model's fp16: the crossover question, where does a
                        quantized format beat fp16 (above the line at 1)?
  memory.png            weight bytes and peak allocated bytes per precision per model
  tradeoff.png          decode tokens/s against perplexity (and KL vs the baseline where measured),
                        for the models with a quality record (real weights only)

Only status "ok" records count. Speed plots use one (batch, prompt_len, gen_len): the most common
batch-1 shape unless --shape B,P,G says otherwise. A peer's series are dashed and labelled
"hf:PRECISION". quantbench itself never plots (`quantbench report --plots DIR` runs this script).

Usage: plot_results.py --out DIR results.jsonl [peers.jsonl ...] [--shape 1,128,128]
"""
import argparse
import collections
import json
import os
import sys

QUALITY = "quantbench.quality/1"
ORDER = ["fp32", "bf16", "fp16", "int8", "llm.int8", "awq", "nf4", "fp4"]


def read_records(path):
    with open(path) as f:
        text = f.read()
    try:
        whole = json.loads(text)
        if isinstance(whole, list):
            return whole
        return whole["results"] if isinstance(whole, dict) and "results" in whole else [whole]
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def series_name(record):
    """quantbench's precision, or 'hf:precision' for a transformers peer (first word of its runner)."""
    runner = record.get("runner", "")
    prefix = "" if not runner or runner.startswith("quantbench") else ("hf:" if runner.startswith("transformers")
                                                                         else runner.split()[0] + ":")
    return prefix + record["key"]["precision"]


def precision_rank(name):
    base = name.split(":")[-1]
    return (":" in name, ORDER.index(base) if base in ORDER else len(ORDER), name)


def median(record, figure):
    value = record["timing"][figure]
    return value["median"] if isinstance(value, dict) else value


def collect(paths, shape):
    runs, quality, extra_runs = [], {}, []
    for path in paths:
        for r in read_records(path):
            if r.get("status") != "ok":
                continue
            if r.get("schema") == QUALITY:
                k = r["key"]
                quality[(k["model"], k["precision"], k["device"])] = r["quality"]
            else:
                runs.append(r)
    for r in runs:  # `quantbench run --quality-text` puts perplexity in the run record itself
        k, measured = r["key"], r.get("quality", {}).get("perplexity")
        if measured and "runner" not in r:
            quality.setdefault((k["model"], k["precision"], k["device"]), {"perplexity": measured})
    # Parameters per model key: any record that carries them (quantbench's count from config.json).
    parameters = {}
    for r in runs:
        count = r.get("model", {}).get("parameters")
        if count and (r["key"]["model"] not in parameters or "runner" not in r):
            parameters[r["key"]["model"]] = count
    shapes = collections.Counter((r["key"]["batch"], r["key"]["prompt_len"], r["key"]["gen_len"]) for r in runs)
    if shape is None and shapes:
        batch_one = [s for s in shapes if s[0] == 1] or list(shapes)
        shape = max(batch_one, key=lambda s: shapes[s])
    speed = [r for r in runs if (r["key"]["batch"], r["key"]["prompt_len"], r["key"]["gen_len"]) == shape]
    # The trade-off plot takes each model's runs at the common shape when it has them, else at its own most
    # common one (a quality entry may time shorter runs than the speed rows).
    timed_models = {r["key"]["model"] for r in speed}
    by_model = collections.defaultdict(list)
    for r in runs:
        if r["key"]["model"] not in timed_models:
            by_model[r["key"]["model"]].append(r)
    for model_runs in by_model.values():
        own = collections.Counter((r["key"]["batch"], r["key"]["prompt_len"], r["key"]["gen_len"]) for r in model_runs)
        best = max(own, key=lambda s: (own[s], s[0] == 1))
        speed_for_quality = [r for r in model_runs if (r["key"]["batch"], r["key"]["prompt_len"], r["key"]["gen_len"]) == best]
        extra_runs.extend(speed_for_quality)
    return speed, quality, parameters, shape, speed + extra_runs


def color(name):
    """One colour per precision in every panel and figure (a peer's series share its precision's colour)."""
    base = name.split(":")[-1]
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
               "#17becf"]
    return palette[ORDER.index(base) % len(palette)] if base in ORDER else "#000000"


def style(name):
    return {"linestyle": "--" if ":" in name else "-", "marker": "s" if ":" in name else "o", "color": color(name)}


def plot_decode(speed, parameters, shape, out_dir, plt):
    by_series = collections.defaultdict(dict)
    fp16 = {}
    for r in speed:
        model = r["key"]["model"]
        if model not in parameters:
            continue
        name = series_name(r)
        by_series[name][model] = median(r, "decode_tokens_per_s")
        if r["key"]["precision"] == "fp16":
            fp16[(name.split(":")[0] if ":" in name else "", model)] = by_series[name][model]
    fig, (ax, ax_ratio) = plt.subplots(1, 2, figsize=(14, 5.5))
    for name in sorted(by_series, key=precision_rank):
        points = sorted((parameters[m], v, m) for m, v in by_series[name].items())
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        ax.plot(xs, ys, label=name, **style(name))
        runner = name.split(":")[0] if ":" in name else ""
        ratio = [(p[0], p[1] / fp16[(runner, p[2])]) for p in points if fp16.get((runner, p[2]))]
        if ratio and not name.endswith("fp16"):
            ax_ratio.plot([q[0] for q in ratio], [q[1] for q in ratio], label=name, **style(name))
    for axis in (ax, ax_ratio):
        axis.set_xscale("log")
        axis.set_xlabel("parameters")
        axis.grid(True, which="both", alpha=0.3)
    ax.set_yscale("log")
    ax.set_ylabel("decode tokens/s (median)")
    ax.set_title(f"decode speed (batch {shape[0]}, prompt {shape[1]}, gen {shape[2]})")
    ax_ratio.axhline(1.0, color="black", linewidth=1)
    ax_ratio.set_ylabel("decode tokens/s over the same model's fp16")
    ax_ratio.set_title("where does a quantized format beat fp16? (above 1)")
    for axis in (ax, ax_ratio):
        if any(not line.get_label().startswith("_") for line in axis.lines):
            axis.legend(fontsize=8)
    return save(fig, out_dir, "decode_vs_params.png", plt)


def plot_memory(speed, parameters, out_dir, plt):
    models = sorted({r["key"]["model"] for r in speed}, key=lambda m: (parameters.get(m, 0), m))
    names = sorted({series_name(r) for r in speed}, key=precision_rank)
    figures = {(r["key"]["model"], series_name(r)): r["memory"] for r in speed}
    fig, axes = plt.subplots(2, 1, figsize=(min(18, max(10, 1.4 * len(models))), 8), sharex=True)
    width = 0.8 / max(1, len(names))
    for axis, field, title in ((axes[0], "weight_bytes", "weight bytes"),
                               (axes[1], "peak_allocated_bytes", "peak allocated bytes (timed runs)")):
        for i, name in enumerate(names):
            xs, heights = [], []
            for j, model in enumerate(models):
                value = figures.get((model, name), {}).get(field)
                if value:
                    xs.append(j + (i - (len(names) - 1) / 2) * width)
                    heights.append(value / 1e6)
            axis.bar(xs, heights, width=width, label=name, hatch="//" if ":" in name else None, color=color(name))
        axis.set_yscale("log")
        axis.set_ylabel("MB")
        axis.set_title(title)
        axis.grid(True, axis="y", which="both", alpha=0.3)
    axes[1].set_xticks(range(len(models)))
    axes[1].set_xticklabels(models, rotation=30, ha="right", fontsize=8)
    axes[0].legend(fontsize=8, ncol=min(4, max(1, len(names))))
    return save(fig, out_dir, "memory.png", plt)


def plot_tradeoff(speed, quality, out_dir, plt):
    points = []  # (model, precision, tokens/s, perplexity, kl or None)
    for r in speed:
        if "runner" in r:
            continue  # quality records measured quantbench's models
        k = r["key"]
        q = quality.get((k["model"], k["precision"], k["device"]))
        if q and q.get("perplexity"):
            points.append((k["model"], k["precision"], median(r, "decode_tokens_per_s"), q["perplexity"], q.get("kl_mean")))
    if not points:
        print("plot_results: no run has a perplexity measured on the same model and device: tradeoff.png skipped",
              file=sys.stderr)
        return None
    with_kl = [p for p in points if p[4] is not None]
    fig, axes = plt.subplots(1, 2 if with_kl else 1, figsize=(13 if with_kl else 7, 5.5), squeeze=False)
    panels = [(axes[0][0], points, 3, "perplexity (lower is better)")]
    if with_kl:
        panels.append((axes[0][1], with_kl, 4, "mean KL vs baseline (nats)"))
    for axis, data, index, label in panels:
        for model in sorted({p[0] for p in data}):
            mine = [p for p in data if p[0] == model]
            axis.scatter([p[index] for p in mine], [p[2] for p in mine], label=os.path.basename(model.rstrip("/")))
            for p in mine:
                axis.annotate(p[1], (p[index], p[2]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        axis.set_xlabel(label)
        axis.set_ylabel("decode tokens/s (median)")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
        values = [p[index] for p in data]
        if index == 4 and min(values) > 0 and max(values) > 10 * min(values):  # KL spans decades across formats
            axis.set_xscale("log")
    axes[0][0].set_title("speed against quality")
    return save(fig, out_dir, "tradeoff.png", plt)


def save(fig, out_dir, name, plt):
    path = os.path.join(out_dir, name)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(path)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", help="result files (JSON array or JSON Lines)")
    parser.add_argument("--out", required=True, help="folder for the PNG files")
    parser.add_argument("--shape", help="BATCH,PROMPT_LEN,GEN_LEN of the runs the speed plots use")
    args = parser.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    shape = tuple(int(v) for v in args.shape.split(",")) if args.shape else None
    speed, quality, parameters, shape, speed_for_quality = collect(args.inputs, shape)
    if not speed:
        sys.exit("plot_results: no ok result records" + (f" with shape {shape}" if shape else ""))
    os.makedirs(args.out, exist_ok=True)
    plot_decode(speed, parameters, shape, args.out, plt)
    plot_memory(speed, parameters, args.out, plt)
    plot_tradeoff(speed_for_quality, quality, args.out, plt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
