"""Shared by the fixture generators (scripts/gen_*_fixtures.py, scripts/gen_quality_reference.py).

Why this exists: safetensors 0.8 keeps `__metadata__` in a Rust HashMap, so with two or more metadata keys
the header's key order (and hence the file's bytes) changes from run to run. Committed fixtures must be
byte-stable, so save_file_stable() re-saves until the package itself writes the keys in sorted order;
every byte still comes from the package.
"""

from __future__ import annotations

import json

from safetensors.torch import save_file


def read_header(path: str) -> dict:
    """The JSON header of a safetensors file, keys in file order."""
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(header_len))


def save_file_stable(tensors: dict, path: str, metadata: dict[str, str] | None = None) -> None:
    """safetensors.torch.save_file, repeated until `__metadata__` comes out in sorted key order."""
    for _ in range(256):
        save_file(tensors, path, metadata=metadata)
        if not metadata:
            return
        written = list(read_header(path).get("__metadata__", {}).keys())
        if written == sorted(metadata):
            return
    raise RuntimeError(f"{path}: safetensors never wrote __metadata__ in sorted order")
