// The SIMD element-wise ops of ops.h (Highway foreach_target) and matmul's per-type dispatch.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/ops.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"
#include "kernels/matmul_internal.h"
#include "kernels/ops.h"
#include "kernels/ops_ref.h"
#include "util/check.h"

HWY_BEFORE_NAMESPACE();
namespace frugal::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::VFromD<DF>;

// Sum of a[i] * b[i] with four accumulators; the tail goes through a scalar loop.
float Dot(const float* a, const float* b, int64_t n) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  VF s0 = hn::Zero(df), s1 = hn::Zero(df), s2 = hn::Zero(df), s3 = hn::Zero(df);
  int64_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    s0 = hn::MulAdd(hn::LoadU(df, a + i), hn::LoadU(df, b + i), s0);
    s1 = hn::MulAdd(hn::LoadU(df, a + i + N), hn::LoadU(df, b + i + N), s1);
    s2 = hn::MulAdd(hn::LoadU(df, a + i + 2 * N), hn::LoadU(df, b + i + 2 * N), s2);
    s3 = hn::MulAdd(hn::LoadU(df, a + i + 3 * N), hn::LoadU(df, b + i + 3 * N), s3);
  }
  for (; i + N <= n; i += N) s0 = hn::MulAdd(hn::LoadU(df, a + i), hn::LoadU(df, b + i), s0);
  float s = hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(s0, s1), hn::Add(s2, s3))));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void Axpy(float a, const float* x, float* y, int64_t n) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const VF va = hn::Set(df, a);
  int64_t i = 0;
  for (; i + N <= n; i += N)
    hn::StoreU(hn::MulAdd(va, hn::LoadU(df, x + i), hn::LoadU(df, y + i)), df, y + i);
  for (; i < n; ++i) y[i] += a * x[i];
}

void Scale(float* y, float a, int64_t n) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const VF va = hn::Set(df, a);
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::LoadU(df, y + i), va), df, y + i);
  for (; i < n; ++i) y[i] *= a;
}

void AddInplace(float* y, const float* x, int64_t n) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  int64_t i = 0;
  for (; i + N <= n; i += N)
    hn::StoreU(hn::Add(hn::LoadU(df, y + i), hn::LoadU(df, x + i)), df, y + i);
  for (; i < n; ++i) y[i] += x[i];
}

void RmsNorm(const float* x, const float* w, float eps, int64_t n, float* out) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const float ss = Dot(x, x, n);
  const float inv = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  const VF vinv = hn::Set(df, inv);
  int64_t i = 0;
  for (; i + N <= n; i += N)
    hn::StoreU(hn::Mul(hn::Mul(hn::LoadU(df, x + i), vinv), hn::LoadU(df, w + i)), df, out + i);
  for (; i < n; ++i) out[i] = x[i] * inv * w[i];
}

void SiluMul(const float* gate, const float* up, int64_t n, float* out) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const VF one = hn::Set(df, 1.0f);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const VF g = hn::LoadU(df, gate + i);
    const VF sig = hn::Div(one, hn::Add(one, hn::Exp(df, hn::Neg(g))));
    hn::StoreU(hn::Mul(hn::Mul(g, sig), hn::LoadU(df, up + i)), df, out + i);
  }
  if (i < n) {
    // The tail through the same vector code, padded: an element's value must not depend on
    // where it falls in the array, or batching tokens together would change their results.
    HWY_ALIGN float g[HWY_LANES(float)] = {}, u[HWY_LANES(float)] = {};
    const int64_t rest = n - i;
    for (int64_t j = 0; j < rest; ++j) {
      g[j] = gate[i + j];
      u[j] = up[i + j];
    }
    const VF gv = hn::Load(df, g);
    const VF sig = hn::Div(one, hn::Add(one, hn::Exp(df, hn::Neg(gv))));
    hn::Store(hn::Mul(hn::Mul(gv, sig), hn::Load(df, u)), df, g);
    for (int64_t j = 0; j < rest; ++j) out[i + j] = g[j];
  }
}

// gelu(x) in its tanh form: x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³))).
HWY_INLINE VF GeluTanh(DF df, VF x) {
  const VF inner = hn::Mul(hn::Set(df, 0.7978845608028654f),
                           hn::MulAdd(hn::Mul(hn::Set(df, 0.044715f), hn::Mul(x, x)), x, x));
  return hn::Mul(hn::Mul(hn::Set(df, 0.5f), x), hn::Add(hn::Set(df, 1.0f), hn::Tanh(df, inner)));
}

