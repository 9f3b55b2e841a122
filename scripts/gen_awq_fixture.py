#!/usr/bin/env python3
"""A tiny AutoAWQ-layout checkpoint ("awq", version "gemm") and its dequantized values.

Run from the repo root:  .venv/bin/python scripts/gen_awq_fixture.py

autoawq is not installed here: this is a reference packer written from the published format
(casper-hansen/AutoAWQ awq/quantize/quantizer.py pseudo_quantize_tensor, awq/modules/linear/gemm.py
WQLinear_GEMM.from_linear, awq/utils/packing_utils.py):
  quantize (RTN, zero point, per group of g inputs of one output row), in fp16 like AutoAWQ (_apply_quant
  calls .half() first; every torch op below rounds to fp16):
      max = amax(w), min = amin(w)
      scales = clamp(max - min, min=1e-5) / 15
      zeros  = clamp(-round(min / scales), 0, 15)
      q      = clamp(round(w / scales) + zeros, 0, 15)          (round = half to even)
  pack (GEMM): qweight int32 [in, out/8], column block c of 8 outputs, nibble i (bits 4i..4i+3) holds output
      8c + [0, 2, 4, 6, 1, 3, 5, 7][i]; qzeros int32 [in/g, out/8] packed the same way; scales fp16 [in/g, out].
  dequantize: w[i, j] = (q[i, j] - z[i/g, j]) * s[i/g, j]   (exact in fp32: |q - z| <= 15, s is fp16)

Writes tests/fixtures/awq/tiny/:
  config.json          a minimal config with quantization_config {quant_method awq, bits 4, group_size 128,
                       zero_point true, version gemm, modules_to_not_convert null}
  model.safetensors    per layer <p>.qweight, <p>.qzeros, <p>.scales (+ <p>.bias fp16 for q_proj)
  expected.safetensors per layer <p>.dense (the fp16 weight [out, in] that was quantized), <p>.dequant_f32
                       ([out, in], exact), <p>.q (uint8 [out, in]) and <p>.zeros (uint8 [out, in/g])
The layers use group 128 and, for down_proj, group 64 (the config names 128; the loader infers the group
from the tensor shapes, as AutoAWQ itself asserts in_features % group_size == 0).
"""

from __future__ import annotations

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixtures_common import save_file_stable  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "awq", "tiny")
AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]


def pseudo_quantize(w: torch.Tensor, group: int):
    """AutoAWQ's zero-point RTN in fp16; returns q [out, in], zeros [out, in/g], scales [out, in/g]."""
    out_f, in_f = w.shape
    w = w.half().reshape(-1, group)
    max_val = w.amax(dim=1, keepdim=True)
    min_val = w.amin(dim=1, keepdim=True)
    scales = (max_val - min_val).clamp(min=1e-5) / 15
    zeros = (-torch.round(min_val / scales)).clamp_(0, 15)
    q = torch.clamp(torch.round(w / scales) + zeros, 0, 15)
    return (q.reshape(out_f, in_f).to(torch.uint8), zeros.reshape(out_f, -1).to(torch.uint8),
            scales.reshape(out_f, -1))


def pack_columns(values: torch.Tensor) -> torch.Tensor:
    """[rows, cols] ints 0..15 -> int32 [rows, cols/8] in AutoAWQ's nibble order."""
    rows, cols = values.shape
    v = values.to(torch.int64).reshape(rows, cols // 8, 8)
    packed = torch.zeros(rows, cols // 8, dtype=torch.int64)
    for i in range(8):
        packed |= v[:, :, AWQ_ORDER[i]] << (4 * i)
    return packed.to(torch.uint32).view(torch.int32) if hasattr(torch, "uint32") else (
        torch.where(packed >= 2**31, packed - 2**32, packed).to(torch.int32))


def main():
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(808)
    layers = [("model.layers.0.self_attn.q_proj", 256, 32, 128, True),
              ("model.layers.0.mlp.down_proj", 128, 40, 64, False)]
    model, expected = {}, {}
    for prefix, in_f, out_f, group, with_bias in layers:
        dense = (torch.randn(out_f, in_f, generator=gen) * 0.05).half()
        dense[0, :group] = 0.0  # a constant group: max - min = 0 -> scale clamps to 1e-5 / 15
        dense[1, :8] = torch.tensor([0.5, -0.5, 0.25, -0.25, 1e-3, -1e-3, 0.1, -0.1]).half()
        q, zeros, scales = pseudo_quantize(dense, group)
        model[f"{prefix}.qweight"] = pack_columns(q.t().contiguous())                    # [in, out/8]
        model[f"{prefix}.qzeros"] = pack_columns(zeros.t().contiguous())                 # [in/g, out/8]
        model[f"{prefix}.scales"] = scales.t().contiguous().half()                       # [in/g, out]
        if with_bias:
            model[f"{prefix}.bias"] = (torch.randn(out_f, generator=gen) * 0.1).half()
        s = scales.float().repeat_interleave(group, dim=1)
        z = zeros.float().repeat_interleave(group, dim=1)
        expected[f"{prefix}.dense"] = dense.contiguous()
        expected[f"{prefix}.dequant_f32"] = ((q.float() - z) * s).contiguous()
        expected[f"{prefix}.q"] = q.contiguous()
        expected[f"{prefix}.zeros"] = zeros.contiguous()
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "torch_dtype": "float16",
        "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True,
                                "version": "gemm", "modules_to_not_convert": None},
    }
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    save_file_stable(model, os.path.join(OUT, "model.safetensors"), metadata={"format": "pt"})
    save_file_stable(expected, os.path.join(OUT, "expected.safetensors"))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
