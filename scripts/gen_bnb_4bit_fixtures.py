#!/usr/bin/env python3
"""Golden files for the nf4/fp4 formats, made by bitsandbytes itself (the CPU package, 0.50.2).

Run from the repo root:  .venv/bin/python scripts/gen_bnb_4bit_fixtures.py

Every expected value below is bitsandbytes' own output on CPU tensors, not a re-implementation:
  quantize_4bit  -> bnb's "default" backend (pure torch: absmax per flat block, x * (1/absmax) clamped to
                    [-1, 1] (the partial last block divides instead), torch.bucketize on fp32 midpoints,
                    ties to the lower code, FP4 remapped through argsort of its codebook)
  quantize_blockwise (the nested absmax step) -> libbitsandbytes_cpu.so quantize_cpu_impl (a 65536-bin
                    lookup table over [-1, 1] built from fp32 midpoints of the dynamic map; the bin index is
                    trunc(fma((v + 1) * 0.5, 65535, 0.5)))
  dequantize_4bit -> libbitsandbytes_cpu.so (and, for the fp32 reference, the default backend's
                    _dequantize_4bit_compute, whose blocks run over the flattened tensor)

Writes tests/fixtures/bnb_4bit/:
  cases.safetensors   per case C:
      C.input           the dense weight as transformers would pass it (fp32, fp16 or bf16: bnb quantizes
                        A.reshape(-1).float(), i.e. from this dtype, converted exactly)
      C.packed          uint8 [ceil(numel/2)]   bnb's packed codes (stored as [n, 1] by bnb; flattened here)
      C.absmax          float32 [blocks]  (not nested) | uint8 [blocks] (nested)
      C.absmax_f32      float32 [blocks]  the absmax before double quantization (bnb with
                        compress_statistics=False on the same input)
      C.nested_absmax   float32 [ceil(blocks/256)]          (nested only)
      C.nested_offset   float32 [1]  mean(absmax) as torch computed it  (nested only)
      C.dequant_f32     float32 [out, in]  bnb default backend dequantize (flat blocks), fp32
      (bnb.functional.dequantize_4bit's own output, in the input dtype, equals dequant_f32 rounded to that
       dtype whenever native_dequant_matches_flat is true; it is not stored, to keep the files small)
    plus dynamic_map (float32 [256], create_dynamic_map()), nf4_code, fp4_code (float32 [16]).
    __metadata__: "cases" = JSON {case: {quant_type, blocksize, nested, dtype, shape,
                  native_dequant_matches_flat}} and "cpu_capability" (torch's CPU kernel set: the nested
                  offset is a torch mean whose summation order depends on it).
  serialized/model.safetensors   two Linear4bit layers saved the way bnb/transformers do it: `<p>.weight`
                  (uint8 [ceil(numel/2), 1]) plus QuantState.as_dict(packed=True) under `<p>.weight.`, and a
                  plain `<p>.bias`; serialized_expected.safetensors holds each layer's fp32 dequantized weight.

bnb CPU quirk recorded by native_dequant_matches_flat: libbitsandbytes_cpu's AVX-512 dequantize_4bit
(taken when in % 16 == 0 and blocksize % 16 == 0) indexes absmax per row (row * in/blocksize + k/blocksize),
which is wrong when blocks straddle rows (in % blocksize != 0); its scalar path, the CUDA kernel and the
default backend all use flat blocks. quantbench follows flat blocks everywhere.
"""

from __future__ import annotations

import json
import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixtures_common import save_file_stable  # noqa: E402

warnings.filterwarnings("ignore")
import logging  # noqa: E402

logging.disable(logging.WARNING)
import bitsandbytes as bnb  # noqa: E402
import bitsandbytes.functional as F  # noqa: E402
from bitsandbytes.backends.default.ops import _dequantize_4bit_compute  # noqa: E402
from bitsandbytes.backends.utils import _get_4bit_code  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "bnb_4bit")

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def special_weight(shape, dtype, quant_type, gen):
    """Random normal values, plus a row of edge cases: exact midpoints between codes (ties), values just
    either side of zero, and a whole block of zeros (absmax 0)."""
    w = torch.randn(shape, generator=gen) * 0.05
    flat = w.view(-1)
    code = _get_4bit_code(quant_type, torch.device("cpu"))
    srt = code.sort().values
    mids = ((srt[:-1] + srt[1:]) / 2).tolist()
    # first block: absmax exactly 1.0 so x/absmax is x, then every midpoint and its neighbours
    edge = [1.0] + mids + [m + 1e-7 for m in mids] + [1e-4, -1e-4, 0.0, -0.0, 2e-3, -2e-3]
    n = min(len(edge), flat.numel())
    flat[:n] = torch.tensor(edge[:n])
    if flat.numel() >= 256:
        flat[128:192] = 0.0  # a block of zeros when blocksize <= 64
    return w.to(dtype)