void GeluMul(const float* gate, const float* up, int64_t n, float* out) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  int64_t i = 0;
  for (; i + N <= n; i += N)
    hn::StoreU(hn::Mul(GeluTanh(df, hn::LoadU(df, gate + i)), hn::LoadU(df, up + i)), df, out + i);
  if (i < n) {  // the tail through the same vector code, padded (see SiluMul)
    HWY_ALIGN float g[HWY_LANES(float)] = {}, u[HWY_LANES(float)] = {};
    const int64_t rest = n - i;
    for (int64_t j = 0; j < rest; ++j) {
      g[j] = gate[i + j];
      u[j] = up[i + j];
    }
    hn::Store(hn::Mul(GeluTanh(df, hn::Load(df, g)), hn::Load(df, u)), df, g);
    for (int64_t j = 0; j < rest; ++j) out[i + j] = g[j];
  }
}

void SoftCap(float* x, float cap, int64_t n) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const VF vcap = hn::Set(df, cap), vinv = hn::Set(df, 1.0f / cap);
  int64_t i = 0;
  for (; i + N <= n; i += N)
    hn::StoreU(hn::Mul(vcap, hn::Tanh(df, hn::Mul(hn::LoadU(df, x + i), vinv))), df, x + i);
  if (i < n) {  // padded tail, as in SiluMul
    HWY_ALIGN float t[HWY_LANES(float)] = {};
    const int64_t rest = n - i;
    for (int64_t j = 0; j < rest; ++j) t[j] = x[i + j];
    hn::Store(hn::Mul(vcap, hn::Tanh(df, hn::Mul(hn::Load(df, t), vinv))), df, t);
    for (int64_t j = 0; j < rest; ++j) x[i + j] = t[j];
  }
}

float Softmax(float* x, int64_t n) {
  if (n <= 0) return 0.0f;
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  float mx = x[0];
  int64_t i = 0;
  if (n >= N) {
    VF vmax = hn::LoadU(df, x);
    for (i = N; i + N <= n; i += N) vmax = hn::Max(vmax, hn::LoadU(df, x + i));
    mx = hn::GetLane(hn::MaxOfLanes(df, vmax));
  }
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  const VF vmx = hn::Set(df, mx);
  VF vsum = hn::Zero(df);
  for (i = 0; i + N <= n; i += N) {
    const VF e = hn::Exp(df, hn::Sub(hn::LoadU(df, x + i), vmx));
    vsum = hn::Add(vsum, e);
    hn::StoreU(e, df, x + i);
  }
  float sum = hn::GetLane(hn::SumOfLanes(df, vsum));
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  Scale(x, 1.0f / sum, n);
  return sum;
}

// n_q query heads sharing one KV head over n cached positions (see ops.h `attention`): the
// whole group in one dispatched call, each key and value row read once for all n_q queries.
void Attention(const float* q, int64_t n_q, const float* const* k_blocks,
               const float* const* v_blocks, int64_t block_size, int64_t head_dim, int64_t n,
               float scale, float* scores, float* out, int64_t start, float softcap) {
  const int64_t m = n - start;  // positions attended; scores [n_q, m]
  for (int64_t j = start; j < n; ++j) {
    const float* k = k_blocks[j / block_size] + (j % block_size) * head_dim;
    for (int64_t g = 0; g < n_q; ++g)
      scores[g * m + j - start] = Dot(q + g * head_dim, k, head_dim) * scale;
  }
  for (int64_t g = 0; g < n_q; ++g) {
    if (softcap > 0.0f) SoftCap(scores + g * m, softcap, m);
    Softmax(scores + g * m, m);
  }
  for (int64_t i = 0; i < n_q * head_dim; ++i) out[i] = 0.0f;
  for (int64_t j = start; j < n; ++j) {
    const float* v = v_blocks[j / block_size] + (j % block_size) * head_dim;
    for (int64_t g = 0; g < n_q; ++g)
      Axpy(scores[g * m + j - start], v, out + g * head_dim, head_dim);
  }
}

