// Writing what `quantbench quantize` makes, as AutoAWQ's save_quantized lays out a GEMM checkpoint:
//   model.safetensors  every quantized linear as <prefix>.qweight int32 [in, out/8], <prefix>.qzeros int32
//                      [in/g, out/8], <prefix>.scales fp16 [in/g, out] (awq_pack.h), its bias as <prefix>.bias fp16;
//                      every other tensor (embeddings, norms with the folded scales, linears kept dense, the
//                      head) in fp16 under its own name and orientation (gpt2's dense Conv1D weights [in, out]);
//                      __metadata__ {"format": "pt"} as transformers writes it.
//   config.json        the source config, dtype float16, plus quantization_config {quant_method "awq", bits 4,
//                      group_size, zero_point true, version "gemm", modules_to_not_convert (null when none)}.
//   tokenizer.json, tokenizer_config.json, generation_config.json (and the other tokenizer files) copied.
// gpt2 (Conv1D, fused c_attn) is written the same way; quantbench loads it, AutoAWQ has no gpt2 support.
#pragma once

#include <ATen/Tensor.h>
#include <nlohmann/json.hpp>

#include <string>

#include "quantbench/quant/awq_search.h"

namespace qb::quant {

struct CheckpointWriteSummary {
  std::string dir;
  int64_t tensors = 0;
  int64_t file_bytes = 0;            // model.safetensors
  std::vector<std::string> copied;   // tokenizer and generation files taken from the source
};

nlohmann::json awq_quantization_config(const AwqQuantizeOptions& options);

// `overwrite`: replace an earlier model.safetensors there (never other shards: refused, they would be read too).
CheckpointWriteSummary write_awq_checkpoint(const AwqQuantizedModel& quantized, const std::string& out_dir,
                                            bool overwrite = false);

// A DenseModel as a dense checkpoint in `dtype` (float32 keeps it exact), config.json unchanged but for its dtype.
CheckpointWriteSummary write_dense_checkpoint(const DenseModel& model, const std::string& out_dir,
                                              at::ScalarType dtype = at::kFloat, bool overwrite = false);

}  // namespace qb::quant
