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

// Q4_1: 32 4-bit values with a scale and a minimum; value = d * nibble + m (nibble order as
// Q4_0).
struct BlockQ4_1 {
  uint16_t d;  // fp16 bits
  uint16_t m;  // fp16 bits
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ4_1) == 20);

// Q5_0: 32 5-bit values; the low 4 bits as in Q4_0, bit 4 of element j is bit j of qh (read
// as a little-endian uint32); value = d * (q - 16).
struct BlockQ5_0 {
  uint16_t d;  // fp16 bits
  uint8_t qh[4];
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ5_0) == 22);

// Q5_1: Q5_0's 5-bit values with a minimum; value = d * q + m.
struct BlockQ5_1 {
  uint16_t d;  // fp16 bits
  uint16_t m;  // fp16 bits
  uint8_t qh[4];
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ5_1) == 24);

// IQ4_NL: 32 4-bit indices (nibble order as Q4_0) into the non-linear table kIq4nlValues;
// value = d * kIq4nlValues[index].
struct BlockIQ4_NL {
  uint16_t d;  // fp16 bits
  uint8_t qs[16];
};
static_assert(sizeof(BlockIQ4_NL) == 18);
inline constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

// K-quants: super-blocks of 256 elements split into sub-blocks of 16 or 32, each sub-block
// with a small integer scale (and minimum) relative to the super-block's fp16 d (and dmin).
// Several layouts below interleave elements; "element e" counts from the super-block start.
constexpr int kQK_K = 256;

// Q2_K: 16 sub-blocks of 16. scales[j] holds sub-block j's scale (low nibble) and minimum
// (high nibble). Element e = 128 h + 32 k + l (h < 2, k < 4, l < 32) is bits 2k..2k+1 of
// qs[32 h + l] and lies in sub-block j = 8 h + 2 k + l / 16;
// value = d * (scales[j] & 15) * q - dmin * (scales[j] >> 4).
struct BlockQ2_K {
  uint8_t scales[16];
  uint8_t qs[64];
  uint16_t d;     // fp16 bits
  uint16_t dmin;  // fp16 bits
};
static_assert(sizeof(BlockQ2_K) == 84);

// Q3_K: 16 sub-blocks of 16 with 6-bit scales s_j (stored + 32). Element e = 128 h + 32 k + l
// has low bits 2k..2k+1 of qs[32 h + l] and high bit (4 h + k) of hmask[l]; sub-block as Q2_K;
// value = d * (s_j - 32) * (low - (high ? 0 : 4)). Scale j: its low 4 bits are the low (j < 8)
// or high (j >= 8) nibble of scales[j % 8], its top 2 bits bits 2 (j / 4) of scales[8 + j % 4].
struct BlockQ3_K {
  uint8_t hmask[32];
  uint8_t qs[64];
  uint8_t scales[12];
  uint16_t d;  // fp16 bits
};
static_assert(sizeof(BlockQ3_K) == 110);

// Q4_K: 8 sub-blocks of 32 with 6-bit scales sc_j and minima m_j packed in 12 bytes (see
// unpack_scales_k4). Element e = 64 c + l (l < 32) is the low nibble of qs[32 c + l] (sub-block
// 2c), e = 64 c + 32 + l its high nibble (sub-block 2c + 1); value = d * sc_j * q - dmin * m_j.
struct BlockQ4_K {
  uint16_t d;     // fp16 bits
  uint16_t dmin;  // fp16 bits
  uint8_t scales[12];
  uint8_t qs[128];
};
static_assert(sizeof(BlockQ4_K) == 144);

// Q5_K: Q4_K plus a fifth bit: element l of sub-block j has bit j of qh[l] as its bit 4.
struct BlockQ5_K {
  uint16_t d;     // fp16 bits
  uint16_t dmin;  // fp16 bits
  uint8_t scales[12];
  uint8_t qh[32];
  uint8_t qs[128];
};
static_assert(sizeof(BlockQ5_K) == 176);

// Q6_K: 16 sub-blocks of 16 with int8 scales. For half h < 2 and l < 32, with
// L = ql + 64 h and H = qh + 32 h: element 128 h + l      = (L[l] & 15)      | (H[l] & 3) << 4,
//                                         128 h + 32 + l = (L[l + 32] & 15) | (H[l] >> 2 & 3) << 4,
//                                         128 h + 64 + l = (L[l] >> 4)      | (H[l] >> 4 & 3) << 4,
//                                         128 h + 96 + l = (L[l + 32] >> 4) | (H[l] >> 6) << 4;
// value = d * scales[e / 16] * (q - 32).
struct BlockQ6_K {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint16_t d;  // fp16 bits
};
static_assert(sizeof(BlockQ6_K) == 210);

// Unpacks Q4_K/Q5_K's 12 scale bytes: sub-block j < 4 has sc = s[j] & 63, m = s[j + 4] & 63;
// j >= 4 has sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4, m = (s[j + 4] >> 4) | (s[j] >> 6) << 4.
inline void unpack_scales_k4(const uint8_t* s, uint8_t* sc, uint8_t* m) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = s[j] & 63;
    m[j] = s[j + 4] & 63;
    sc[j + 4] = static_cast<uint8_t>((s[j + 8] & 15) | ((s[j] >> 6) << 4));
    m[j + 4] = static_cast<uint8_t>((s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4));
  }
}

// Unpacks Q3_K's 12 scale bytes into the 16 stored scales (0..63; the scale is value - 32).
inline void unpack_scales_q3_k(const uint8_t* s, uint8_t* out) {
  for (int j = 0; j < 16; ++j) {
    const int low = j < 8 ? s[j] & 15 : s[j - 8] >> 4;
    out[j] = static_cast<uint8_t>(low | ((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4);
  }
}

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