// log(sum exp(x[i])), stable: the max first, then the sum of exp(x - max); the tail goes
// through the vector code padded with -inf (exp gives 0).
float LogSumExp(const float* x, int64_t n) {
  if (n <= 0) return -std::numeric_limits<float>::infinity();
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  HWY_ALIGN float pad[HWY_LANES(float)];
  const int64_t body = n / N * N;
  const int64_t rest = n - body;
  for (int64_t j = 0; j < N; ++j) pad[j] = j < rest ? x[body + j] : -std::numeric_limits<float>::infinity();
  VF vmax = hn::Load(df, pad);
  for (int64_t i = 0; i < body; i += N) vmax = hn::Max(vmax, hn::LoadU(df, x + i));
  const float mx = hn::GetLane(hn::MaxOfLanes(df, vmax));
  if (!std::isfinite(mx)) return mx;
  const VF vmx = hn::Set(df, mx);
  VF s0 = hn::Zero(df), s1 = hn::Zero(df);
  int64_t i = 0;
  for (; i + 2 * N <= body; i += 2 * N) {
    s0 = hn::Add(s0, hn::Exp(df, hn::Sub(hn::LoadU(df, x + i), vmx)));
    s1 = hn::Add(s1, hn::Exp(df, hn::Sub(hn::LoadU(df, x + i + N), vmx)));
  }
  for (; i < body; i += N) s0 = hn::Add(s0, hn::Exp(df, hn::Sub(hn::LoadU(df, x + i), vmx)));
  s0 = hn::Add(s0, hn::Exp(df, hn::Sub(hn::Load(df, pad), vmx)));
  const float sum = hn::GetLane(hn::SumOfLanes(df, hn::Add(s0, s1)));
  return mx + std::log(sum);
}

// The first index of the largest element, as the scalar loop `if (x[i] > x[best]) best = i`:
// NaN elements never win, and a NaN at 0 wins (nothing compares greater). Two passes over
// the row (the largest value, then its first position): greedy decoding's per-token argmax
// over a vocabulary, which the scalar loop made ~10 % of a 16-stream decode step.
int64_t ArgMax(const float* x, int64_t n) {
  if (n <= 0 || std::isnan(x[0])) return 0;
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const VF ninf = hn::Set(df, -std::numeric_limits<float>::infinity());
  const int64_t body = n / N * N;
  VF m0 = ninf, m1 = ninf;
  auto no_nan = [&](VF v) { return hn::IfThenElse(hn::IsNaN(v), ninf, v); };
  int64_t i = 0;
  for (; i + 2 * N <= body; i += 2 * N) {
    m0 = hn::Max(m0, no_nan(hn::LoadU(df, x + i)));
    m1 = hn::Max(m1, no_nan(hn::LoadU(df, x + i + N)));
  }
  for (; i < body; i += N) m0 = hn::Max(m0, no_nan(hn::LoadU(df, x + i)));
  float mx = hn::GetLane(hn::MaxOfLanes(df, hn::Max(m0, m1)));
  for (int64_t j = body; j < n; ++j)
    if (x[j] > mx) mx = x[j];
  const VF vmx = hn::Set(df, mx);
  for (i = 0; i < body; i += N) {
    const intptr_t first = hn::FindFirstTrue(df, hn::Eq(hn::LoadU(df, x + i), vmx));
    if (first >= 0) return i + first;
  }
  for (i = body; i < n; ++i)
    if (x[i] == mx) return i;
  return 0;  // unreachable: mx is one of the elements
}

// ---------------------------------------------------------------- F16 KV cache

using DH = hn::Rebind<hwy::float16_t, DF>;  // as many halves as DF has floats

HWY_INLINE VF LoadHalves(const uint16_t* p) {
  return hn::PromoteTo(DF(), hn::LoadU(DH(), reinterpret_cast<const hwy::float16_t*>(p)));
}

// Prefetches n halves into L1 (PrefetchHalvesL2: into L2). A sequence's blocks lie anywhere in
// the pool, so the hardware prefetcher loses the stream at each block. Values: row `slot` of
// the next block as row `slot` of this one is read (one block ahead: 15 % faster than none,
// and than a whole block at once, on the Intel Xeon dev VM; two or four blocks ahead lose
// again). Keys, transposed: the whole next block while this one is scored, and this block's
// values into L2 for the pass after the softmax (16 streams at 1,000 positions on the AMD EPYC
// VM: 571-581 -> 610-699 tok/s; the next block's keys into L2 as well gained nothing more).
HWY_INLINE void PrefetchHalvesL2(const uint16_t* p, int64_t n) {
  const auto* b = reinterpret_cast<const char*>(p);
  for (int64_t off = 0; off < n * 2; off += 64) __builtin_prefetch(b + off, 0, 2);
}
HWY_INLINE void PrefetchHalves(const uint16_t* p, int64_t n) {
  const auto* b = reinterpret_cast<const char*>(p);
  for (int64_t off = 0; off < n * 2; off += 64) __builtin_prefetch(b + off);
}

