"""Shared by the fixture generators (scripts/gen_*_fixtures.py, scripts/gen_quality_reference.py).

Why this exists: safetensors 0.8 keeps `__metadata__` in a Rust HashMap with a random hasher, so with two or
more metadata keys their order in the header (and so the file's bytes) changes from run to run. Committed
fixtures must be byte-stable, so save_file_stable() lets the package write the file and then rewrites only
the header with the `__metadata__` keys sorted: the same JSON text reordered, hence the same length, the
same padding and the same data bytes. It first checks that re-serialising the package's own header in its
own order reproduces its bytes exactly, so the rewrite cannot change anything but that order.
"""

from __future__ import annotations

import json

from safetensors.torch import save_file


def read_header(path: str) -> dict:
    """The JSON header of a safetensors file, keys in file order."""
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(header_len))


def _compact(header: dict) -> bytes:
    # serde_json's compact form: no spaces, UTF-8 kept as is.
    return json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def save_file_stable(tensors: dict, path: str, metadata: dict[str, str] | None = None) -> None:
    """safetensors.torch.save_file, then `__metadata__` put in sorted key order (see the module comment)."""
    save_file(tensors, path, metadata=metadata)
    if not metadata or len(metadata) < 2:
        return
    with open(path, "r+b") as f:
        header_len = int.from_bytes(f.read(8), "little")
        written = f.read(header_len)
        text = written.rstrip(b" ")  # the package pads with spaces to align the data to 8 bytes
        header = json.loads(text)
        if _compact(header) != text:
            raise RuntimeError(f"{path}: cannot reproduce the package's header bytes; not rewriting it")
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        reordered = _compact(header)
        assert len(reordered) == len(text)
        f.seek(8)
        f.write(reordered + written[len(text):])
