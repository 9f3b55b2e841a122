"""Which runs a peer makes: quantbench's sweep definitions read the way src/bench/sweep.cpp reads them
(defaults merged into entries, ${VAR} and sweep-relative paths, a synthetic fallback for a model no
local directory or hub cache holds), the run keys records are matched on, and --resume's state.
quantbench validates sweep files strictly; this only checks entry keys."""
import json
import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENTRY_KEYS = {"name", "models", "fallback", "precisions", "batches", "prompt_lens", "gen_lens", "warmup",
              "repetitions", "compute_dtype", "cuda_graph", "perplexity"}


def read_sweep(path):
    """Entries with defaults merged in. quantbench validates the file strictly; this checks the keys."""
    with open(path) as f:
        document = json.load(f)
    defaults = document.get("defaults", {})
    entries = []
    for index, item in enumerate(document["entries"]):
        unknown = set(item) - ENTRY_KEYS
        if unknown:
            raise SystemExit(f"{path}: entries[{index}]: unknown keys {sorted(unknown)}")
        entry = {**defaults, **item}
        entry.setdefault("name", entry["models"][0])
        entries.append(entry)
    return entries


def expand_spec(spec, sweep_path):
    """${VAR} from the environment (QB_SHARED_DATA defaults to ../shared/data beside the checkout);
    ./ and ../ paths relative to the sweep file."""
    def variable(match):
        value = os.environ.get(match.group(1), "")
        if not value and match.group(1) == "QB_SHARED_DATA":
            value = str(REPO.parent / "shared" / "data")
        if not value:
            raise SystemExit(f"{sweep_path}: '{spec}' uses ${{{match.group(1)}}}, which is not set")
        return value
    out = re.sub(r"\$\{([^}]*)\}", variable, spec)
    if out.startswith("./") or out.startswith("../"):
        out = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(sweep_path)), out))
    return out


def hub_cache_dir():
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return os.path.join(os.path.expanduser("~"), ".cache", "huggingface", "hub")


def resolve(spec):
    """{source, id, dir or preset config} or None when nothing local holds the model."""
    if spec.startswith("synthetic:"):
        preset = spec[len("synthetic:"):]
        base = Path(os.environ["QB_CONFIG_DIR"]) / "models" if os.environ.get("QB_CONFIG_DIR") else REPO / "configs" / "models"
        path = base / f"{preset}.json"
        return {"source": "synthetic", "id": preset, "preset": str(path)} if path.exists() else None
    if os.path.isdir(spec):
        return {"source": "local", "id": os.path.basename(os.path.normpath(spec)), "dir": spec}
    repo = Path(hub_cache_dir()) / ("models--" + spec.replace("/", "--"))
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    revision = (repo / "refs" / "main").read_text().strip() if (repo / "refs" / "main").exists() else ""
    if not revision:
        found = [p.name for p in snapshots.iterdir() if p.is_dir()]
        if len(found) != 1:
            return None
        revision = found[0]
    return {"source": "hub_cache", "id": spec, "dir": str(snapshots / revision)}


def choose_model(spec, fallback, sweep_path):
    """The key quantbench records too: the spec as written, or the fallback when it stood in."""
    run_spec = expand_spec(spec, sweep_path)
    resolved = resolve(run_spec)
    key_model, fell_back = spec, False
    if resolved is None and fallback:
        key_model, run_spec, fell_back = fallback, expand_spec(fallback, sweep_path), True
        resolved = resolve(run_spec)
    plan = {"key_model": key_model, "run_spec": run_spec, "fell_back": fell_back, "resolved": resolved,
            "requested_model": spec,
            "id": resolved["id"] if resolved else spec, "source": resolved["source"] if resolved else "missing"}
    plan["weights"] = "synthetic" if plan["source"] == "synthetic" else "checkpoint"
    tokenizer = os.path.join(resolved["dir"], "tokenizer.json") if resolved and "dir" in resolved else None
    plan["tokenizer"] = tokenizer if tokenizer and os.path.exists(tokenizer) else None
    plan["prompt_kind"] = "built-in text" if plan["tokenizer"] else "random ids"
    return plan


def key_string(key):
    return f"{key['model']}|{key['precision']}|{key['device']}|b{key['batch']}|p{key['prompt_len']}|g{key['gen_len']}"


def prepare_resume(path, planned):
    """Keys recorded ok in `path`; rewrites it without the error records of keys in `planned` (they are
    retried now, and a report must not show a stale failure beside the retry) and without a line a
    kill cut short."""
    done, kept, dropped = set(), [], False
    if not os.path.exists(path):
        return done
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                dropped = True
                continue
            key = key_string(record["key"])
            if record.get("status") == "ok":
                done.add(key)
            elif key in planned:
                dropped = True
                continue
            kept.append(line if line.endswith("\n") else line + "\n")
    if dropped:
        with open(path + ".resume-tmp", "w") as f:
            f.writelines(kept)
        os.replace(path + ".resume-tmp", path)
    return done
