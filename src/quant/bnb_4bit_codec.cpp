// bitsandbytes NF4 / FP4 quantize and dequantize on the CPU, bit-exact with bitsandbytes 0.50.2 (see
// bnb_4bit.h for the algorithm; tests/test_bnb_4bit.cpp checks it against bnb's own output). A CUDA weight is
// quantized on its GPU by kernels/q4_quantize.cu with the same bucket bounds and the same fp32 operations (codes
// and absmax equal to this CPU path bit for bit: tests/test_q4_gpu_quantize.cpp); the state's packed codes and
// (plain) absmax then stay on that device. Double quantization stays on the CPU either way: its offset is ATen's
// CPU fp32 mean, whose summation order the fixtures record, and it is one float per block.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "quantbench/core/error.h"
#include "quantbench/quant/bnb_4bit.h"

#ifdef QB_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "quantbench/kernels/q4_quantize.h"
#endif

namespace qb::quant {
namespace {

// get_4bit_type("nf4"): the values bnb hard-codes (created by create_normal_map(0.9677083)).
constexpr std::array<float, 16> kNf4Code = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
    -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
    0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f,
    1.0f};

// The 4-bit code of each sorted FP4 value: bnb's argsort of its codebook (ties +0 / -0 in the order torch's
// argsort gave with bnb 0.50.2 / torch 2.11: +0 first). A scaled value in (0, 0.0026] lands on code 8 (-0).
constexpr std::array<uint8_t, 16> kFp4SortedCodes = {11, 10, 13, 12, 15, 14, 9, 0, 8, 1, 6, 7, 4, 5, 2, 3};

// create_dynamic_map(signed=True), as bnb computes it (float32, sorted).
constexpr std::array<float, 256> kDynamicMap = {
    -0x1.fc66660000000p-1f, -0x1.f533340000000p-1f, -0x1.ee00000000000p-1f, -0x1.e6cccc0000000p-1f,
    -0x1.df999a0000000p-1f, -0x1.d866660000000p-1f, -0x1.d133340000000p-1f, -0x1.ca00000000000p-1f,
    -0x1.c2cccc0000000p-1f, -0x1.bb999a0000000p-1f, -0x1.b466660000000p-1f, -0x1.ad33340000000p-1f,
    -0x1.a600000000000p-1f, -0x1.9ecccc0000000p-1f, -0x1.97999a0000000p-1f, -0x1.9066660000000p-1f,
    -0x1.8933340000000p-1f, -0x1.8200000000000p-1f, -0x1.7acccc0000000p-1f, -0x1.73999a0000000p-1f,
    -0x1.6c66680000000p-1f, -0x1.6533340000000p-1f, -0x1.5e00000000000p-1f, -0x1.56cccc0000000p-1f,
    -0x1.4f999a0000000p-1f, -0x1.4866680000000p-1f, -0x1.4133340000000p-1f, -0x1.3a00000000000p-1f,
    -0x1.32cccc0000000p-1f, -0x1.2b999a0000000p-1f, -0x1.2466680000000p-1f, -0x1.1d33340000000p-1f,
    -0x1.1600000000000p-1f, -0x1.0ecccc0000000p-1f, -0x1.0799980000000p-1f, -0x1.0066660000000p-1f,
    -0x1.f266640000000p-2f, -0x1.e400000000000p-2f, -0x1.d599980000000p-2f, -0x1.c733340000000p-2f,
    -0x1.b8cccc0000000p-2f, -0x1.aa66660000000p-2f, -0x1.9c00000000000p-2f, -0x1.8d99980000000p-2f,
    -0x1.7f33340000000p-2f, -0x1.70cccc0000000p-2f, -0x1.6266660000000p-2f, -0x1.5400000000000p-2f,
    -0x1.4599980000000p-2f, -0x1.3733340000000p-2f, -0x1.28cccc0000000p-2f, -0x1.1a66680000000p-2f,
    -0x1.0c00000000000p-2f, -0x1.fb33320000000p-3f, -0x1.de66660000000p-3f, -0x1.c1999a0000000p-3f,
    -0x1.a4cccc0000000p-3f, -0x1.8800000000000p-3f, -0x1.6b33340000000p-3f, -0x1.4e66660000000p-3f,
    -0x1.31999a0000000p-3f, -0x1.14cccc0000000p-3f, -0x1.f000000000000p-4f, -0x1.b666680000000p-4f,
    -0x1.93d70a0000000p-4f, -0x1.8851ee0000000p-4f, -0x1.7cccce0000000p-4f, -0x1.7147ae0000000p-4f,
    -0x1.65c2900000000p-4f, -0x1.5a3d700000000p-4f, -0x1.4eb8540000000p-4f, -0x1.4333340000000p-4f,
    -0x1.37ae140000000p-4f, -0x1.2c28f60000000p-4f, -0x1.20a3d60000000p-4f, -0x1.151eba0000000p-4f,
    -0x1.09999a0000000p-4f, -0x1.fc28f60000000p-5f, -0x1.e51eba0000000p-5f, -0x1.ce147a0000000p-5f,
    -0x1.b70a3e0000000p-5f, -0x1.a000000000000p-5f, -0x1.88f5c20000000p-5f, -0x1.71eb860000000p-5f,
    -0x1.5ae1460000000p-5f, -0x1.43d70a0000000p-5f, -0x1.2cccce0000000p-5f, -0x1.15c2900000000p-5f,
    -0x1.fd70a40000000p-6f, -0x1.cf5c2a0000000p-6f, -0x1.a147ae0000000p-6f, -0x1.7333340000000p-6f,
    -0x1.451eba0000000p-6f, -0x1.170a3e0000000p-6f, -0x1.d1eb860000000p-7f, -0x1.75c2900000000p-7f,
    -0x1.3e76c80000000p-7f, -0x1.2c08300000000p-7f, -0x1.19999a0000000p-7f, -0x1.072b020000000p-7f,
    -0x1.e978d40000000p-8f, -0x1.c49ba60000000p-8f, -0x1.9fbe760000000p-8f, -0x1.7ae1480000000p-8f,
    -0x1.56041a0000000p-8f, -0x1.3126e80000000p-8f, -0x1.0c49ba0000000p-8f, -0x1.ced9140000000p-9f,
    -0x1.851eb80000000p-9f, -0x1.3b645a0000000p-9f, -0x1.e353f80000000p-10f, -0x1.4fdf3a0000000p-10f,
    -0x1.eecbfe0000000p-11f, -0x1.b3d07c0000000p-11f, -0x1.78d5000000000p-11f, -0x1.3dd9820000000p-11f,
    -0x1.02de020000000p-11f, -0x1.8fc5060000000p-12f, -0x1.19ce0a0000000p-12f, -0x1.47ae160000000p-13f,
    -0x1.743e960000000p-14f, -0x1.15df660000000p-14f, -0x1.6f00680000000p-15f, -0x1.64840c0000000p-16f,
    -0x1.040bfe0000000p-17f, -0x1.b435280000000p-19f, -0x1.27476e0000000p-21f, 0x0.0p+0f,
    0x1.27476e0000000p-21f, 0x1.b435280000000p-19f, 0x1.040bfe0000000p-17f, 0x1.64840c0000000p-16f,
    0x1.6f00680000000p-15f, 0x1.15df660000000p-14f, 0x1.743e960000000p-14f, 0x1.47ae160000000p-13f,
    0x1.19ce0a0000000p-12f, 0x1.8fc5060000000p-12f, 0x1.02de020000000p-11f, 0x1.3dd9820000000p-11f,
    0x1.78d5000000000p-11f, 0x1.b3d07c0000000p-11f, 0x1.eecbfe0000000p-11f, 0x1.4fdf3a0000000p-10f,
    0x1.e353f80000000p-10f, 0x1.3b645a0000000p-9f, 0x1.851eb80000000p-9f, 0x1.ced9140000000p-9f,
    0x1.0c49ba0000000p-8f, 0x1.3126e80000000p-8f, 0x1.56041a0000000p-8f, 0x1.7ae1480000000p-8f,
    0x1.9fbe760000000p-8f, 0x1.c49ba60000000p-8f, 0x1.e978d40000000p-8f, 0x1.072b020000000p-7f,
    0x1.19999a0000000p-7f, 0x1.2c08300000000p-7f, 0x1.3e76c80000000p-7f, 0x1.75c2900000000p-7f,
    0x1.d1eb860000000p-7f, 0x1.170a3e0000000p-6f, 0x1.451eba0000000p-6f, 0x1.7333340000000p-6f,
    0x1.a147ae0000000p-6f, 0x1.cf5c2a0000000p-6f, 0x1.fd70a40000000p-6f, 0x1.15c2900000000p-5f,
    0x1.2cccce0000000p-5f, 0x1.43d70a0000000p-5f, 0x1.5ae1460000000p-5f, 0x1.71eb860000000p-5f,
    0x1.88f5c20000000p-5f, 0x1.a000000000000p-5f, 0x1.b70a3e0000000p-5f, 0x1.ce147a0000000p-5f,
    0x1.e51eba0000000p-5f, 0x1.fc28f60000000p-5f, 0x1.09999a0000000p-4f, 0x1.151eba0000000p-4f,
    0x1.20a3d60000000p-4f, 0x1.2c28f60000000p-4f, 0x1.37ae140000000p-4f, 0x1.4333340000000p-4f,
    0x1.4eb8540000000p-4f, 0x1.5a3d700000000p-4f, 0x1.65c2900000000p-4f, 0x1.7147ae0000000p-4f,
    0x1.7cccce0000000p-4f, 0x1.8851ee0000000p-4f, 0x1.93d70a0000000p-4f, 0x1.b666680000000p-4f,
    0x1.f000000000000p-4f, 0x1.14cccc0000000p-3f, 0x1.31999a0000000p-3f, 0x1.4e66660000000p-3f,
    0x1.6b33340000000p-3f, 0x1.8800000000000p-3f, 0x1.a4cccc0000000p-3f, 0x1.c1999a0000000p-3f,
    0x1.de66660000000p-3f, 0x1.fb33320000000p-3f, 0x1.0c00000000000p-2f, 0x1.1a66680000000p-2f,
    0x1.28cccc0000000p-2f, 0x1.3733340000000p-2f, 0x1.4599980000000p-2f, 0x1.5400000000000p-2f,
    0x1.6266660000000p-2f, 0x1.70cccc0000000p-2f, 0x1.7f33340000000p-2f, 0x1.8d99980000000p-2f,
    0x1.9c00000000000p-2f, 0x1.aa66660000000p-2f, 0x1.b8cccc0000000p-2f, 0x1.c733340000000p-2f,
    0x1.d599980000000p-2f, 0x1.e400000000000p-2f, 0x1.f266640000000p-2f, 0x1.0066660000000p-1f,
    0x1.0799980000000p-1f, 0x1.0ecccc0000000p-1f, 0x1.1600000000000p-1f, 0x1.1d33340000000p-1f,
    0x1.2466680000000p-1f, 0x1.2b999a0000000p-1f, 0x1.32cccc0000000p-1f, 0x1.3a00000000000p-1f,
    0x1.4133340000000p-1f, 0x1.4866680000000p-1f, 0x1.4f999a0000000p-1f, 0x1.56cccc0000000p-1f,
    0x1.5e00000000000p-1f, 0x1.6533340000000p-1f, 0x1.6c66680000000p-1f, 0x1.73999a0000000p-1f,
    0x1.7acccc0000000p-1f, 0x1.8200000000000p-1f, 0x1.8933340000000p-1f, 0x1.9066660000000p-1f,
    0x1.97999a0000000p-1f, 0x1.9ecccc0000000p-1f, 0x1.a600000000000p-1f, 0x1.ad33340000000p-1f,
    0x1.b466660000000p-1f, 0x1.bb999a0000000p-1f, 0x1.c2cccc0000000p-1f, 0x1.ca00000000000p-1f,
    0x1.d133340000000p-1f, 0x1.d866660000000p-1f, 0x1.df999a0000000p-1f, 0x1.e6cccc0000000p-1f,
    0x1.ee00000000000p-1f, 0x1.f533340000000p-1f, 0x1.fc66660000000p-1f, 0x1.0000000000000p+0f,
};

std::array<float, 16> make_fp4_code() {
  // data = [0, 0.0625, 8, 12, 4, 6, 2, 3, -0, ...] as float32, divided by its absmax (12) in float32. bnb writes
  // the negative zero as the Python int -0, which is +0: code 8 is +0.0, not -0.0.
  const float magnitudes[8] = {0.0f, 0.0625f, 8.0f, 12.0f, 4.0f, 6.0f, 2.0f, 3.0f};
  std::array<float, 16> code{};
  for (int i = 0; i < 16; ++i) code[i] = (i < 8 || i == 8 ? magnitudes[i & 7] : -magnitudes[i - 8]) / 12.0f;
  return code;
}

// The 15 fp32 bucket boundaries of the default backend: midpoints of the sorted codebook.
struct Buckets {
  std::array<float, 15> bounds{};
  std::array<uint8_t, 16> code_of{};  // sorted position -> 4-bit code
};

const Buckets& buckets(Bnb4bitType type) {
  static const Buckets nf4 = [] {
    Buckets b;
    for (int i = 0; i < 16; ++i) b.code_of[i] = static_cast<uint8_t>(i);
    for (int i = 0; i < 15; ++i) b.bounds[i] = (kNf4Code[i] + kNf4Code[i + 1]) / 2.0f;
    return b;
  }();
  static const Buckets fp4 = [] {
    Buckets b;
    const auto& code = bnb_4bit_codebook(Bnb4bitType::kFp4);
    b.code_of = kFp4SortedCodes;
    for (int i = 0; i < 15; ++i) b.bounds[i] = (code[kFp4SortedCodes[i]] + code[kFp4SortedCodes[i + 1]]) / 2.0f;
    return b;
  }();
  return type == Bnb4bitType::kNf4 ? nf4 : fp4;
}

// torch.bucketize(v, bounds, right=False): the number of bounds strictly below v.
inline uint8_t bucket_code(const Buckets& b, float v) {
  const float* pos = std::lower_bound(b.bounds.data(), b.bounds.data() + 15, v);
  return b.code_of[static_cast<size_t>(pos - b.bounds.data())];
}

// torch.clamp(v, -1, 1) (NaN passes through).
inline float clamp_unit(float v) { return v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v); }

