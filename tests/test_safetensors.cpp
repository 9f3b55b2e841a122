// The safetensors reader against files written by the Python package, the writer by round trip,
// and the header as untrusted input: every malformed case gives its own error naming the file.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "quantbench/core/error.h"
#include "quantbench/io/model_config.h"
#include "quantbench/io/safetensors.h"
#include "test_support.h"

namespace qb::io {
namespace {

std::string hex_of(const uint8_t* bytes, size_t size) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < size; ++i) {
    out += digits[bytes[i] >> 4];
    out += digits[bytes[i] & 15];
  }
  return out;
}

TEST(Safetensors, ReadsEveryDtypeWrittenByThePythonPackage) {
  const std::string dir = test::fixtures_dir() + "/safetensors";
  const nlohmann::json expected = load_json_file(dir + "/expected.json")["dtypes.safetensors"];
  const auto file = SafetensorsFile::open(dir + "/dtypes.safetensors");
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(file.metadata().at("note"), "quantbench fixture");
  ASSERT_EQ(file.tensors().size(), expected["tensors"].size());
  for (const auto& want : expected["tensors"]) {
    const std::string name = want["name"];
    SCOPED_TRACE(name);
    const TensorInfo* info = file.find(name);
    ASSERT_NE(info, nullptr);
    EXPECT_STREQ(st_dtype_name(info->dtype), want["dtype"].get<std::string>().c_str());
    EXPECT_EQ(info->shape, want["shape"].get<std::vector<int64_t>>());
    const auto [bytes, size] = file.raw_bytes(name);
    EXPECT_EQ(hex_of(bytes, size), want["bytes_hex"].get<std::string>());
    const at::Tensor tensor = file.tensor(name);
    EXPECT_EQ(tensor.sizes().vec(), info->shape);
    const auto values = want["values"];
    // U64 values above INT64_MAX cannot go through item<int64_t>(); bytes_hex above covers them.
    const bool comparable = tensor.scalar_type() != at::kUInt64;
    if (comparable && values.is_array() && values.size() == static_cast<size_t>(tensor.numel()) && tensor.numel() > 0) {
      const at::Tensor flat = tensor.flatten();
      for (int64_t i = 0; i < tensor.numel(); ++i) {
        if (values[i].is_boolean()) {
          EXPECT_EQ(flat[i].item<bool>(), values[i].get<bool>()) << i;
        } else if (values[i].is_number_integer() && at::isIntegralType(tensor.scalar_type(), false)) {
          EXPECT_EQ(flat[i].item<int64_t>(), values[i].get<int64_t>()) << i;
        } else {
          EXPECT_EQ(flat[i].to(at::kDouble).item<double>(), values[i].get<double>()) << i;
        }
      }
    }
  }
}

TEST(Safetensors, AlignedTensorsAreZeroCopyViewsOfTheMapping) {
  const std::string path = test::fixtures_dir() + "/safetensors/dtypes.safetensors";
  const auto file = SafetensorsFile::open(path);
  for (const auto& info : file.tensors()) {
    if (info.numel() == 0) continue;
    const auto [bytes, size] = file.raw_bytes(info.name);
    const at::Tensor tensor = file.tensor(info.name);
    const bool aligned = reinterpret_cast<uintptr_t>(bytes) % st_dtype_size_bytes(info.dtype) == 0;
    EXPECT_EQ(tensor.data_ptr() == static_cast<const void*>(bytes), aligned) << info.name;
  }
}

TEST(Safetensors, WriterRoundTripsAndAlignsTheDataBuffer) {
  test::TempDir dir;
  at::manual_seed(0);
  std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"f32", at::randn({3, 5})},          {"f16", at::randn({7}).to(at::kHalf)},
      {"bf16", at::randn({2, 2, 2}).to(at::kBFloat16)}, {"i8", at::randint(-128, 127, {9}, at::kChar)},
      {"u8", at::randint(0, 255, {4, 1}, at::kByte)},    {"i32", at::randint(-1000, 1000, {6}, at::kInt)},
      {"i64", at::randint(-1000, 1000, {2}, at::kLong)}, {"empty", at::empty({0, 4})},
      {"scalar", at::full({}, 2.5)}};
  const std::string path = dir.file("round.safetensors");
  write_safetensors(path, tensors, {{"origin", "test"}});
  const auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file.metadata().at("origin"), "test");
  for (const auto& [name, tensor] : tensors) {
    const at::Tensor back = file.tensor(name);
    EXPECT_EQ(back.scalar_type(), tensor.scalar_type()) << name;
    EXPECT_TRUE(at::equal(back, tensor)) << name;
  }
  std::ifstream in(path, std::ios::binary);
  uint8_t length[8];
  in.read(reinterpret_cast<char*>(length), 8);
  uint64_t header = 0;
  for (int i = 7; i >= 0; --i) header = (header << 8) | length[i];
  EXPECT_EQ((8 + header) % 8, 0u);
}

