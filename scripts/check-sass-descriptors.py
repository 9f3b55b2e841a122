#!/usr/bin/env python3
"""Checks CUDA objects for a ptxas 13.0 miscompile: a global load (LDG / LDGSTS / ...) whose memory descriptor
desc[URn] is a uniform register that nothing in the same function defines (kernels/q4_gemv.cuh, cp_async16, says
when it happens). Such an instruction dies with cudaErrorIllegalInstruction on the GPU; this finds it on any machine.

usage: check-sass-descriptors.py [--cuobjdump PATH] OBJECT_OR_CUBIN...   (exit 1 when one is found)
"""
import argparse
import re
import shutil
import subprocess
import sys

INSTR = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z0-9_.]+)\s+([^;]*);")


def find_cuobjdump(given):
    if given:
        return given
    for candidate in ("cuobjdump", "/usr/local/cuda/bin/cuobjdump"):
        if shutil.which(candidate):
            return shutil.which(candidate)
    sys.exit("check-sass-descriptors: no cuobjdump on PATH or in /usr/local/cuda/bin (pass --cuobjdump)")


def undefined_descriptors(sass, counts):
    """Yields (function, instruction) for each descriptor use whose register nothing in its function defines
    (anywhere: a loop may define it below its use)."""
    for block in re.split(r"\n\s*Function : ", sass)[1:]:
        name = block.split("\n", 1)[0].strip()
        counts["functions"] += 1
        instrs = [m.groups() for m in map(INSTR.search, block.split("\n")) if m]
        defined = set()
        for op, args in instrs:
            for n in map(int, re.findall(r"UR(\d+)", args.split(",")[0])):  # destination operand
                defined.update((n, n + 1) if ".64" in op else (n,))
        for op, args in instrs:
            for n in map(int, re.findall(r"desc\[UR(\d+)\]", args)):
                counts["uses"] += 1
                if n not in defined:
                    yield name, f"{op} {args.strip()}"


def check_objects(prog, finder, counts, what, summary):
    """The command line both SASS checks share: [--cuobjdump PATH] OBJECT_OR_CUBIN... Runs finder(sass, counts) on each
    object's SASS, prints each (function, instruction) it yields as `what`, then summary(objects, found) on stderr.
    Returns the exit status: 1 when something was found or no function was checked."""
    ap = argparse.ArgumentParser(prog=prog)
    ap.add_argument("--cuobjdump")
    ap.add_argument("objects", nargs="+")
    args = ap.parse_args()
    tool = find_cuobjdump(args.cuobjdump)
    found = 0
    for path in args.objects:
        run = subprocess.run([tool, "-sass", path], capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit(f"{prog}: {path}: cuobjdump failed: {run.stderr.strip()}")
        for name, instr in finder(run.stdout, counts):
            found += 1
            print(f"{path}: {name}: {what} `{instr}`")
    print(f"{prog}: {summary(len(args.objects), found)}", file=sys.stderr)
    if counts["functions"] == 0:
        print(f"{prog}: no function to check in the objects", file=sys.stderr)
        return 1
    return 1 if found else 0


def main():
    counts = {"functions": 0, "uses": 0}
    return check_objects("check-sass-descriptors", undefined_descriptors, counts, "undefined descriptor in",
                         lambda objects, found: f"{objects} objects, {counts['functions']} functions, "
                                                f"{counts['uses']} descriptor uses, {found} undefined")


if __name__ == "__main__":
    sys.exit(main())
