// bitsandbytes NF4 / FP4 ("nf4", "fp4"), bit-exact with bitsandbytes 0.50.2 on CPU tensors.
//
// Quantize (bitsandbytes' default backend, which serves quantize_4bit for CPU tensors): the weight is
// flattened row-major and converted to fp32 (exact from fp16/bf16); per block of `blocksize` elements
// absmax = max|x|; x * (1 / max(absmax, 1e-38)) clamped to [-1, 1] (the partial last block divides by its
// absmax instead, and stores the clamped absmax); the code is the number of fp32 midpoints between sorted
// codebook values that are < the scaled value (torch.bucketize: ties go to the lower code); FP4 maps the
// sorted position back through bnb's argsort of its codebook. Two codes per byte, earlier element HIGH.
// Double quantization (compress_statistics): offset = mean(absmax) (a torch fp32 mean, computed here with
// ATen's own CPU kernel), then (absmax - offset) is quantized in blocks of 256 with the signed dynamic map
// by libbitsandbytes_cpu's quantize_cpu: a 65536-bin lookup table over [-1, 1] built from fp32 midpoints,
// bin = trunc(fma((v + 1) * 0.5, 65535, 0.5)) for v = clamp(a * (1 / blockmax), -1, 1).
// Dequantize: codebook[code] * absmax in fp32 over flat blocks (absmax from the nested chain as
// fp32(fp32(map[q] * nested_absmax) + offset)).
// bnb's CUDA quantizer (decision trees in csrc/kernels.cu) can give other bytes than this CPU path: its FP4
// pivots differ in the last digits, an all-zero NF4 block gets code 0 instead of 7, the sign of tiny FP4
// values is taken from x < 0. A checkpoint quantized on CUDA still loads and dequantizes exactly
// (kernels/NOTES-q4.md, "bitsandbytes compatibility").
// Serialized form (transformers / bnb Linear4bit state dict, QuantState.as_dict(packed=True)), under a
// layer prefix P:  P.weight uint8 [ceil(numel/2), 1]; P.weight.absmax (uint8 when nested, else float32);
// P.weight.quant_map float32 [16]; P.weight.nested_absmax, P.weight.nested_quant_map float32 [256] when
// nested; P.weight.quant_state.bitsandbytes__nf4 (or __fp4): uint8 bytes of JSON {quant_type, blocksize,
// dtype, shape, [nested_blocksize, nested_dtype, nested_offset]}.
#pragma once

#include <ATen/Tensor.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "quantbench/quant/format.h"
#include "quantbench/quant/q4_linear.h"

namespace qb::io {
class Checkpoint;
}

namespace qb::quant {

enum class Bnb4bitType { kNf4, kFp4 };

const char* bnb_4bit_type_name(Bnb4bitType type);
// bitsandbytes' get_4bit_type(): code -> value (fp4: [0, 0.0625, 8, 12, 4, 6, 2, 3] / 12, bit 3 = sign).
const std::array<float, 16>& bnb_4bit_codebook(Bnb4bitType type);
// create_dynamic_map(signed=True): the 256-entry map of double quantization.
const std::array<float, 256>& bnb_dynamic_map();

// One weight's QuantState, field for field as bitsandbytes keeps and serializes it.
struct Bnb4bitState {
  Bnb4bitType type = Bnb4bitType::kNf4;
  int64_t blocksize = 64;
  std::vector<int64_t> shape;     // the logical weight shape, [out, in]
  std::string dtype = "float32";  // the dtype bnb quantized from ("float32", "float16", "bfloat16")
  at::Tensor packed;              // uint8 [ceil(numel/2)] (bnb stores it as [n, 1])
  at::Tensor absmax;              // float32 [blocks], or uint8 [blocks] when nested
  bool nested = false;
  at::Tensor nested_absmax;       // float32 [ceil(blocks / nested_blocksize)]
  at::Tensor nested_code;         // float32 [256]
  int64_t nested_blocksize = 256;
  float nested_offset = 0.f;

  int64_t numel() const;
  int64_t blocks() const { return (numel() + blocksize - 1) / blocksize; }
};

// weight: 2-D, fp32 / fp16 / bf16, any device (moved to the CPU). blocksize: a power of two in 32..4096
// (bitsandbytes' list). Throws kInvalidInput otherwise.
Bnb4bitState bnb_quantize_4bit(const at::Tensor& weight, Bnb4bitType type, int64_t blocksize, bool double_quant);
// The double-quantization step on its own (bitsandbytes quantize_blockwise with the dynamic map on CPU):
// values float32 [n] -> (codes uint8 [n], block absmax float32 [ceil(n / blocksize)]).
std::pair<at::Tensor, at::Tensor> bnb_quantize_blockwise_dynamic(const at::Tensor& values, int64_t blocksize = 256);
at::Tensor bnb_dequantize_absmax(const Bnb4bitState& state);  // float32 [blocks]
at::Tensor bnb_dequantize_4bit(const Bnb4bitState& state);    // float32 [shape]
Q4Weights bnb_state_to_q4(const Bnb4bitState& state);

// Whether `prefix`.weight and its quant state (of this type) are in the checkpoint, and the state.
bool bnb_has_serialized(const io::Checkpoint& checkpoint, const std::string& prefix, Bnb4bitType type);
Bnb4bitState bnb_load_state(const io::Checkpoint& checkpoint, const std::string& prefix, Bnb4bitType type);

std::unique_ptr<WeightFormat> make_bnb_4bit_format(Bnb4bitType type);

}  // namespace qb::quant