TEST(Safetensors, WriterRejectsRepeatedNames) {
  test::TempDir dir;
  EXPECT_THROW(write_safetensors(dir.file("x.safetensors"), {{"a", at::ones({1})}, {"a", at::ones({1})}}), Error);
}

// ---- malformed headers: each case is (label, bytes of the file, expected fragment of the error) ----

std::string with_header(const std::string& header, const std::string& data = "") {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

struct Malformed {
  const char* label;
  std::string bytes;
  const char* fragment;
};

std::vector<Malformed> malformed_cases() {
  std::string huge(8, '\0');
  const uint64_t too_big = kMaxHeaderBytes + 1;
  for (int i = 0; i < 8; ++i) huge[i] = static_cast<char>((too_big >> (8 * i)) & 0xff);
  std::string past_end(8, '\0');
  past_end[0] = 100;
  return {
      {"shorter than 8 bytes", std::string("\x01\x02\x03", 3), "shorter than the 8-byte header length"},
      {"header over the limit", huge + "{}", "exceeds the 100000000-byte limit"},
      {"header past end of file", past_end + "{}", "runs past the end"},
      {"not starting with a brace", with_header("[1, 2]"), "does not start with '{'"},
      {"invalid JSON", with_header("{\"a\": {\"dtype\": \"F32\","), "not valid JSON"},
      {"entry not an object", with_header("{\"a\": 5}"), "is not a JSON object"},
      {"missing dtype", with_header(R"({"a": {"shape": [1], "data_offsets": [0, 4]}})", std::string(4, '\0')), "has no 'dtype'"},
      {"unknown dtype", with_header(R"({"a": {"dtype": "F17", "shape": [1], "data_offsets": [0, 4]}})", std::string(4, '\0')), "unknown dtype 'F17'"},
      {"negative shape", with_header(R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", std::string(4, '\0')), "not a non-negative integer"},
      {"offsets of wrong arity", with_header(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", std::string(4, '\0')), "must be two non-negative integers"},
      {"end before begin", with_header(R"({"a": {"dtype": "U8", "shape": [0], "data_offsets": [4, 0]}})", std::string(4, '\0')), "end before they begin"},
      {"dtype x shape != bytes", with_header(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})", std::string(4, '\0')), "is 8 bytes but data_offsets"},
      {"overlapping tensors", with_header(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", std::string(8, '\0')), "overlaps tensor"},
      {"hole between tensors", with_header(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})", std::string(12, '\0')), "leaving a hole"},
      {"offsets past the buffer", with_header(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", std::string(8, '\0')), "run past the"},
      {"trailing bytes", with_header(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", std::string(12, '\0')), "trailing or missing bytes"},
      {"metadata not strings", with_header(R"({"__metadata__": {"k": 1}})"), "__metadata__['k'] is not a string"},
      {"shape overflow", with_header(R"({"a": {"dtype": "F64", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})", std::string(8, '\0')), "overflows 64 bits"},
      {"invalid UTF-8 in header", with_header("{\"\xff\xfe\": {}}"), "not valid JSON"},
  };
}

TEST(SafetensorsMalformed, EachCaseGivesItsOwnErrorNamingTheFile) {
  test::TempDir dir;
  int index = 0;
  for (const auto& c : malformed_cases()) {
    SCOPED_TRACE(c.label);
    const std::string path = dir.file("case" + std::to_string(index++) + ".safetensors");
    std::ofstream(path, std::ios::binary) << c.bytes;
    try {
      SafetensorsFile::open(path);
      ADD_FAILURE() << "no error for: " << c.label;
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(path), std::string::npos) << message;
      EXPECT_NE(message.find(c.fragment), std::string::npos) << "expected '" << c.fragment << "' in: " << message;
    }
  }
}

TEST(SafetensorsMalformed, MissingFileAndMissingTensorAreNotFound) {
  try {
    SafetensorsFile::open("/nonexistent/model.safetensors");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNotFound);
  }
  const auto file = SafetensorsFile::open(test::fixtures_dir() + "/safetensors/dtypes.safetensors");
  try {
    file.tensor("no.such.tensor");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNotFound);
    EXPECT_NE(std::string(e.what()).find("no.such.tensor"), std::string::npos);
  }
}

}  // namespace
}  // namespace qb::io