// Scores of kG query heads (q [kG, head_dim]) against slots j0 .. j1 of one block whose keys
// are stored transposed (kt [head_dim, block_size]: dimension d of slot j at
// kt[d * block_size + j]): s[g * stride + j - j0] = scale * q[g]·k_j. A vector holds N slots,
// so a score needs no horizontal sum; each dimension's halves are widened once for the kG
// heads, and kP partial sums per head keep enough multiply-adds in flight.
template <int kG>
HWY_INLINE void ScoreBlockF16T(const float* q, const uint16_t* kt, int64_t block_size,
                               int64_t head_dim, int64_t j0, int64_t j1, float scale, float* s,
                               int64_t stride) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  constexpr int kP = kG >= 3 ? 2 : 4;
  HWY_ALIGN float part[HWY_LANES(float)];
  const VF vscale = hn::Set(df, scale);
  int64_t c = j0 / N * N;
  for (; c < j1 && c + N <= block_size; c += N) {
    VF acc[kG][kP];
    for (int g = 0; g < kG; ++g)
      for (int p = 0; p < kP; ++p) acc[g][p] = hn::Zero(df);
    int64_t d = 0;
    for (; d + kP <= head_dim; d += kP) {
      for (int p = 0; p < kP; ++p) {
        const VF kv = LoadHalves(kt + (d + p) * block_size + c);
        for (int g = 0; g < kG; ++g)
          acc[g][p] = hn::MulAdd(hn::Set(df, q[g * head_dim + d + p]), kv, acc[g][p]);
      }
    }
    for (; d < head_dim; ++d) {
      const VF kv = LoadHalves(kt + d * block_size + c);
      for (int g = 0; g < kG; ++g)
        acc[g][0] = hn::MulAdd(hn::Set(df, q[g * head_dim + d]), kv, acc[g][0]);
    }
    const int64_t lo = std::max(c, j0), hi = std::min(c + N, j1);
    for (int g = 0; g < kG; ++g) {
      VF sum = acc[g][0];
      for (int p = 1; p < kP; ++p) sum = hn::Add(sum, acc[g][p]);
      sum = hn::Mul(sum, vscale);
      if (lo == c && hi == c + N) {
        hn::StoreU(sum, df, s + g * stride + c - j0);
      } else {
        hn::Store(sum, df, part);
        for (int64_t j = lo; j < hi; ++j) s[g * stride + j - j0] = part[j - c];
      }
    }
  }
  // Slots past the last whole vector of the block (a block_size that is not a multiple of N).
  for (int64_t j = std::max(c, j0); j < j1; ++j) {
    for (int g = 0; g < kG; ++g) {
      float sum = 0.0f;
      for (int64_t d = 0; d < head_dim; ++d)
        sum += q[g * head_dim + d] * fp16_to_fp32(kt[d * block_size + j]);
      s[g * stride + j - j0] = sum * scale;
    }
  }
}

// out[g][d .. d + kW N) = sum over positions j of p[g][j - start] * v_j[d .. d + kW N) for kG
// heads (p [kG, stride]); the accumulators stay in registers over all positions and each
// value chunk is widened once for the kG heads.
template <int kG, int kW>
HWY_INLINE void AccumulateValuesF16(const float* p, int64_t stride,
                                    const uint16_t* const* v_blocks, int64_t block_size,
                                    int64_t head_dim, int64_t start, int64_t n, int64_t d,
                                    float* out) {
  const DF df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  VF acc[kG][kW];
  for (int g = 0; g < kG; ++g)
    for (int w = 0; w < kW; ++w) acc[g][w] = hn::Zero(df);
  int64_t blk = start / block_size, slot = start % block_size;
  const int64_t n_last = (n - 1) / block_size;
  for (int64_t j = start; j < n; ++j) {
    if (d == 0 && blk < n_last) PrefetchHalves(v_blocks[blk + 1] + slot * head_dim, head_dim);
    const uint16_t* v = v_blocks[blk] + slot * head_dim + d;
    if (++slot == block_size) slot = 0, ++blk;
    VF vv[kW];
    for (int w = 0; w < kW; ++w) vv[w] = LoadHalves(v + w * N);
    for (int g = 0; g < kG; ++g) {
      const VF sg = hn::Set(df, p[g * stride + j - start]);
      for (int w = 0; w < kW; ++w) acc[g][w] = hn::MulAdd(sg, vv[w], acc[g][w]);
    }
  }
  for (int g = 0; g < kG; ++g)
    for (int w = 0; w < kW; ++w) hn::StoreU(acc[g][w], df, out + g * head_dim + d + w * N);
}

