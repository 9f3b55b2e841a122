// AutoAWQ INT4 ("awq"): load checkpoints AutoAWQ wrote (quant_method "awq", version "gemm", 4 bits, zero point),
// and quantize a dense weight the way AutoAWQ's pseudo_quantize_tensor does (round to nearest per group of g
// inputs, zero point, in fp16 as AutoAWQ runs it):
//   max = amax(w), min = amin(w) per group;  scale = clamp(max - min, min=1e-5) / 15   (clamp, then divide)
//   zero = clamp(-round(min / scale), 0, 15);  q = clamp(round(w / scale) + zero, 0, 15)   (round half to even)
// (AutoAWQ's activation-aware scale search is a calibration step outside this format; its result is an
// AWQ checkpoint this format loads.) Tensor layout: quantbench/quant/awq_pack.h.
#pragma once

#include <ATen/Tensor.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>

#include "quantbench/quant/awq_pack.h"
#include "quantbench/quant/format.h"
#include "quantbench/quant/q4_linear.h"

namespace qb::quant {

// Round-to-nearest group quantization of weight [out, in] (any float dtype; converted to fp16 first).
// Throws kInvalidInput when in % group_size != 0 or out * in is odd; any out_features runs (only AutoAWQ's
// packed tensors, awq_pack, need out % 8 == 0).
AwqUnpacked awq_quantize_rtn(const at::Tensor& weight, int64_t group_size);
Q4Weights awq_to_q4(const AwqUnpacked& unpacked);

// config.json's quantization_config must say quant_method "awq", version "gemm" (any case), bits 4 and
// zero_point true (AutoAWQ's older keys w_bit / q_group_size accepted); otherwise kUnsupported naming
// `source` and the offending value. Returns the group size it names (or 0 when it names none).
int64_t awq_check_quantization_config(const nlohmann::json& quantization_config, const std::string& source);

std::unique_ptr<WeightFormat> make_awq_format();

}  // namespace qb::quant