// libbitsandbytes_cpu's quantize LUT for a 256-entry sorted code: 65536 bins over [-1, 1].
std::vector<uint8_t> build_blockwise_lut(const std::array<float, 256>& code) {
  float mid[255];
  for (int i = 0; i < 255; ++i) mid[i] = (code[i] + code[i + 1]) * 0.5f;
  std::vector<uint8_t> lut(65536);
  int idx = 0;
  for (int i = 0; i < 65536; ++i) {
    const float val = (2.0f * static_cast<float>(i)) / 65535.0f - 1.0f;
    while (idx < 255 && mid[idx] < val) ++idx;
    lut[i] = static_cast<uint8_t>(idx);
  }
  return lut;
}

void check_blocksize(int64_t blocksize) {
  QB_CHECK(blocksize >= 32 && blocksize <= 4096 && (blocksize & (blocksize - 1)) == 0, kInvalidInput,
           "nf4/fp4: blocksize {} is not one of bitsandbytes' 32, 64, ..., 4096", blocksize);
}

}  // namespace

const char* bnb_4bit_type_name(Bnb4bitType type) { return type == Bnb4bitType::kNf4 ? "nf4" : "fp4"; }

const std::array<float, 16>& bnb_4bit_codebook(Bnb4bitType type) {
  static const std::array<float, 16> fp4 = make_fp4_code();
  return type == Bnb4bitType::kNf4 ? kNf4Code : fp4;
}