// Heads g0 .. g0 + kG of AttentionF16.
template <int kG>
void AttentionF16Heads(const float* q, const uint16_t* const* k_blocks,
                       const uint16_t* const* v_blocks, int64_t block_size, int64_t head_dim,
                       int64_t n, float scale, float* scores, int64_t m, float* out,
                       int64_t start, float softcap) {
  const int64_t b0 = start / block_size, n_last = (n - 1) / block_size;  // blocks read
  for (int64_t b = b0; b <= n_last; ++b) {
    if (b < n_last) PrefetchHalves(k_blocks[b + 1], head_dim * block_size);
    PrefetchHalvesL2(v_blocks[b], head_dim * block_size);  // read back after the softmax
    const int64_t j0 = b == b0 ? start % block_size : 0;
    const int64_t j1 = b == n_last ? (n - 1) % block_size + 1 : block_size;
    ScoreBlockF16T<kG>(q, k_blocks[b], block_size, head_dim, j0, j1, scale,
                       scores + b * block_size + j0 - start, m);
  }
  for (int g = 0; g < kG; ++g) {
    if (softcap > 0.0f) SoftCap(scores + g * m, softcap, m);
    Softmax(scores + g * m, m);
  }
  const int64_t N = static_cast<int64_t>(hn::Lanes(DF()));
  int64_t d = 0;
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3  // 32 vector registers: whole 64-float rows at once
  for (; d + 4 * N <= head_dim; d += 4 * N)
    AccumulateValuesF16<kG, 4>(scores, m, v_blocks, block_size, head_dim, start, n, d, out);
#endif
  for (; d + 2 * N <= head_dim; d += 2 * N)
    AccumulateValuesF16<kG, 2>(scores, m, v_blocks, block_size, head_dim, start, n, d, out);
  for (; d + N <= head_dim; d += N)
    AccumulateValuesF16<kG, 1>(scores, m, v_blocks, block_size, head_dim, start, n, d, out);
  for (; d < head_dim; ++d) {  // dimensions past the last whole vector
    for (int g = 0; g < kG; ++g) {
      float sum = 0.0f;
      for (int64_t j = start; j < n; ++j) {
        const uint16_t* v = v_blocks[j / block_size] + (j % block_size) * head_dim;
        sum += scores[g * m + j - start] * fp16_to_fp32(v[d]);
      }
      out[g * head_dim + d] = sum;
    }
  }
}

// Attention over an F16 cache: as Attention, each half widened to float as it is read, once
// for up to four query heads of the group.
void AttentionF16(const float* q, int64_t n_q, const uint16_t* const* k_blocks,
                  const uint16_t* const* v_blocks, int64_t block_size, int64_t head_dim,
                  int64_t n, float scale, float* scores, float* out, int64_t start,
                  float softcap) {
  const int64_t m = n - start;
  for (int64_t g0 = 0; g0 < n_q; g0 += 4) {
    const float* qg = q + g0 * head_dim;
    float* sg = scores + g0 * m;
    float* og = out + g0 * head_dim;
    using Heads = void (*)(const float*, const uint16_t* const*, const uint16_t* const*, int64_t,
                           int64_t, int64_t, float, float*, int64_t, float*, int64_t, float);
    static constexpr Heads kHeads[4] = {&AttentionF16Heads<1>, &AttentionF16Heads<2>,
                                        &AttentionF16Heads<3>, &AttentionF16Heads<4>};
    kHeads[std::min<int64_t>(4, n_q - g0) - 1](qg, k_blocks, v_blocks, block_size, head_dim, n,
                                               scale, sg, m, og, start, softcap);
  }
}

// Round to nearest even, as fp32_to_fp16.
void F32ToF16(const float* x, uint16_t* out, int64_t n) {
  const DF df;
  const DH dh;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  int64_t i = 0;
#if HWY_TARGET != HWY_SCALAR  // Highway's scalar emulation truncates instead of rounding
  for (; i + N <= n; i += N)
    hn::StoreU(hn::DemoteTo(dh, hn::LoadU(df, x + i)), dh,
               reinterpret_cast<hwy::float16_t*>(out + i));
#else
  (void)dh;
  (void)N;
#endif
  for (; i < n; ++i) out[i] = fp32_to_fp16(x[i]);
}