CASES = [
    # name, quant_type, blocksize, nested, dtype, shape, special
    ("nf4_b64_fp32_straddle", "nf4", 64, False, "float32", (24, 40), True),
    ("nf4_b32_dq_bf16_twonested", "nf4", 32, True, "bfloat16", (72, 120), False),
    ("fp4_b128_dq_fp16", "fp4", 128, True, "float16", (48, 100), False),
    ("fp4_b64_fp32_oddnumel", "fp4", 64, False, "float32", (7, 9), False),
    ("fp4_b64_fp32_edges", "fp4", 64, False, "float32", (8, 64), True),
    ("nf4_b64_fp32_edges", "nf4", 64, False, "float32", (8, 64), True),
    ("nf4_b4096_dq_bf16", "nf4", 4096, True, "bfloat16", (5, 1000), False),
    ("nf4_b128_fp16_rowstraddle", "nf4", 128, False, "float16", (32, 192), False),
    ("nf4_b64_dq_fp16_rem", "nf4", 64, True, "float16", (33, 130), False),
]


def make_case(name, quant_type, blocksize, nested, dtype_name, shape, special, gen):
    dtype = DTYPES[dtype_name]
    if special:
        w = special_weight(shape, dtype, quant_type, gen)
    else:
        w = (torch.randn(shape, generator=gen) * 0.02).to(dtype)
    packed, state = F.quantize_4bit(w, blocksize=blocksize, compress_statistics=nested, quant_type=quant_type)
    _, plain_state = F.quantize_4bit(w, blocksize=blocksize, compress_statistics=False, quant_type=quant_type)
    tensors = {
        f"{name}.input": w.contiguous(),
        f"{name}.packed": packed.reshape(-1).contiguous(),
        f"{name}.absmax": state.absmax.contiguous(),
        f"{name}.absmax_f32": plain_state.absmax.contiguous(),
    }
    if nested:
        assert state.state2.blocksize == 256
        tensors[f"{name}.nested_absmax"] = state.state2.absmax.contiguous()
        tensors[f"{name}.nested_offset"] = state.offset.reshape(1).float().contiguous()
    # bnb's own dequantize (native CPU library), in the state's dtype
    dequant_dtype = F.dequantize_4bit(packed, state)
    # fp32 flat-block reference: bnb's default backend on the same absmax bnb dequantizes with
    if nested:
        absmax = F.dequantize_blockwise(state.absmax, state.state2)
        absmax += state.offset
        absmax = absmax.float()
    else:
        absmax = state.absmax
    code = _get_4bit_code(quant_type, torch.device("cpu"))
    dequant_f32 = _dequantize_4bit_compute(packed.reshape(-1), absmax, code, blocksize, tuple(shape), torch.float32)
    tensors[f"{name}.dequant_f32"] = dequant_f32.contiguous()
    meta = {
        "quant_type": quant_type,
        "blocksize": blocksize,
        "nested": nested,
        "dtype": dtype_name,
        "shape": list(shape),
        "native_dequant_matches_flat": bool(torch.equal(dequant_dtype, dequant_f32.to(dtype))),
    }
    return tensors, meta


