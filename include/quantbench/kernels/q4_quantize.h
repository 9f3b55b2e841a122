// GPU quantizers of the 4-bit formats, bit-exact with their CPU references (src/quant/bnb_4bit_codec.cpp,
// src/quant/awq_format.cpp): the same fp32 / fp16 operations in the same order, IEEE division where the CPU
// divides, no FMA contraction where the CPU rounds twice. tests/test_q4_gpu_quantize.cpp checks equality.
// Outputs are the canonical tensors (quantbench/kernels/q4_layout.h): codes two per byte, the earlier element in
// the high nibble. Asynchronous on `stream`, no allocation.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "quantbench/kernels/decode_ops.h"  // DType

namespace qb::kernels {

// bitsandbytes' bucketize of a scaled value: code = code_of[number of bounds < v] (torch.bucketize, right=False:
// a value equal to a bound takes the lower position; NaN takes position 0).
struct Bnb4bitBuckets {
  float bounds[15] = {};   // sorted fp32 midpoints of the codebook
  uint64_t code_of = 0;    // nibble i: the 4-bit code of sorted position i
};

// quantize_4bit of the flattened weight (numel elements of dtype fp32/fp16/bf16, converted to fp32 exactly):
// per block of `blocksize` elements absmax = max|x| (NaN if any element is NaN); a full block scales by
// rec = 1 / max(absmax, tiny) (IEEE division) and stores absmax; the partial last block divides each element by
// max(absmax, tiny) and stores that; the scaled value is clamped to [-1, 1] (NaN passes) and bucketized; an odd
// numel pads the last byte's low nibble with the code of 0.0. tiny = (float)1e-38, passed as the CPU computes it.
// packed [ceil(numel / 2)], absmax [ceil(numel / blocksize)] fp32.
void bnb_quantize_4bit_cuda(DType dtype, const void* weight, int64_t numel, int64_t blocksize,
                            const Bnb4bitBuckets& buckets, float tiny, uint8_t* packed, float* absmax,
                            cudaStream_t stream);

// AutoAWQ round-to-nearest of weight [N, K] fp16 (already converted, as AutoAWQ's linear.half()), groups of
// `group` along K, every op rounded to fp16 after an fp32 computation (torch's CPU Half arithmetic):
//   max, min per group; scale = half(max(half(max - min), min_scale) / 15); zero = clamp(-rint(half(min / scale)), 0, 15)
//   q = clamp(half(rint(half(w / scale)) + zero), 0, 15)
// min_scale_bits = fp16 bits of torch's Half(1e-5). codes [N * K / 2] (N * K even), scales [N][K/group] fp16
// bits, zeros [N][K/group]. Non-finite weights give unspecified codes (the CPU's uint8 cast of NaN is undefined).
void awq_quantize_rtn_cuda(const uint16_t* weight_fp16, int64_t N, int64_t K, int64_t group, uint16_t min_scale_bits,
                           uint8_t* codes, uint16_t* scales, uint8_t* zeros, cudaStream_t stream);

}  // namespace qb::kernels
