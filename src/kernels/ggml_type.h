// GgmlType: the tensor element types of the GGUF format, their block layouts and sizes.
// Reference for layouts: the GGUF specification and ggml's block definitions (read, not copied).
#pragma once

#include <cstdint>
#include <cstring>

namespace frugal {

// Numeric values are the on-disk GGUF type ids; never renumber.
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
  kTQ1_0 = 34,
  kTQ2_0 = 35,
};

struct GgmlTypeInfo {
  const char* name;     // "q4_0", as llama.cpp prints it
  int64_t block_size;   // elements per block (1 for plain types)
  int64_t type_size;    // bytes per block
  bool computable;      // this build has matmul kernels for it
};

// Returns nullptr for an id that is not a known GGUF type.
const GgmlTypeInfo* ggml_type_info(GgmlType type);
// Returns nullptr for an unknown name; names as ggml_type_info().name, case-insensitive.
const GgmlTypeInfo* ggml_type_from_name(const char* name, GgmlType* out);

// Bytes of `n` elements of `type`; n must be a multiple of the block size.
int64_t ggml_row_bytes(GgmlType type, int64_t n);

// Q8_0: 32 int8 values and one fp16 scale; value = d * qs[i].
constexpr int kQK8_0 = 32;
struct BlockQ8_0 {
  uint16_t d;  // fp16 bits
  int8_t qs[kQK8_0];
};
static_assert(sizeof(BlockQ8_0) == 34);

// Q4_0: 32 4-bit values and one fp16 scale; element j (j < 16) is the low nibble of qs[j],
// element j + 16 the high nibble; value = d * (nibble - 8).
constexpr int kQK4_0 = 32;
struct BlockQ4_0 {
  uint16_t d;  // fp16 bits
  uint8_t qs[kQK4_0 / 2];
};
static_assert(sizeof(BlockQ4_0) == 18);

// IEEE half and bfloat16 conversions (round to nearest even), scalar reference.
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
inline float bf16_to_fp32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t fp32_to_bf16(float f);

}  // namespace frugal
