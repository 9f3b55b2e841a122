#!/usr/bin/env python3
"""Golden files for the llm.int8 format, made by bitsandbytes itself (the CPU package, 0.50.2).

Run from the repo root:  .venv/bin/python scripts/gen_bnb_int8_fixture.py

Every expected value is bitsandbytes' own output on CPU tensors, not a re-implementation:
  weights   Linear8bitLt(has_fp16_weights=False).to("cpu") -> Int8Params._quantize ->
            int8_vectorwise_quant(W.to(float16)) on bnb's "default" backend (pure torch: SCB = row absmax of
            the fp16 weight, CB = round(W16 * (127 / SCB)), round half to even), then the module's own
            state_dict(): `<p>.weight` int8 [out, in], `<p>.SCB` fp32 [out], `<p>.weight_format` uint8
            scalar 0 ("row"), `<p>.bias`.
  forward   the ops MatMul8bitLt.forward calls with threshold 6.0, on the CPU: int8_vectorwise_quant(
            A.to(float16), 6.0) -> (CA, SCA, outlier_cols), then int8_mixed_scaled_mm(A, CA, CB, SCA, SCB,
            outlier_cols, bias) (the int8 part through int8_linear_matmul (exact int32) and
            int8_mm_dequant, the outlier columns through A[:, cols] @ dequant(CB[:, cols]).to(A.dtype).t()).
            (Linear8bitLt.forward itself takes a dequantize-then-matmul path on the CPU, so the ops are
            called directly.)

Writes tests/fixtures/bnb_int8/:
  model/model.safetensors  the two layers' state_dict, as transformers saves a bnb 8-bit model (a
                           checkpoint directory of its own)
  reference.safetensors  per layer P:
      P.dense_weight  fp32 [out, in]  the weight before quantization (quantize_llm_int8 must give CB, SCB)
      P.input         fp16 [rows, in] activations with outlier columns (|x| >= 6 in some columns)
      P.ca            int8 [rows, in] bnb's CA (outlier columns zeroed)
      P.sca           fp32 [rows]     bnb's SCA
      P.outlier_cols  int64 [n]       bnb's outlier column indices
      P.output        fp16 [rows, out] bnb's forward output (int8 part + 16-bit outlier part + bias)
"""

from __future__ import annotations

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

THRESHOLD = 6.0
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "bnb_int8")


def make_layer(in_features: int, out_features: int, bias: bool, seed: int) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    dense = torch.nn.Linear(in_features, out_features, bias=bias)
    with torch.no_grad():
        dense.weight[1] = 0.0  # an all-zero row: SCB 0, CB 0
        dense.weight[2, 5] = 3.0  # a row dominated by one large weight
    layer = bnb.nn.Linear8bitLt(in_features, out_features, bias=bias, has_fp16_weights=False, threshold=THRESHOLD)
    layer.load_state_dict(dense.state_dict())
    layer = layer.to("cpu")  # Int8Params quantizes on the move from the CPU to a (non-meta) device
    assert layer.weight.dtype == torch.int8
    return layer, dense.weight.detach().clone()


def make_input(rows: int, in_features: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, in_features, generator=g)
    x[0, 3] = 9.5  # outlier column 3 (other rows of that column stay small)
    x[2, 10] = -6.0  # exactly at the threshold: bnb counts |x| >= threshold
    x[1, 11] = 5.99  # just below
    x[:, in_features - 2] *= 8.0  # a whole outlier column
    return x.to(torch.float16)


def main() -> None:
    os.makedirs(os.path.join(OUT_DIR, "model"), exist_ok=True)
    specs = [("layers.0.proj", 64, 40, True, 1), ("layers.1.proj", 72, 24, False, 2)]
    model: dict[str, torch.Tensor] = {}
    reference: dict[str, torch.Tensor] = {}
    for prefix, in_features, out_features, bias, seed in specs:
        layer, dense_weight = make_layer(in_features, out_features, bias, seed)
        state = layer.state_dict()
        assert state["weight_format"].dtype == torch.uint8 and state["weight_format"].item() == 0
        for key, value in state.items():
            model[f"{prefix}.{key}"] = value.detach().contiguous()
        cb, scb = state["weight"], state["SCB"]
        x = make_input(5, in_features, seed + 100)
        ca, sca, cols = torch.ops.bitsandbytes.int8_vectorwise_quant.default(x.clone(), THRESHOLD)
        bias_t = state.get("bias")
        bias_16 = bias_t.to(x.dtype) if bias_t is not None else None
        out, _ = torch.ops.bitsandbytes.int8_mixed_scaled_mm.default(x, ca, cb, sca, scb, cols, bias_16)
        reference[f"{prefix}.dense_weight"] = dense_weight.float().contiguous()
        reference[f"{prefix}.input"] = x.contiguous()
        reference[f"{prefix}.ca"] = ca.contiguous()
        reference[f"{prefix}.sca"] = sca.contiguous()
        reference[f"{prefix}.outlier_cols"] = cols.to(torch.int64).contiguous()
        reference[f"{prefix}.output"] = out.contiguous()
        print(f"{prefix}: CB {tuple(cb.shape)}, outlier columns {cols.tolist()}, SCB[1] = {scb[1].item()}")
    save_file_stable(model, os.path.join(OUT_DIR, "model", "model.safetensors"), metadata={"format": "pt"})
    save_file_stable(reference, os.path.join(OUT_DIR, "reference.safetensors"),
                     metadata={"bitsandbytes": bnb.__version__, "threshold": str(THRESHOLD)})


if __name__ == "__main__":
    main()