const std::array<float, 256>& bnb_dynamic_map() { return kDynamicMap; }

int64_t Bnb4bitState::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::pair<at::Tensor, at::Tensor> bnb_quantize_blockwise_dynamic(const at::Tensor& values, int64_t blocksize) {
  QB_CHECK(values.scalar_type() == at::kFloat && values.dim() == 1 && blocksize > 0, kInvalidInput,
           "bnb_quantize_blockwise_dynamic: needs 1-D float32 values and a positive blocksize");
  static const std::vector<uint8_t> lut = build_blockwise_lut(kDynamicMap);
  const at::Tensor a = values.to(at::kCPU).contiguous();
  const int64_t n = a.numel(), nblocks = (n + blocksize - 1) / blocksize;
  at::Tensor codes = at::empty({n}, at::kByte);
  at::Tensor absmax = at::empty({nblocks}, at::kFloat);
  const float* in = a.data_ptr<float>();
  uint8_t* out = codes.data_ptr<uint8_t>();
  float* am_out = absmax.data_ptr<float>();
  at::parallel_for(0, nblocks, 64, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t start = b * blocksize, end = std::min(n, start + blocksize);
      float am = -std::numeric_limits<float>::infinity();
      for (int64_t i = start; i < end; ++i) {
        const float f = std::fabs(in[i]);
        if (f > am) am = f;  // std::max(am, |x|): NaN never replaces am
      }
      am = 0.0f > am ? 0.0f : am;
      am_out[b] = am;
      if (am == 0.0f) {
        std::memset(out + start, 0, static_cast<size_t>(end - start));
        continue;
      }
      const float inv = 1.0f / am;
      for (int64_t i = start; i < end; ++i) {
        const float v = clamp_unit(in[i] * inv);
        const float bin = std::fma((v + 1.0f) * 0.5f, 65535.0f, 0.5f);  // libbitsandbytes_cpu contracts this
        out[i] = lut[static_cast<uint16_t>(static_cast<int32_t>(bin))];
      }
    }
  });
  return {codes, absmax};
}