def write_serialized(gen):
    """Two layers as bnb's Linear4bit._save_to_state_dict writes them (QuantState.as_dict(packed=True))."""
    layers = [
        ("model.layers.0.mlp.up_proj", "nf4", 64, True, torch.bfloat16, (48, 128)),
        ("model.layers.0.self_attn.q_proj", "fp4", 128, False, torch.float16, (40, 128)),
    ]
    tensors, expected = {}, {}
    for prefix, qt, bs, nested, dtype, shape in layers:
        w = (torch.randn(shape, generator=gen) * 0.02).to(dtype)
        packed, state = F.quantize_4bit(w, blocksize=bs, compress_statistics=nested, quant_type=qt)
        tensors[f"{prefix}.weight"] = packed.contiguous()  # uint8 [ceil(numel/2), 1]
        for k, v in state.as_dict(packed=True).items():
            tensors[f"{prefix}.weight.{k}"] = v.contiguous()
        tensors[f"{prefix}.bias"] = (torch.randn(shape[0], generator=gen) * 0.1).to(dtype)
        deq = F.dequantize_4bit(packed, state).float()
        expected[f"{prefix}.dequant_f32"] = _dequantize_4bit_compute(
            packed.reshape(-1),
            (F.dequantize_blockwise(state.absmax, state.state2) + state.offset).float() if nested else state.absmax,
            _get_4bit_code(qt, torch.device("cpu")),
            bs,
            shape,
            torch.float32,
        ).contiguous()
        assert torch.equal(deq, expected[f"{prefix}.dequant_f32"].to(dtype).float())
        expected[f"{prefix}.bias"] = tensors[f"{prefix}.bias"]
    os.makedirs(os.path.join(OUT, "serialized"), exist_ok=True)
    save_file_stable(tensors, os.path.join(OUT, "serialized", "model.safetensors"), metadata={"format": "pt"})
    # beside the checkpoint directory, not in it: a checkpoint reader opens every *.safetensors it holds
    save_file_stable(expected, os.path.join(OUT, "serialized_expected.safetensors"))


def main():
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(4242)
    tensors = {
        "dynamic_map": F.create_dynamic_map().float().contiguous(),
        "nf4_code": _get_4bit_code("nf4", torch.device("cpu")).clone().contiguous(),
        "fp4_code": _get_4bit_code("fp4", torch.device("cpu")).clone().contiguous(),
    }
    metas = {}
    for case in CASES:
        t, m = make_case(*case, gen)
        tensors.update(t)
        metas[case[0]] = m
    metadata = {
        "cases": json.dumps(metas, sort_keys=True),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "generator": f"bitsandbytes {bnb.__version__} CPU, torch {torch.__version__}",
    }
    save_file_stable(tensors, os.path.join(OUT, "cases.safetensors"), metadata=metadata)
    write_serialized(gen)
    for name, m in metas.items():
        print(name, "native dequant matches flat blocks:", m["native_dequant_matches_flat"])
    print_pivot_report()


def print_pivot_report():
    """CPU (default backend) midpoints vs the CUDA kernels' decision-tree literals (csrc/kernels.cu
    dQuantizeNF4 / dQuantizeFP4): where they differ, a value between the two quantizes differently."""
    import numpy as np

    cuda_nf4 = [-0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544,
                -0.23460740596055984, -0.13791173323988914, -0.045525018125772476, 0.03979014977812767,
                0.1202552504837513, 0.2035212516784668, 0.2920137718319893, 0.3893125355243683,
                0.5016634166240692, 0.6427869200706482, 0.8614784181118011]
    code = _get_4bit_code("nf4", torch.device("cpu"))
    cpu = ((code[:-1] + code[1:]) / 2).tolist()
    for i, (a, b) in enumerate(zip(cpu, cuda_nf4)):
        fb = float(np.float32(b))
        if a != fb:
            print(f"nf4 pivot {i}: cpu {a!r} cuda {fb!r}")
    cuda_fp4 = [0.00260417, 0.0859375, 0.20833333, 0.29166667, 0.4166667, 0.583333, 0.8333333]
    c = _get_4bit_code("fp4", torch.device("cpu"))
    mags = sorted(set(abs(x) for x in c.tolist()))
    cpu = [(mags[i] + mags[i + 1]) / 2 for i in range(len(mags) - 1)]
    cpu = [float(np.float32((np.float32(mags[i]) + np.float32(mags[i + 1])) / np.float32(2))) for i in range(len(mags) - 1)]
    for i, (a, b) in enumerate(zip(cpu, cuda_fp4)):
        fb = float(np.float32(b))
        if a != fb:
            print(f"fp4 |pivot| {i}: cpu {a!r} cuda {fb!r}")


if __name__ == "__main__":
    main()
