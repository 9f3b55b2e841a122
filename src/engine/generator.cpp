#include "quantbench/engine/generator.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "quantbench/core/error.h"

#ifdef QB_HAVE_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "quantbench/kernels/decode_ops.h"
#endif

namespace qb::engine {

struct Generator::GraphState {
#ifdef QB_HAVE_CUDA
  // Graph capture is refused on the default stream; generation runs on this side stream.
  c10::cuda::CUDAStream stream = c10::cuda::getStreamFromPool();
  at::cuda::CUDAGraph graph;
  bool captured = false;
#endif
};

namespace {

bool all_finished(const at::Tensor& generated_cpu, int64_t upto, const std::vector<int64_t>& eos_ids) {
  for (int64_t b = 0; b < generated_cpu.size(0); ++b) {
    bool finished = false;
    for (int64_t t = 0; t < upto && !finished; ++t) {
      finished = std::find(eos_ids.begin(), eos_ids.end(), generated_cpu[b][t].item<int64_t>()) != eos_ids.end();
    }
    if (!finished) return false;
  }
  return true;
}

}  // namespace

Generator::Generator(const model::CausalLM& model, int64_t batch, int64_t prompt_len, GenerateOptions options)
    : model_(model), batch_(batch), prompt_len_(prompt_len), options_(std::move(options)),
      cache_(model.config(), batch, prompt_len + options_.gen_len, model.dtype(), model.device()),
      graph_(model.device().is_cuda() ? std::make_unique<GraphState>() : nullptr) {
  QB_CHECK(prompt_len > 0 && options_.gen_len > 0, kInvalidInput, "prompt length ({}) and --gen-len ({}) must be positive",
           prompt_len, options_.gen_len);
  QB_CHECK(prompt_len + options_.gen_len <= model.max_positions(), kInvalidInput,
           "prompt ({}) + generation ({}) exceed the model's {} positions", prompt_len, options_.gen_len,
           model.max_positions());
  const auto ids = at::TensorOptions().dtype(at::kLong).device(model.device());
  tokens_ = at::zeros({batch, 1}, ids);
  next_ = at::zeros({batch}, ids);
  position_ = at::zeros({1}, ids);
  generated_ = at::zeros({batch, options_.gen_len}, ids);
}

Generator::~Generator() = default;

bool Generator::graph_captured() const {
#ifdef QB_HAVE_CUDA
  return graph_ != nullptr && graph_->captured;
#else
  return false;
#endif
}

GenerateResult Generator::run(const at::Tensor& prompt, bench::Timeline* timeline) {
  QB_CHECK(prompt.dim() == 2 && prompt.size(0) == batch_ && prompt.size(1) == prompt_len_, kInvalidInput,
           "prompt must be [{}, {}], got [{}, {}]", batch_, prompt_len_, prompt.size(0), prompt.dim() > 1 ? prompt.size(1) : 0);
  return model_.device().is_cuda() ? run_cuda(prompt, timeline) : run_cpu(prompt, timeline);
}

GenerateResult Generator::run_cpu(const at::Tensor& prompt, bench::Timeline* timeline) {
  const at::Tensor input = prompt.to(at::kLong).contiguous();
  if (timeline != nullptr) timeline->mark();
  model::StepPositions prefill;
  at::Tensor logits = model_.forward(input, &cache_, prefill, true);
  at::Tensor next = logits.select(1, 0).argmax(-1);  // [B]
  generated_.select(1, 0).copy_(next);
  if (timeline != nullptr) timeline->mark();
  GenerateResult result;
  int64_t produced = 1;
  for (; produced < options_.gen_len; ++produced) {
    if (options_.stop_at_eos && all_finished(generated_, produced, options_.eos_ids)) break;
    model::StepPositions step;
    step.decode = true;
    step.host_position = prompt_len_ + produced - 1;
    step.position = at::full({1}, step.host_position, at::kLong);
    logits = model_.forward(next.unsqueeze(1), &cache_, step, true);
    next = logits.select(1, 0).argmax(-1);
    generated_.select(1, produced).copy_(next);
    if (timeline != nullptr) timeline->mark();
    ++result.decode_steps;
  }
  result.tokens = generated_.narrow(1, 0, produced).clone();
  return result;
}

#ifdef QB_HAVE_CUDA
void Generator::decode_step_cuda() {
  model::StepPositions step;
  step.decode = true;
  step.position = position_;
  const at::Tensor logits = model_.forward(tokens_, &cache_, step, true);  // [B, 1, V]
  argmax_into_next(logits);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  kernels::advance_step(next_.data_ptr<int64_t>(), tokens_.data_ptr<int64_t>(), generated_.data_ptr<int64_t>(),
                        position_.data_ptr<int64_t>(), batch_, prompt_len_, options_.gen_len, stream);
}

// next_[b] = argmax of logits [B, 1, V]. The scratch is sized on the first call (the warm-up step before
// a capture, or the prefill), so a captured graph keeps the address it saw.
void Generator::argmax_into_next(const at::Tensor& logits) {
  const at::Tensor rows = logits.contiguous();
  const int64_t vocab = rows.size(-1);
  const auto bytes = static_cast<int64_t>(kernels::argmax_scratch_bytes(batch_, vocab));
  if (!argmax_scratch_.defined() || argmax_scratch_.numel() < bytes) {
    argmax_scratch_ = at::empty({bytes}, rows.options().dtype(at::kByte));
  }
  const kernels::DType dtype = rows.scalar_type() == at::kFloat ? kernels::DType::kF32
                               : rows.scalar_type() == at::kHalf ? kernels::DType::kF16
                                                                 : kernels::DType::kBF16;
  kernels::argmax_rows(rows.data_ptr(), next_.data_ptr<int64_t>(), batch_, vocab, argmax_scratch_.data_ptr(), dtype,
                       c10::cuda::getCurrentCUDAStream().stream());
}

void Generator::capture_graph() {
  // Warm-up at position 0 (the prefill overwrites that cache slot), so that lazy initialisation
  // (cuBLAS handles, kernel attributes, allocator pools) happens outside the capture.
  position_.zero_();
  decode_step_cuda();
  position_.zero_();
  graph_->graph.capture_begin();
  decode_step_cuda();
  graph_->graph.capture_end();
  graph_->captured = true;
}

GenerateResult Generator::run_cuda(const at::Tensor& prompt, bench::Timeline* timeline) {
  c10::cuda::CUDAStreamGuard on_side_stream(graph_->stream);
  if (options_.use_cuda_graph && !graph_->captured) capture_graph();
  const at::Tensor input = prompt.to(model_.device(), at::kLong).contiguous();
  if (timeline != nullptr) timeline->mark();
  model::StepPositions prefill;
  argmax_into_next(model_.forward(input, &cache_, prefill, true));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  position_.fill_(prompt_len_ - 1);  // advance_step writes generated[:, 0] and moves to prompt_len
  kernels::advance_step(next_.data_ptr<int64_t>(), tokens_.data_ptr<int64_t>(), generated_.data_ptr<int64_t>(),
                        position_.data_ptr<int64_t>(), batch_, prompt_len_, options_.gen_len, stream);
  if (timeline != nullptr) timeline->mark();
  GenerateResult result;
  int64_t produced = 1;
  for (; produced < options_.gen_len; ++produced) {
    if (options_.stop_at_eos && all_finished(generated_.cpu(), produced, options_.eos_ids)) break;
    if (graph_->captured) {
      graph_->graph.replay();
    } else {
      decode_step_cuda();
    }
    if (timeline != nullptr) timeline->mark();
    ++result.decode_steps;
  }
  result.tokens = generated_.narrow(1, 0, produced).cpu();
  return result;
}
#else
void Generator::decode_step_cuda() { fail(ErrorKind::kUnsupported, "CUDA generation needs a CUDA build"); }
void Generator::argmax_into_next(const at::Tensor&) {
  fail(ErrorKind::kUnsupported, "CUDA argmax needs a CUDA build");
}
void Generator::capture_graph() { fail(ErrorKind::kUnsupported, "CUDA graphs need a CUDA build"); }
GenerateResult Generator::run_cuda(const at::Tensor&, bench::Timeline*) {
  fail(ErrorKind::kUnsupported, "CUDA generation needs a CUDA build");
}
#endif

}  // namespace qb::engine
