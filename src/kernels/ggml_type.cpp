// GGUF type table and scalar fp16/bf16 conversions.
#include "kernels/ggml_type.h"

#include <strings.h>

#include <cmath>

#include "util/check.h"

namespace frugal {

namespace {

struct Entry {
  GgmlType type;
  GgmlTypeInfo info;
};

// block_size / type_size follow the GGUF spec; computable marks what the kernels implement.
constexpr Entry kTypes[] = {
    {GgmlType::kF32, {"f32", 1, 4, true}},
    {GgmlType::kF16, {"f16", 1, 2, true}},
    {GgmlType::kQ4_0, {"q4_0", 32, 18, true}},
    {GgmlType::kQ4_1, {"q4_1", 32, 20, true}},
    {GgmlType::kQ5_0, {"q5_0", 32, 22, true}},
    {GgmlType::kQ5_1, {"q5_1", 32, 24, true}},
    {GgmlType::kQ8_0, {"q8_0", 32, 34, true}},
    {GgmlType::kQ8_1, {"q8_1", 32, 36, false}},
    {GgmlType::kQ2_K, {"q2_K", 256, 84, true}},
    {GgmlType::kQ3_K, {"q3_K", 256, 110, true}},
    {GgmlType::kQ4_K, {"q4_K", 256, 144, true}},
    {GgmlType::kQ5_K, {"q5_K", 256, 176, true}},
    {GgmlType::kQ6_K, {"q6_K", 256, 210, true}},
    {GgmlType::kQ8_K, {"q8_K", 256, 292, false}},
    {GgmlType::kIQ2_XXS, {"iq2_xxs", 256, 66, false}},
    {GgmlType::kIQ2_XS, {"iq2_xs", 256, 74, false}},
    {GgmlType::kIQ3_XXS, {"iq3_xxs", 256, 98, false}},
    {GgmlType::kIQ1_S, {"iq1_s", 256, 50, false}},
    {GgmlType::kIQ4_NL, {"iq4_nl", 32, 18, true}},
    {GgmlType::kIQ3_S, {"iq3_s", 256, 110, false}},
    {GgmlType::kIQ2_S, {"iq2_s", 256, 82, false}},
    {GgmlType::kIQ4_XS, {"iq4_xs", 256, 136, false}},
    {GgmlType::kI8, {"i8", 1, 1, false}},
    {GgmlType::kI16, {"i16", 1, 2, false}},
    {GgmlType::kI32, {"i32", 1, 4, false}},
    {GgmlType::kI64, {"i64", 1, 8, false}},
    {GgmlType::kF64, {"f64", 1, 8, false}},
    {GgmlType::kIQ1_M, {"iq1_m", 256, 56, false}},
    {GgmlType::kBF16, {"bf16", 1, 2, true}},
    {GgmlType::kTQ1_0, {"tq1_0", 256, 54, false}},
    {GgmlType::kTQ2_0, {"tq2_0", 256, 66, false}},
};

}  // namespace

const GgmlTypeInfo* ggml_type_info(GgmlType type) {
  for (const Entry& e : kTypes)
    if (e.type == type) return &e.info;
  return nullptr;
}

const GgmlTypeInfo* ggml_type_from_name(const char* name, GgmlType* out) {
  for (const Entry& e : kTypes) {
    if (strcasecmp(e.info.name, name) == 0) {
      if (out != nullptr) *out = e.type;
      return &e.info;
    }
  }
  return nullptr;
}

int64_t ggml_row_bytes(GgmlType type, int64_t n) {
  const GgmlTypeInfo* info = ggml_type_info(type);
  CHECK(info != nullptr, "unknown ggml type %u", static_cast<unsigned>(type));
  CHECK(n % info->block_size == 0, "%lld elements is not a multiple of %s's block of %lld",
        static_cast<long long>(n), info->name, static_cast<long long>(info->block_size));
  return n / info->block_size * info->type_size;
}

float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal half: normalise into a float
      float f = std::ldexp(static_cast<float>(mant), -24);
      std::memcpy(&bits, &f, 4);
      bits |= sign;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t fp32_to_fp16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or nan
    return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
  }
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (abs < 0x38800000u) {  // below the smallest normal half: subnormal or zero
    // Scale so the half subnormal unit (2^-24) becomes 1, then round to nearest even.
    float a;
    std::memcpy(&a, &abs, 4);
    float scaled = a * 16777216.0f;  // 2^24
    uint32_t m = static_cast<uint32_t>(std::nearbyint(scaled));
    return static_cast<uint16_t>(sign | m);
  }
  // Normal: rebias exponent, round mantissa to 10 bits, nearest even.
  uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
  return static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
}

uint16_t fp32_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // nan
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

}  // namespace frugal