namespace {

void quantize_on_cpu(const at::Tensor& weight, const Buckets& bk, int64_t blocksize, float tiny, at::Tensor& absmax_out,
                     at::Tensor& packed_out) {
  // A.reshape(-1).float(): exact from fp16/bf16.
  const at::Tensor flat = weight.to(at::kCPU).reshape({-1}).to(at::kFloat).contiguous();
  const int64_t n = flat.numel(), nblocks = (n + blocksize - 1) / blocksize, full = n - n % blocksize;
  const float* x = flat.data_ptr<float>();
  at::Tensor absmax = at::empty({nblocks}, at::kFloat);
  at::Tensor packed = at::zeros({(n + 1) / 2}, at::kByte);
  float* am_out = absmax.data_ptr<float>();
  uint8_t* pk = packed.data_ptr<uint8_t>();
  // Blocks of an even blocksize start on byte boundaries, so blocks can be packed independently.
  at::parallel_for(0, nblocks, 16, [&](int64_t b0, int64_t b1) {
    std::vector<uint8_t> q(static_cast<size_t>(blocksize));
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t start = b * blocksize, end = std::min(n, start + blocksize), len = end - start;
      float am = 0.0f;
      bool nan = false;
      for (int64_t i = start; i < end; ++i) {
        const float f = std::fabs(x[i]);
        nan |= std::isnan(f);
        am = f > am ? f : am;
      }
      if (nan) am = std::numeric_limits<float>::quiet_NaN();  // torch.max propagates NaN
      if (start < full) {
        am_out[b] = am;
        const float rec = 1.0f / (am < tiny ? tiny : am);
        for (int64_t i = 0; i < len; ++i) q[i] = bucket_code(bk, clamp_unit(x[start + i] * rec));
      } else {  // the partial last block: absmax clamped before it is stored, and a true division
        const float clamped = am < tiny ? tiny : am;
        am_out[b] = clamped;
        for (int64_t i = 0; i < len; ++i) q[i] = bucket_code(bk, clamp_unit(x[start + i] / clamped));
      }
      for (int64_t i = 0; i < len; i += 2) {
        const uint8_t hi = q[i], lo = i + 1 < len ? q[i + 1] : bucket_code(bk, 0.0f);  // bnb pads with 0.0
        pk[(start + i) / 2] = static_cast<uint8_t>((hi << 4) | lo);
      }
    }
  });
  absmax_out = absmax;
  packed_out = packed;
}

