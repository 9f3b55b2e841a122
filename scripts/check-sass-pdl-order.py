#!/usr/bin/env python3
"""Checks the decode GEMV (gemv_mma_kernel) SASS for activation loads placed before the PDL wait (ACQBULK, i.e.
griddepcontrol.wait). Before the wait only weights may be read (kernels/pdl.cuh, rule 1); the kernel loads weights
with L1::no_allocate (LDG.E.NA...), so any other 128-bit global load ahead of the first ACQBULK reads x while the
kernel before may still be writing it. ptxas moves ld.global.nc (__ldg) loads above the wait when it can
(kernels/gemv_mma_tile.cuh, load_after_wait16): this finds it on any machine, without a GPU.

usage: check-sass-pdl-order.py [--cuobjdump PATH] OBJECT_OR_CUBIN...   (exit 1 when one is found)
"""
import importlib.util
import pathlib
import re
import sys

_spec = importlib.util.spec_from_file_location(
    "check_sass_descriptors", pathlib.Path(__file__).with_name("check-sass-descriptors.py"))
_descriptors = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_descriptors)
INSTR = _descriptors.INSTR


def early_activation_loads(sass, counts):
    """Yields (function, instruction) for each non-weight 128-bit load before the first ACQBULK of a GEMV."""
    for block in re.split(r"\n\s*Function : ", sass)[1:]:
        name = block.split("\n", 1)[0].strip()
        instrs = [m.groups() for m in map(INSTR.search, block.split("\n")) if m]
        if "gemv_mma_kernel" not in name or not any(op == "ACQBULK" for op, _ in instrs):
            continue  # sm_80 code has no wait (pdl_wait compiles to nothing below sm_90)
        counts["functions"] += 1
        for op, args in instrs:
            if op == "ACQBULK":
                break
            if op.startswith("LDG") and ".128" in op and ".NA" not in op:
                yield name, f"{op} {args.strip()}"


def main():
    counts = {"functions": 0}
    return _descriptors.check_objects(
        "check-sass-pdl-order", early_activation_loads, counts, "loaded before the PDL wait:",
        lambda objects, found: f"{objects} objects, {counts['functions']} GEMV functions, {found} early activation loads")


if __name__ == "__main__":
    sys.exit(main())
