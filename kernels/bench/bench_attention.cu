// Decode attention, whole form against split form (decode_attention.cu, decode_attention_split.cu), on the
// attention shapes of Qwen2-7B, TinyLlama-1.1B and GPT-2 at one cache length (--capacity, --position):
//   alone: `launches` attention calls back to back in one graph (PDL edges between them);
//   chain: [dense qkv GEMV -> attention -> dense o GEMV] x layers, the order of a decode step's attention
//          half, so that the attention's pre-wait work overlaps a GEMV as it does in the model.
// Per call / per layer in microseconds (median of graph replays). Random bf16 data; correctness is the tests'.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "gemv_bench_util.cuh"
#include "quantbench/kernels/decode_ops.h"
#include "quantbench/kernels/dense_gemv.h"

namespace {

using qb::kernels::AttentionForm;

struct Shape {
  const char* name;
  int64_t heads, kv_heads, head_dim, hidden;
};

struct Buffers {
  __nv_bfloat16 *qkv, *keys, *values, *out, *x, *w_qkv, *w_o, *y;
  int64_t* position;
  float *cos, *sin;
};

const char* form_name(AttentionForm f) { return f == AttentionForm::kSplit ? "split" : "whole"; }

}  // namespace

int main(int argc, char** argv) {
  int64_t capacity = 256, position = 192;
  int layers = 28;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--capacity")) capacity = std::atoll(argv[i + 1]);
    if (!std::strcmp(argv[i], "--position")) position = std::atoll(argv[i + 1]);
    if (!std::strcmp(argv[i], "--layers")) layers = std::atoi(argv[i + 1]);
  }
  cudaStream_t stream;
  BENCH_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const std::vector<Shape> shapes = {{"qwen2-7b", 28, 4, 128, 3584}, {"tinyllama", 32, 4, 64, 2048},
                                     {"gpt2", 12, 12, 64, 768}};
  std::printf("capacity %lld, position %lld, %d layers in the chain\n", (long long)capacity, (long long)position,
              layers);
  std::printf("| shape | form | alone us | chain us/layer |\n|---|---|---:|---:|\n");
  for (const Shape& s : shapes) {
    const int64_t width = (s.heads + 2 * s.kv_heads) * s.head_dim;
    const int64_t cache = s.kv_heads * capacity * s.head_dim;
    Buffers b{};
    BENCH_CUDA(cudaMalloc(&b.qkv, width * 2));
    BENCH_CUDA(cudaMalloc(&b.keys, cache * 2 * layers));
    BENCH_CUDA(cudaMalloc(&b.values, cache * 2 * layers));
    BENCH_CUDA(cudaMalloc(&b.out, s.heads * s.head_dim * 2));
    BENCH_CUDA(cudaMalloc(&b.x, s.hidden * 2));
    BENCH_CUDA(cudaMalloc(&b.y, s.hidden * 2));
    BENCH_CUDA(cudaMalloc(&b.w_qkv, width * s.hidden * 2 * layers));
    BENCH_CUDA(cudaMalloc(&b.w_o, s.hidden * s.heads * s.head_dim * 2 * layers));
    BENCH_CUDA(cudaMalloc(&b.position, sizeof(int64_t)));
    BENCH_CUDA(cudaMalloc(&b.cos, (capacity + 1) * s.head_dim / 2 * 4));
    BENCH_CUDA(cudaMalloc(&b.sin, (capacity + 1) * s.head_dim / 2 * 4));
    bench::fill_normal(b.qkv, width, 1.f);
    bench::fill_normal(b.keys, cache * layers, 1.f);
    bench::fill_normal(b.values, cache * layers, 1.f);
    bench::fill_normal(b.x, s.hidden, 1.f);
    bench::fill_normal(b.w_qkv, width * s.hidden * layers, 0.02f);
    bench::fill_normal(b.w_o, s.hidden * s.heads * s.head_dim * layers, 0.02f);
    bench::fill_normal(b.cos, (capacity + 1) * s.head_dim / 2, 1.f);
    bench::fill_normal(b.sin, (capacity + 1) * s.head_dim / 2, 1.f);
    BENCH_CUDA(cudaMemcpy(b.position, &position, sizeof(int64_t), cudaMemcpyHostToDevice));
    const bool rope = s.kv_heads != s.heads;
    const float scale = 1.f / std::sqrt(float(s.head_dim));
    for (AttentionForm form : {AttentionForm::kWhole, AttentionForm::kSplit}) {
      auto attend = [&](int layer, cudaStream_t st) {
        qb::kernels::decode_attention(b.qkv, b.keys + cache * layer, b.values + cache * layer, b.position,
                                      rope ? b.cos : nullptr, rope ? b.sin : nullptr, b.out, 1, s.heads, s.kv_heads,
                                      s.head_dim, rope ? s.head_dim : 0, capacity, scale, qb::kernels::DType::kBF16,
                                      st, form);
      };
      const double alone = bench::time_graph_us([&](int i, cudaStream_t st) { attend(i % layers, st); }, 4 * layers,
                                                20, stream);
      const double chain = bench::time_graph_us(
          [&](int i, cudaStream_t st) {
            qb::kernels::dense_gemv(qb::kernels::HalfType::kBF16, b.x, s.hidden, b.w_qkv + width * s.hidden * i,
                                    s.hidden, nullptr, b.qkv, width, 1, width, s.hidden, st);
            attend(i, st);
            qb::kernels::dense_gemv(qb::kernels::HalfType::kBF16, b.out, s.heads * s.head_dim,
                                    b.w_o + s.hidden * s.heads * s.head_dim * i, s.heads * s.head_dim, nullptr, b.y,
                                    s.hidden, 1, s.hidden, s.heads * s.head_dim, st);
          },
          layers, 20, stream);
      std::printf("| %s | %s | %.2f | %.2f |\n", s.name, form_name(form), alone, chain);
    }
    for (void* p : {(void*)b.qkv, (void*)b.keys, (void*)b.values, (void*)b.out, (void*)b.x, (void*)b.y,
                    (void*)b.w_qkv, (void*)b.w_o, (void*)b.position, (void*)b.cos, (void*)b.sin})
      BENCH_CUDA(cudaFree(p));
  }
  return 0;
}