Bnb4bitState double_quantize(Bnb4bitState state, const at::Tensor& absmax) {
  // offset = _absmax.mean(): ATen's own fp32 mean, the same kernel bnb ran through PyTorch.
  const at::Tensor offset = absmax.mean();
  state.nested_offset = offset.item<float>();
  auto [codes, nested_absmax] = bnb_quantize_blockwise_dynamic(absmax - offset, 256);
  state.nested = true;
  state.absmax = codes;
  state.nested_absmax = nested_absmax;
  state.nested_code = at::empty({256}, at::kFloat);
  std::memcpy(state.nested_code.data_ptr<float>(), kDynamicMap.data(), sizeof(kDynamicMap));
  return state;
}

}  // namespace

Bnb4bitState bnb_quantize_4bit(const at::Tensor& weight, Bnb4bitType type, int64_t blocksize, bool double_quant) {
  check_blocksize(blocksize);
  QB_CHECK(weight.dim() == 2, kInvalidInput, "nf4/fp4: weight must be 2-D [out, in], got {}-D", weight.dim());
  const auto st = weight.scalar_type();
  QB_CHECK(st == at::kFloat || st == at::kHalf || st == at::kBFloat16, kInvalidInput,
           "nf4/fp4: bitsandbytes quantizes fp32/fp16/bf16 weights, got {}", c10::toString(st));
  Bnb4bitState state;
  state.type = type;
  state.blocksize = blocksize;
  state.shape = {weight.size(0), weight.size(1)};
  state.dtype = st == at::kFloat ? "float32" : st == at::kHalf ? "float16" : "bfloat16";
  const Buckets& bk = buckets(type);
  const float tiny = static_cast<float>(1e-38);  // absmax.clamp(min=1e-38)
  const int64_t n = weight.numel(), nblocks = (n + blocksize - 1) / blocksize;
  at::Tensor absmax, packed;
  if (weight.is_cuda()) {
#ifdef QB_HAVE_CUDA
    const at::Tensor flat = weight.reshape({-1}).contiguous();  // converted to fp32 in the kernel (exact)
    const c10::cuda::CUDAGuard guard(flat.device());
    kernels::Bnb4bitBuckets gpu_buckets;
    for (int i = 0; i < 15; ++i) gpu_buckets.bounds[i] = bk.bounds[i];
    for (int i = 0; i < 16; ++i) gpu_buckets.code_of |= static_cast<uint64_t>(bk.code_of[i] & 15) << (4 * i);
    absmax = at::empty({nblocks}, flat.options().dtype(at::kFloat));
    packed = at::empty({(n + 1) / 2}, flat.options().dtype(at::kByte));
    const kernels::DType dtype = st == at::kFloat ? kernels::DType::kF32
                                 : st == at::kHalf ? kernels::DType::kF16
                                                   : kernels::DType::kBF16;
    kernels::bnb_quantize_4bit_cuda(dtype, flat.data_ptr(), n, blocksize, gpu_buckets, tiny,
                                    packed.data_ptr<uint8_t>(), absmax.data_ptr<float>(),
                                    at::cuda::getCurrentCUDAStream());
#else
    fail(ErrorKind::kUnsupported, "nf4/fp4: a CUDA weight in a build without CUDA");
#endif
  } else {
    quantize_on_cpu(weight, bk, blocksize, tiny, absmax, packed);
  }
  state.packed = packed;
  if (!double_quant) {
    state.absmax = absmax;
    return state;
  }
  return double_quantize(std::move(state), absmax.to(at::kCPU));
}

