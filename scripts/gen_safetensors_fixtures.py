#!/usr/bin/env python3
"""Writes the safetensors reader's golden files, made by the reference `safetensors` package.

Run from the repo root:  .venv/bin/python scripts/gen_safetensors_fixtures.py

Writes tests/fixtures/safetensors/:
  dtypes.safetensors   one tensor per dtype the package writes (incl. a scalar [], a zero-size [0, 3] and
                       3-D shapes), __metadata__ {"format": "pt", "note": "quantbench fixture"}.
  expected.json        for every tensor of every file here: name, dtype, shape, data_offsets, the flat
                       values as written (floats as the exact value of the stored element), the raw
                       little-endian bytes as hex, and the file's sha256, so a C++ test can check values
                       and bytes exactly.
  sharded/             model-00001-of-00002.safetensors, model-00002-of-00002.safetensors and
                       model.safetensors.index.json in HuggingFace's layout
                       {"metadata": {"total_size": N}, "weight_map": {name: file}}; N = sum of tensor bytes.

Values are a function of the flat row-major index i, so tests can also recompute them:
  floats (F64, F32, F16, BF16, F8_E4M3, F8_E5M2): i * 0.37 - 1.5 computed in float64, then rounded to the
      dtype with round-to-nearest-even (torch's .to(dtype)).
  ints (I8..I64, U8..U64): i * 7 - 20, wrapped two's-complement to the dtype's width (so U8 holds 236 at i=0
      and I8 wraps past 127 at i=21).
  BOOL: i % 3 == 0.
  `i64_large` (I64) is the one exception, to exercise values beyond 32 bits and beyond 2^53:
      (i - 2) * 1_234_567_890_123_456 + i.
The files are byte-stable across runs: no random numbers, the package orders tensors itself, and
fixtures_common.save_file_stable() pins the order of the __metadata__ keys (sorted).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import numpy as np
import safetensors
import torch
from safetensors import safe_open

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixtures_common import read_header, save_file_stable  # noqa: E402

OUT_DIR = os.path.join("tests", "fixtures", "safetensors")
METADATA = {"format": "pt", "note": "quantbench fixture"}

# (name, torch dtype, safetensors dtype name, shape)
DTYPE_TENSORS = [
    ("f64_scalar", torch.float64, "F64", []),
    ("f32_3d", torch.float32, "F32", [2, 3, 4]),
    ("f16_vec", torch.float16, "F16", [7]),
    ("bf16_mat", torch.bfloat16, "BF16", [3, 5]),
    ("f8_e4m3_vec", torch.float8_e4m3fn, "F8_E4M3", [6]),
    ("f8_e5m2_vec", torch.float8_e5m2, "F8_E5M2", [6]),
    ("i8_vec", torch.int8, "I8", [24]),
    ("u8_mat", torch.uint8, "U8", [4, 6]),
    ("i16_empty", torch.int16, "I16", [0, 3]),
    ("u16_vec", torch.uint16, "U16", [5]),
    ("i32_3d", torch.int32, "I32", [2, 2, 3]),
    ("u32_mat", torch.uint32, "U32", [3, 2]),
    ("i64_vec", torch.int64, "I64", [9]),
    ("u64_vec", torch.uint64, "U64", [4]),
    ("bool_vec", torch.bool, "BOOL", [10]),
    ("f32_empty", torch.float32, "F32", [0]),
    ("f32_scalar", torch.float32, "F32", []),
]

SHARDS = {
    "model-00001-of-00002.safetensors": [
        ("embed.weight", torch.float32, [8, 4]),
        ("layers.0.proj.weight", torch.float16, [4, 4]),
        ("layers.0.proj.bias", torch.float16, [4]),
    ],
    "model-00002-of-00002.safetensors": [
        ("layers.1.proj.weight", torch.bfloat16, [4, 4]),
        ("layers.1.proj.bias", torch.bfloat16, [4]),
        ("norm.weight", torch.float32, [4]),
    ],
}

ST_NAME = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2", torch.int8: "I8", torch.uint8: "U8",
    torch.int16: "I16", torch.uint16: "U16", torch.int32: "I32", torch.uint32: "U32", torch.int64: "I64",
    torch.uint64: "U64", torch.bool: "BOOL",
}


def make_values(name: str, dtype: torch.dtype, shape: list[int]) -> torch.Tensor:
    numel = int(np.prod(shape)) if shape else 1
    i = np.arange(numel, dtype=np.int64)
    if name == "i64_large":
        flat = torch.from_numpy((i - 2) * 1_234_567_890_123_456 + i)
    elif dtype == torch.bool:
        flat = torch.from_numpy(i % 3 == 0)
    elif dtype.is_floating_point:
        flat = torch.from_numpy(i * 0.37 - 1.5).to(dtype)
    else:
        # numpy's integer-to-integer casts are modular, i.e. two's-complement wrapping.
        np_type = {torch.int8: np.int8, torch.uint8: np.uint8, torch.int16: np.int16, torch.uint16: np.uint16,
                   torch.int32: np.int32, torch.uint32: np.uint32, torch.int64: np.int64,
                   torch.uint64: np.uint64}[dtype]
        flat = torch.from_numpy((i * 7 - 20).astype(np_type))
    return flat.reshape(shape).contiguous()


def raw_bytes(t: torch.Tensor) -> bytes:
    flat = t.contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


def json_values(t: torch.Tensor) -> list:
    flat = t.reshape(-1)
    if t.dtype == torch.bool:
        return [bool(v) for v in flat.tolist()]
    if t.dtype.is_floating_point:
        # float64 holds every narrower float exactly, so these are the stored values.
        return [float(v) for v in flat.to(torch.float64).tolist()]
    if t.dtype == torch.uint64:
        return [int(v) for v in flat.view(torch.int64).numpy().view(np.uint64).tolist()]
    return [int(v) for v in flat.to(torch.int64).tolist()]


def describe_file(path: str, tensors: dict[str, torch.Tensor]) -> dict:
    header = read_header(path)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    entries = []
    with safe_open(path, framework="pt") as reader:
        for name in sorted(tensors):
            back = reader.get_tensor(name)
            assert back.dtype == tensors[name].dtype and raw_bytes(back) == raw_bytes(tensors[name]), name
            info = header[name]
            entries.append({
                "name": name,
                "dtype": info["dtype"],
                "shape": info["shape"],
                "data_offsets": info["data_offsets"],
                "values": json_values(back),
                "bytes_hex": raw_bytes(back).hex(),
            })
    return {"sha256": digest, "size_bytes": os.path.getsize(path), "metadata": header.get("__metadata__", {}),
            "tensors": entries}


def write_dtypes(expected: dict) -> None:
    tensors = {}
    for name, dtype, st_name, shape in DTYPE_TENSORS:
        tensors[name] = make_values(name, dtype, shape)
        assert ST_NAME[dtype] == st_name
    tensors["i64_large"] = make_values("i64_large", torch.int64, [5])
    path = os.path.join(OUT_DIR, "dtypes.safetensors")
    save_file_stable(tensors, path, metadata=METADATA)
    expected["dtypes.safetensors"] = describe_file(path, tensors)


def write_sharded(expected: dict) -> None:
    shard_dir = os.path.join(OUT_DIR, "sharded")
    os.makedirs(shard_dir, exist_ok=True)
    weight_map = {}
    total_size = 0
    described = {}
    for file_name, specs in SHARDS.items():
        tensors = {name: make_values(name, dtype, shape) for name, dtype, shape in specs}
        path = os.path.join(shard_dir, file_name)
        save_file_stable(tensors, path, metadata={"format": "pt"})
        for name, t in tensors.items():
            weight_map[name] = file_name
            total_size += t.numel() * t.element_size()
        described[file_name] = describe_file(path, tensors)
    index = {"metadata": {"total_size": total_size}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(shard_dir, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    expected["sharded"] = {"index": index, "files": described}


def main() -> int:
    os.makedirs(OUT_DIR, exist_ok=True)
    expected = {
        "generator": "scripts/gen_safetensors_fixtures.py",
        "safetensors_version": safetensors.__version__,
        "torch_version": torch.__version__,
        "value_rule": {
            "float": "i * 0.37 - 1.5 in float64, rounded to the dtype (nearest even)",
            "int": "i * 7 - 20 wrapped two's-complement to the dtype width",
            "bool": "i % 3 == 0",
            "i64_large": "(i - 2) * 1234567890123456 + i",
        },
    }
    write_dtypes(expected)
    write_sharded(expected)
    with open(os.path.join(OUT_DIR, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