const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace frugal::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace frugal::kernels {

HWY_EXPORT(Dot);
HWY_EXPORT(Axpy);
HWY_EXPORT(Scale);
HWY_EXPORT(AddInplace);
HWY_EXPORT(RmsNorm);
HWY_EXPORT(SiluMul);
HWY_EXPORT(GeluMul);
HWY_EXPORT(SoftCap);
HWY_EXPORT(Softmax);
HWY_EXPORT(LogSumExp);
HWY_EXPORT(ArgMax);
HWY_EXPORT(Attention);
HWY_EXPORT(AttentionF16);
HWY_EXPORT(F32ToF16);
HWY_EXPORT(TargetName);

void matmul(const WeightView& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool) {
  CHECK(w.n_cols % 32 == 0 || w.type == GgmlType::kF32 || w.type == GgmlType::kF16 ||
            w.type == GgmlType::kBF16,
        "matmul: n_cols=%lld", static_cast<long long>(w.n_cols));
  if (pool != nullptr && pool->n_threads() == 1) pool = nullptr;
  switch (w.type) {
    case GgmlType::kF32: return matmul_f32(w, x, n_tokens, y, pool);
    case GgmlType::kF16: return matmul_f16(w, x, n_tokens, y, pool);
    case GgmlType::kBF16: return matmul_bf16(w, x, n_tokens, y, pool);
    case GgmlType::kQ8_0: return matmul_q8_0(w, x, n_tokens, y, pool);
    case GgmlType::kQ4_0: return matmul_q4_0(w, x, n_tokens, y, pool);
    case GgmlType::kQ4_1: return matmul_q4_1(w, x, n_tokens, y, pool);
    case GgmlType::kQ5_0: return matmul_q5_0(w, x, n_tokens, y, pool);
    case GgmlType::kQ5_1: return matmul_q5_1(w, x, n_tokens, y, pool);
    case GgmlType::kIQ4_NL: return matmul_iq4_nl(w, x, n_tokens, y, pool);
    case GgmlType::kQ2_K: return matmul_q2_k(w, x, n_tokens, y, pool);
    case GgmlType::kQ3_K: return matmul_q3_k(w, x, n_tokens, y, pool);
    case GgmlType::kQ4_K: return matmul_q4_k(w, x, n_tokens, y, pool);
    case GgmlType::kQ5_K: return matmul_q5_k(w, x, n_tokens, y, pool);
    case GgmlType::kQ6_K: return matmul_q6_k(w, x, n_tokens, y, pool);
    default:
      CHECK(false, "matmul: no kernel for weight type %u", static_cast<unsigned>(w.type));
  }
}

int interleave_group(GgmlType type) {
  // Q4_0 and Q5_0 run in the Q8_0 tile's loop (Rows16Blocks32) where it exists.
  if (type == GgmlType::kQ8_0 || type == GgmlType::kQ4_0 || type == GgmlType::kQ5_0)
    return q8_tile_interleave_group();
  if (type == GgmlType::kQ4_K) return q4_k_interleave_group();
  if (type == GgmlType::kQ6_K) return q6_k_interleave_group();
  if (type != GgmlType::kQ5_K) return 0;
  return block_tile_interleave_group();
}

int64_t interleaved_bytes(const WeightView& w, int group) {
  return (w.n_rows + group - 1) / group * group * w.row_bytes();
}

namespace {

// Calls fn(r, b, block, group_out) for every block b of row r of every group of `group` rows
// (rows past the last repeat it), with group_out the group's first byte in `out`.
template <class Fn>
void ForEachGroupBlock(const WeightView& w, int group, int64_t block_bytes, uint8_t* out,
                       const Fn& fn) {
  const int64_t rb = w.row_bytes(), n_blocks = rb / block_bytes;
  const auto* src = static_cast<const uint8_t*>(w.data);
  for (int64_t g = 0; g * group < w.n_rows; ++g) {
    for (int r = 0; r < group; ++r) {
      const uint8_t* row = src + std::min<int64_t>(g * group + r, w.n_rows - 1) * rb;
      for (int64_t b = 0; b < n_blocks; ++b) fn(r, b, row + b * block_bytes, out + g * group * rb);
    }
  }
}

// The 32-element block types in groups of `group` rows, one row per 32-bit lane of the tile
// (matmul-inl.h, Rows16Blocks32): a group's blocks' quants first, `quant_bytes` a block (32
// per row for Q8_0, 16 for Q4_0, 20 for Q5_0), then the blocks' fp16 scales, 2 * group bytes
// a block, row r's at 2 r. Quants:
//   Q8_0: quants 4k .. 4k + 3 of row r at 4 * group * k + 4 r, stored as w + 128 (the
//         unsigned operand of vpdpbusd);
//   Q4_0: the file's nibble bytes 4m .. 4m + 3 of row r at 4 * group * m + 4 r (low nibble
//         element 4m + j, high nibble element 16 + 4m + j);
//   Q5_0: the nibbles as Q4_0's, then per k a 64-bit mask whose bits 4 r .. 4 r + 3 are the
//         fifth bits of elements 4k .. 4k + 3 of row r.
void interleave_blocks32(const WeightView& w, int group, uint8_t* out) {
  CHECK(group == 16 || w.type == GgmlType::kQ8_0, "interleave_rows: %s in groups of %d",
        ggml_type_info(w.type)->name, group);
  const int64_t n_blocks = w.n_cols / 32;
  const int64_t block_bytes = ggml_type_info(w.type)->type_size;
  const int64_t quant_bytes = group * (block_bytes - 2);
  ForEachGroupBlock(w, group, block_bytes, out, [&](int r, int64_t b, const uint8_t* blk, uint8_t* grp) {
    uint8_t* q = grp + quant_bytes * b;
    std::memcpy(grp + quant_bytes * n_blocks + 2 * group * b + 2 * r, blk, 2);
    switch (w.type) {
      case GgmlType::kQ8_0:
        for (int k = 0; k < 8; ++k)
          for (int j = 0; j < 4; ++j)
            q[4 * group * k + 4 * r + j] = static_cast<uint8_t>(blk[2 + 4 * k + j] ^ 0x80);
        break;
      case GgmlType::kQ4_0:
        for (int m = 0; m < 4; ++m) std::memcpy(q + 4 * group * m + 4 * r, blk + 2 + 4 * m, 4);
        break;
      case GgmlType::kQ5_0: {
        uint32_t qh;
        std::memcpy(&qh, blk + 2, 4);
        for (int m = 0; m < 4; ++m) std::memcpy(q + 4 * group * m + 4 * r, blk + 6 + 4 * m, 4);
        for (int k = 0; k < 8; ++k) {
          uint8_t& byte = q[16 * group + group / 2 * k + r / 2];
          const auto bits = static_cast<uint8_t>((qh >> (4 * k)) & 0x0f);
          byte = r % 2 == 0 ? bits : static_cast<uint8_t>(byte | bits << 4);
        }
        break;
      }
      default: CHECK(false, "interleave_blocks32: %s", ggml_type_info(w.type)->name);
    }
  });
}

// Q4_K in groups of 16 rows for the VNNI tile (matmul_q4_k.cpp, Q4KTile16): each
// super-block of the group is 2304 bytes, its quants as 4-byte groups one row per 32-bit
// lane, then the rows' d and dmin, then the scale bytes transposed (row r's byte i at
// 16 i + r), so the tile unpacks 16 rows' scales with a few byte operations.
void interleave_q4_k_rows16(const WeightView& w, uint8_t* out) {
  constexpr int kGroup = 16;
  ForEachGroupBlock(w, kGroup, 144, out, [&](int r, int64_t b, const uint8_t* src, uint8_t* grp) {
    BlockQ4_K blk;
    std::memcpy(&blk, src, sizeof(blk));
    uint8_t* dst = grp + b * kGroup * 144;
    for (int c = 0; c < 4; ++c)
      for (int k = 0; k < 8; ++k)
        std::memcpy(dst + 512 * c + 64 * k + 4 * r, blk.qs + 32 * c + 4 * k, 4);
    std::memcpy(dst + 2048 + 2 * r, &blk.d, 2);
    std::memcpy(dst + 2080 + 2 * r, &blk.dmin, 2);
    for (int i = 0; i < 12; ++i) dst[2112 + 16 * i + r] = blk.scales[i];
  });
}

// Q6_K in groups of 16 rows for the VNNI tile (matmul_q6_k.cpp, Q6KTile16): each
// super-block of the group is 3360 bytes, its ql and qh as 4-byte groups one row per 32-bit
// lane in four 768-byte chunks in the order the tile reads them, then the scales transposed
// (row r's scale j at 3072 + 16 j + r), then the rows' d.
void interleave_q6_k_rows16(const WeightView& w, uint8_t* out) {
  constexpr int kGroup = 16;
  ForEachGroupBlock(w, kGroup, 210, out, [&](int r, int64_t b, const uint8_t* src, uint8_t* grp) {
    BlockQ6_K blk;
    std::memcpy(&blk, src, sizeof(blk));
    uint8_t* blk_out = grp + b * kGroup * 210;
    // Odd super-blocks lead with d and the scales (3360 bytes is not whole cache lines).
    uint8_t* dst = blk_out + (b % 2 == 0 ? 0 : 288);
    uint8_t* scales = blk_out + (b % 2 == 0 ? 3072 : 32);
    uint8_t* d = blk_out + (b % 2 == 0 ? 3328 : 0);
    for (int c = 0; c < 4; ++c) {  // c = 2 H + h
      const int H = c / 2, h = c % 2;
      for (int kk = 0; kk < 4; ++kk) {
        const int l = 16 * h + 4 * kk;
        uint8_t* v = dst + 768 * c + 64 * kk + 4 * r;
        std::memcpy(v, blk.ql + 64 * H + l, 4);
        std::memcpy(v + 256, blk.ql + 64 * H + 32 + l, 4);
        std::memcpy(v + 512, blk.qh + 32 * H + l, 4);
      }
    }
    for (int j = 0; j < 16; ++j) scales[16 * j + r] = static_cast<uint8_t>(blk.scales[j]);
    std::memcpy(d + 2 * r, &blk.d, 2);
  });
}

}  // namespace

void interleave_rows(const WeightView& w, int group, uint8_t* out) {
  CHECK(!w.interleaved && group > 0, "interleave_rows: the view is already interleaved");
  if (w.type == GgmlType::kQ8_0 || w.type == GgmlType::kQ4_0 || w.type == GgmlType::kQ5_0)
    return interleave_blocks32(w, group, out);
  if (w.type == GgmlType::kQ4_K && group == 16) return interleave_q4_k_rows16(w, out);
  if (w.type == GgmlType::kQ6_K && group == 16) return interleave_q6_k_rows16(w, out);
  const GgmlTypeInfo* info = ggml_type_info(w.type);
  const int64_t block_bytes = info->type_size;
  CHECK(block_bytes % 16 == 0, "interleave_rows: %s blocks are not whole 16-byte chunks",
        info->name);
  ForEachGroupBlock(w, group, block_bytes, out, [&](int r, int64_t b, const uint8_t* blk, uint8_t* grp) {
    for (int64_t c = 0; c < block_bytes / 16; ++c)
      std::memcpy(grp + b * group * block_bytes + 16 * (group * c + r), blk + 16 * c, 16);
  });
}

// Conversions run once per tensor at load or convert time, so the reference is fast enough.
void quantize_row(GgmlType type, const float* x, void* out, int64_t n) {
  quantize_row_ref(type, x, out, n);
}
void dequantize_row(GgmlType type, const void* x, float* out, int64_t n) {
  dequantize_row_ref(type, x, out, n);
}

void rms_norm(const float* x, const float* w, float eps, int64_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(RmsNorm)(x, w, eps, n, out);
}
void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(SiluMul)(gate, up, n, out);
}
void gelu_mul(const float* gate, const float* up, int64_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(GeluMul)(gate, up, n, out);
}
void soft_cap(float* x, float cap, int64_t n) { HWY_DYNAMIC_DISPATCH(SoftCap)(x, cap, n); }
void add_inplace(float* y, const float* x, int64_t n) {
  HWY_DYNAMIC_DISPATCH(AddInplace)(y, x, n);
}
float dot(const float* a, const float* b, int64_t n) { return HWY_DYNAMIC_DISPATCH(Dot)(a, b, n); }
void axpy(float a, const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(Axpy)(a, x, y, n); }
void scale(float* y, float a, int64_t n) { HWY_DYNAMIC_DISPATCH(Scale)(y, a, n); }
float softmax(float* x, int64_t n) { return HWY_DYNAMIC_DISPATCH(Softmax)(x, n); }
void attention(const float* q, int64_t n_q, const float* const* k_blocks,
               const float* const* v_blocks, int64_t block_size, int64_t head_dim, int64_t n,
               float scale, float* scores, float* out, int64_t start, float softcap) {
  HWY_DYNAMIC_DISPATCH(Attention)(q, n_q, k_blocks, v_blocks, block_size, head_dim, n, scale,
                                  scores, out, start, softcap);
}

float log_sum_exp(const float* x, int64_t n) { return HWY_DYNAMIC_DISPATCH(LogSumExp)(x, n); }
int64_t argmax(const float* x, int64_t n) { return HWY_DYNAMIC_DISPATCH(ArgMax)(x, n); }

void attention_f16(const float* q, int64_t n_q, const uint16_t* const* k_blocks,
                   const uint16_t* const* v_blocks, int64_t block_size, int64_t head_dim,
                   int64_t n, float scale, float* scores, float* out, int64_t start,
                   float softcap) {
  HWY_DYNAMIC_DISPATCH(AttentionF16)(q, n_q, k_blocks, v_blocks, block_size, head_dim, n, scale,
                                     scores, out, start, softcap);
}

void f32_to_f16_row(const float* x, uint16_t* out, int64_t n) {
  HWY_DYNAMIC_DISPATCH(F32ToF16)(x, out, n);
}

// Per head vector of 64-128 elements, next to the matmuls; the scalar loop is fast enough.
void rope(float* x, int64_t head_dim, int64_t pos, const float* inv_freq, RopeStyle style) {
  rope_ref(x, head_dim, pos, inv_freq, style);
}

const char* simd_target_name() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

}  // namespace frugal::kernels
#endif  // HWY_ONCE