at::Tensor bnb_dequantize_absmax(const Bnb4bitState& state) {
  if (!state.nested) return state.absmax.to(at::kFloat).contiguous();
  const at::Tensor q = state.absmax.contiguous(), code = state.nested_code.to(at::kFloat).contiguous();
  const at::Tensor scale = state.nested_absmax.to(at::kFloat).contiguous();
  const int64_t n = q.numel();
  at::Tensor out = at::empty({n}, at::kFloat);
  const uint8_t* qp = q.data_ptr<uint8_t>();
  const float* cp = code.data_ptr<float>();
  const float* sp = scale.data_ptr<float>();
  float* op = out.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    volatile float v = cp[qp[i]] * sp[i / state.nested_blocksize];  // dequantize_blockwise: one fp32 rounding
    op[i] = v + state.nested_offset;                               // absmax += offset: a second (never an FMA)
  }
  return out;
}

at::Tensor bnb_dequantize_4bit(const Bnb4bitState& state) { return bnb_state_to_q4(state).dequantize(); }

Q4Weights bnb_state_to_q4(const Bnb4bitState& state) {
  QB_CHECK(state.shape.size() == 2, kInvalidInput, "nf4/fp4: quant state shape must be [out, in]");
  Q4Weights w;
  w.out_features = state.shape[0];
  w.in_features = state.shape[1];
  w.codebook = bnb_4bit_codebook(state.type);
  w.codes = state.packed.reshape({-1}).contiguous();  // where it was quantized or loaded (Q4Linear moves it)
  w.block = state.blocksize;
  if (state.nested) {
    QB_CHECK(state.nested_blocksize == 256, kUnsupported, "nf4/fp4: nested blocksize {} (bitsandbytes uses 256)",
             state.nested_blocksize);
    w.scales = Q4Scales::kBlockAbsmaxNested;
    w.absmax = state.absmax.contiguous();
    w.nested_absmax = state.nested_absmax.to(at::kCPU, at::kFloat).contiguous();
    w.nested_offset = at::full({w.nested_absmax.numel()}, state.nested_offset, at::kFloat);
    w.nested_code = state.nested_code.to(at::kCPU, at::kFloat).contiguous();
  } else {
    w.scales = Q4Scales::kBlockAbsmax;
    w.absmax = state.absmax.to(at::kFloat).contiguous();
  }
  w.validate(std::string("bitsandbytes ") + bnb_4bit_type_name(state.type) + " state");
  return w;
}

}  // namespace qb::quant
