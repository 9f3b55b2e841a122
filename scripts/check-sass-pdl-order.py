#!/usr/bin/env python3
"""Checks the decode GEMV (gemv_mma_kernel) SASS around the PDL wait (ACQBULK, i.e. griddepcontrol.wait):
1. no activation load before it. Before the wait only weights may be read (kernels/pdl.cuh, rule 1); the kernel loads
   weights with L1::no_allocate (LDG.E.NA...), so any other 128-bit global load ahead of the first ACQBULK reads x while
   the kernel before may still be writing it. ptxas moves ld.global.nc (__ldg) loads above the wait when it can
   (kernels/gemv_mma_tile.cuh, load_after_wait16).
2. every weight load of the one-round form (KSPLIT 8 x UNROLL 7, not pipelined) before it: that form exists to have its
   whole round in flight while the kernel before finishes, and ptxas scheduled ACQBULK above all of them once the wait
   was straight-line code (session 32; gemv_mma_tile.cuh keeps it in a block of its own).
Both are visible on any machine, without a GPU.

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


ONE_ROUND = re.compile(r"gemv_mma_kernel.*Li\d+ELi\d+ELi8ELi7ELb[01]ELb[01]ELb0E")  # <..., MT, RT, 8, 7, PG, G, PIPE=0>


def pdl_order_breaks(sass, counts):
    """Yields (function, what) for each activation load before the first ACQBULK of a GEMV and each weight load after it
    in a one-round GEMV."""
    for block in re.split(r"\n\s*Function : ", sass)[1:]:
        name = block.split("\n", 1)[0].strip()
        instrs = [m.groups() for m in map(INSTR.search, block.split("\n")) if m]
        if "gemv_mma_kernel" not in name or not any(op == "ACQBULK" for op, _ in instrs):
            continue  # sm_80 code has no wait (pdl_wait compiles to nothing below sm_90)
        counts["functions"] += 1
        one_round = ONE_ROUND.search(name) is not None
        counts["one_round"] += one_round
        waited = False
        for op, args in instrs:
            if op == "ACQBULK":
                waited = True
            elif op.startswith("LDG") and ".128" in op:
                weight = ".NA" in op
                if not waited and not weight:
                    yield name, f"activation load before the wait: {op} {args.strip()}"
                elif waited and weight and one_round:
                    yield name, f"one-round weight load after the wait: {op} {args.strip()}"


def main():
    counts = {"functions": 0, "one_round": 0}
    return _descriptors.check_objects(
        "check-sass-pdl-order", pdl_order_breaks, counts, "out of PDL order:",
        lambda objects, found: f"{objects} objects, {counts['functions']} GEMV functions ({counts['one_round']} one-round), "
                               f"{found} loads out of order")


if __name__ == "__main__":
    sys.exit(main())
