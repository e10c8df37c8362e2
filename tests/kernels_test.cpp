// Kernels: every SIMD op against its scalar reference, on odd sizes and every compiled target.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "hwy/highway.h"
#include "hwy/targets.h"
#include "kernels/ops.h"
#include "kernels/ops_ref.h"
#include "util/thread_pool.h"

namespace frugal::kernels {
namespace {

constexpr GgmlType kWeightTypes[] = {
    GgmlType::kF32,  GgmlType::kF16,  GgmlType::kBF16, GgmlType::kQ8_0, GgmlType::kQ4_0,
    GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kIQ4_NL, GgmlType::kQ2_K,
    GgmlType::kQ3_K, GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K};

std::vector<float> random_floats(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& f : v) f = dist(rng);
  return v;
}

// A weight matrix [n_rows, n_cols] of `type` made by quantizing random floats.
struct TestMatrix {
  std::vector<uint8_t> bytes;
  WeightView view;
  TestMatrix(GgmlType type, int64_t n_rows, int64_t n_cols, uint32_t seed) {
    const int64_t rb = ggml_row_bytes(type, n_cols);
    bytes.resize(static_cast<size_t>(rb * n_rows));
    const std::vector<float> f = random_floats(n_rows * n_cols, seed);
    for (int64_t r = 0; r < n_rows; ++r)
      quantize_row(type, f.data() + r * n_cols, bytes.data() + r * rb, n_cols);
    view = WeightView{bytes.data(), type, n_rows, n_cols};
  }
};

// Sum over k of |w[r, k] * x[t, k]|: the scale of rounding error a dot product may carry.
std::vector<double> abs_sums(const WeightView& w, const float* x, int64_t n_tokens) {
  std::vector<double> out(static_cast<size_t>(n_tokens * w.n_rows));
  std::vector<float> row(static_cast<size_t>(w.n_cols));
  for (int64_t r = 0; r < w.n_rows; ++r) {
    dequantize_row(w.type, static_cast<const uint8_t*>(w.data) + r * w.row_bytes(), row.data(),
                   w.n_cols);
    for (int64_t t = 0; t < n_tokens; ++t) {
      double s = 0.0;
      for (int64_t c = 0; c < w.n_cols; ++c) s += std::fabs(double{row[c]} * x[t * w.n_cols + c]);
      out[t * w.n_rows + r] = s;
    }
  }
  return out;
}

// Runs body once per SIMD target compiled in and supported by this CPU.
template <class F>
void for_each_target(F body) {
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    EXPECT_STREQ(simd_target_name(), hwy::TargetName(target));
    body();
  }
  hwy::SetSupportedTargetsForTest(0);
}

TEST(Matmul, MatchesReferenceOnOddShapesForEveryTypeAndTarget) {
  // Row lengths of one block, a few blocks, and many (odd counts); for K-quants in blocks of 256.
  const int64_t cols[] = {32, 96, 4128};
  const int64_t cols_k[] = {256, 768, 4352};
  const int64_t rows[] = {1, 3, 17, 33};
  const int64_t tokens[] = {1, 2, 5, 17};
  ThreadPool pool(2);
  for (GgmlType type : kWeightTypes) {
    SCOPED_TRACE(ggml_type_info(type)->name);
    const bool k_quant = ggml_type_info(type)->block_size == 256;
    for (int64_t n_cols : k_quant ? cols_k : cols) {
      for (int64_t n_rows : rows) {
        if (n_cols > 4096 && n_rows == 33) continue;  // keeps the test fast; 17 rows cover it
        const TestMatrix m(type, n_rows, n_cols, static_cast<uint32_t>(n_rows * 131 + n_cols));
        for (int64_t n_tokens : tokens) {
          SCOPED_TRACE(std::to_string(n_rows) + "x" + std::to_string(n_cols) + " tokens " +
                       std::to_string(n_tokens));
          const std::vector<float> x = random_floats(n_tokens * n_cols, 7, 2.0f);
          std::vector<float> want(static_cast<size_t>(n_tokens * n_rows));
          matmul_ref(m.view, x.data(), n_tokens, want.data());
          const std::vector<double> mag = abs_sums(m.view, x.data(), n_tokens);
          for_each_target([&] {
            for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
              std::vector<float> got(want.size(), NAN);
              matmul(m.view, x.data(), n_tokens, got.data(), p);
              for (size_t i = 0; i < want.size(); ++i)
                ASSERT_NEAR(got[i], want[i], 1e-4 * mag[i] + 1e-6) << "output " << i;
            }
          });
        }
      }
    }
  }
}

TEST(Matmul, ThreadCountDoesNotChangeResults) {
  ThreadPool pool1(1), pool2(2), pool3(3);
  for (GgmlType type : kWeightTypes) {
    SCOPED_TRACE(ggml_type_info(type)->name);
    const TestMatrix m(type, 67, 256, 11);
    const int64_t n_tokens = 17;
    const std::vector<float> x = random_floats(n_tokens * 256, 3);
    std::vector<float> y0(static_cast<size_t>(n_tokens * 67));
    matmul(m.view, x.data(), n_tokens, y0.data(), nullptr);
    for (ThreadPool* p : {&pool1, &pool2, &pool3}) {
      std::vector<float> y(y0.size(), NAN);
      matmul(m.view, x.data(), n_tokens, y.data(), p);
      for (size_t i = 0; i < y.size(); ++i)
        ASSERT_EQ(y[i], y0[i]) << p->n_threads() << " threads, output " << i;
    }
  }
}

// w copied into this target's interleaved layout (interleave_rows), backed by `bytes`.
WeightView interleaved_copy(const WeightView& w, int group, std::vector<uint8_t>& bytes) {
  bytes.assign(static_cast<size_t>(interleaved_bytes(w, group)), 0);
  interleave_rows(w, group, bytes.data());
  WeightView iv = w;
  iv.data = bytes.data();
  iv.interleaved = true;
  return iv;
}

TEST(Matmul, InterleavedWeightsGiveTheFileLayoutsResults) {
  // Model::load interleaves Q4_K / Q5_K / Q8_0 matrices for the SIMD tile, and Q4_0, Q5_0 and
  // Q6_K on AVX-512 VNNI. Where the interleaved tile is the file layout's (Q5_K, Q8_0, Q4_K
  // off VNNI) every output must be the same bits; the 16-row VNNI tiles of Q4_K, Q6_K, Q4_0
  // and Q5_0 sum each row in one lane instead of four, so they must match the reference as
  // every kernel does. For row counts that are not whole groups, any token count, and 1-3
  // threads.
  ThreadPool pool2(2), pool3(3);
  int interleaving_targets = 0;
  std::map<GgmlType, int> own_tile_targets;
  for (GgmlType type : {GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K, GgmlType::kQ8_0,
                        GgmlType::kQ4_0, GgmlType::kQ5_0}) {
    SCOPED_TRACE(ggml_type_info(type)->name);
    for (int64_t n_rows : {1, 3, 5, 18, 67}) {
      for (int64_t n_cols : {256, 768}) {
        const TestMatrix m(type, n_rows, n_cols, static_cast<uint32_t>(n_rows * 7 + n_cols));
        for_each_target([&] {
          const int group = interleave_group(type);
          if (group == 0) return;
          ++interleaving_targets;
          const bool own_tile = type != GgmlType::kQ5_K && type != GgmlType::kQ8_0 && group == 16;
          own_tile_targets[type] += own_tile;
          std::vector<uint8_t> packed;
          const WeightView iv = interleaved_copy(m.view, group, packed);
          for (int64_t n_tokens : {1, 2, 4, 5, 16, 17, 70}) {
            SCOPED_TRACE(std::to_string(n_rows) + "x" + std::to_string(n_cols) + " tokens " +
                         std::to_string(n_tokens));
            const std::vector<float> x = random_floats(n_tokens * n_cols, 5, 2.0f);
            std::vector<float> ref(static_cast<size_t>(n_tokens * n_rows));
            matmul_ref(m.view, x.data(), n_tokens, ref.data());
            const std::vector<double> mag = abs_sums(m.view, x.data(), n_tokens);
            for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool2, &pool3}) {
              std::vector<float> want(ref.size(), NAN), got(ref.size(), NAN);
              matmul(m.view, x.data(), n_tokens, want.data(), p);
              matmul(iv, x.data(), n_tokens, got.data(), p);
              for (size_t i = 0; i < want.size(); ++i) {
                if (own_tile) {
                  ASSERT_NEAR(got[i], ref[i], 1e-4 * mag[i] + 1e-6) << "output " << i;
                } else {
                  ASSERT_EQ(got[i], want[i]) << "output " << i;
                }
              }
            }
          }
        });
      }
    }
  }
#if HWY_ARCH_X86
  EXPECT_GT(interleaving_targets, 0) << "no target here reads interleaved weights";
#endif
#if !defined(__clang__)  // the VNNI tiles are built by GCC only (matmul-inl.h)
  if (hwy::SupportedTargets() & HWY_AVX3_DL) {
    for (GgmlType type : {GgmlType::kQ4_K, GgmlType::kQ6_K, GgmlType::kQ4_0, GgmlType::kQ5_0})
      EXPECT_GT(own_tile_targets[type], 0)
          << "AVX3_DL runs but its " << ggml_type_info(type)->name << " tile was not tested";
  }
#endif
}

TEST(Matmul, EachTokenRowIsTheSameWhateverElseIsInTheBatch) {
  // The scheduler and speculative decoding rely on this: a token's outputs are bitwise those
  // of the token alone, whatever tile sizes the batch makes (1 .. 40 tokens, row tails), in
  // the file's layout and in the interleaved one where the target has it.
  ThreadPool pool(2);
  for (GgmlType type : kWeightTypes) {
    SCOPED_TRACE(ggml_type_info(type)->name);
    const int64_t n_cols = ggml_type_info(type)->block_size == 256 ? 512 : 96;
    const TestMatrix m(type, 37, n_cols, 5);
    const std::vector<float> x = random_floats(40 * n_cols, 21);
    for_each_target([&] {
      std::vector<uint8_t> packed;
      std::vector<WeightView> views = {m.view};
      if (const int group = interleave_group(type); group > 0)
        views.push_back(interleaved_copy(m.view, group, packed));
      for (const WeightView& v : views) {
        SCOPED_TRACE(v.interleaved ? "interleaved" : "file layout");
        std::vector<float> alone(static_cast<size_t>(40 * 37));
        for (int64_t t = 0; t < 40; ++t)
          matmul(v, x.data() + t * n_cols, 1, alone.data() + t * 37, nullptr);
        for (int64_t n_tokens : {2, 5, 16, 17, 40}) {
          std::vector<float> got(static_cast<size_t>(n_tokens * 37), NAN);
          matmul(v, x.data(), n_tokens, got.data(), &pool);
          for (size_t i = 0; i < got.size(); ++i)
            ASSERT_EQ(got[i], alone[i]) << n_tokens << " tokens, output " << i;
        }
      }
    });
  }
}

TEST(Matmul, QuantizedOutputTracksFloatProduct) {
  // The error that 8-bit (4-bit) weights add, as a fraction of the output's RMS, stays near
  // what the step sizes predict: about 1% for Q8_0 and 10% for Q4_0 on Gaussian data.
  const int64_t n_rows = 64, n_cols = 512;
  const std::vector<float> x = random_floats(n_cols, 6);
  const TestMatrix f32(GgmlType::kF32, n_rows, n_cols, 5);
  std::vector<float> exact(n_rows);
  matmul(f32.view, x.data(), 1, exact.data(), nullptr);
  for (GgmlType type : {GgmlType::kQ8_0, GgmlType::kQ4_0}) {
    const TestMatrix q(type, n_rows, n_cols, 5);
    std::vector<float> y(n_rows);
    matmul(q.view, x.data(), 1, y.data(), nullptr);
    double err2 = 0, ref2 = 0;
    for (int64_t r = 0; r < n_rows; ++r) {
      err2 += (y[r] - exact[r]) * (y[r] - exact[r]);
      ref2 += exact[r] * exact[r];
    }
    const double rel = std::sqrt(err2 / ref2);
    EXPECT_LT(rel, type == GgmlType::kQ8_0 ? 0.02 : 0.2) << ggml_type_info(type)->name;
    EXPECT_GT(rel, 0.0);
    std::printf("%s relative RMS error %.4f\n", ggml_type_info(type)->name, rel);
  }
}

TEST(Matmul, QuantizedKernelsComputeTheDequantizedProduct) {
  // A quantized matmul multiplies the stored weights (as dequantize_row reads them) by the
  // activations rounded to 8 bits: per element |Δx| <= step / 2, step = amax(x block) / 127
  // (blocks of 32, or 256 for K-quants), so |y - W·x| <= Σ_k |w_k| step_k / 2 (+ float
  // rounding). This ties each kernel's reading of the block layout to the dequantizer's.
  const int64_t n_rows = 9, n_cols = 512, n_tokens = 3;
  const std::vector<float> x = random_floats(n_tokens * n_cols, 21, 1.5f);
  for (GgmlType type : kWeightTypes) {
    const GgmlTypeInfo* info = ggml_type_info(type);
    if (info->block_size == 1 || type == GgmlType::kF32) continue;
    SCOPED_TRACE(info->name);
    const TestMatrix m(type, n_rows, n_cols, 17);
    std::vector<float> y(n_tokens * n_rows), want(n_tokens * n_rows);
    matmul(m.view, x.data(), n_tokens, y.data(), nullptr);
    matmul_ref(m.view, x.data(), n_tokens, want.data());
    const int64_t act_block = info->block_size == 256 ? 256 : 32;
    std::vector<float> row(n_cols);
    for (int64_t r = 0; r < n_rows; ++r) {
      dequantize_row(type, m.bytes.data() + r * m.view.row_bytes(), row.data(), n_cols);
      for (int64_t t = 0; t < n_tokens; ++t) {
        const float* xt = x.data() + t * n_cols;
        double exact = 0, bound = 0;
        for (int64_t b = 0; b < n_cols / act_block; ++b) {
          float amax = 0;
          for (int64_t k = 0; k < act_block; ++k) amax = std::max(amax, std::fabs(xt[b * act_block + k]));
          for (int64_t k = b * act_block; k < (b + 1) * act_block; ++k) {
            exact += double{row[k]} * xt[k];
            bound += std::fabs(row[k]) * amax / 127 / 2;
          }
        }
        ASSERT_NEAR(y[t * n_rows + r], exact, bound * 1.001 + 1e-4) << "row " << r;
        ASSERT_NEAR(want[t * n_rows + r], exact, bound * 1.001 + 1e-4) << "reference, row " << r;
      }
    }
  }
}

TEST(SmallOps, MatchReferenceOnOddSizes) {
  for (int64_t n : {1, 7, 16, 33, 1000}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    const std::vector<float> a = random_floats(n, 1), b = random_floats(n, 2, 3.0f);
    const std::vector<float> w = random_floats(n, 3);
    for_each_target([&] {
      EXPECT_NEAR(dot(a.data(), b.data(), n), dot_ref(a.data(), b.data(), n), 1e-4 * n);

      std::vector<float> y1 = b, y2 = b;
      axpy(0.75f, a.data(), y1.data(), n);
      axpy_ref(0.75f, a.data(), y2.data(), n);
      for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(y1[i], y2[i], 1e-5f);

      y1 = b, y2 = b;
      scale(y1.data(), -1.5f, n);
      scale_ref(y2.data(), -1.5f, n);
      for (int64_t i = 0; i < n; ++i) ASSERT_FLOAT_EQ(y1[i], y2[i]);

      y1 = b, y2 = b;
      add_inplace(y1.data(), a.data(), n);
      add_inplace_ref(y2.data(), a.data(), n);
      for (int64_t i = 0; i < n; ++i) ASSERT_FLOAT_EQ(y1[i], y2[i]);

      std::vector<float> o1(n), o2(n);
      rms_norm(b.data(), w.data(), 1e-5f, n, o1.data());
      rms_norm_ref(b.data(), w.data(), 1e-5f, n, o2.data());
      for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(o1[i], o2[i], 1e-4f * (1 + std::fabs(o2[i])));
      y1 = b;  // in place (out aliases x)
      rms_norm(y1.data(), w.data(), 1e-5f, n, y1.data());
      for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(y1[i], o2[i], 1e-4f * (1 + std::fabs(o2[i])));

      silu_mul(b.data(), a.data(), n, o1.data());
      silu_mul_ref(b.data(), a.data(), n, o2.data());
      for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(o1[i], o2[i], 1e-5f * (1 + std::fabs(o2[i])));

      y1 = b, y2 = b;
      const float s1 = softmax(y1.data(), n);
      const float s2 = softmax_ref(y2.data(), n);
      EXPECT_NEAR(s1, s2, 1e-5f * s2);
      double total = 0;
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_NEAR(y1[i], y2[i], 1e-6f);
        total += y1[i];
      }
      EXPECT_NEAR(total, 1.0, 1e-5);
    });
  }
}

TEST(LogSumExp, MatchesTheDoublePrecisionReference) {
  for (int64_t n : {1, 7, 16, 33, 32000, 151936}) {
    std::vector<float> x = random_floats(n, 11, 4.0f);
    x[n / 2] = 30.0f;  // a dominant logit
    const float ref = log_sum_exp_ref(x.data(), n);
    for_each_target([&] {
      EXPECT_NEAR(log_sum_exp(x.data(), n), ref, 2e-5f * std::max(1.0f, std::fabs(ref))) << n;
    });
  }
  EXPECT_EQ(log_sum_exp(nullptr, 0), -std::numeric_limits<float>::infinity());
}

// Greedy decoding picks kernels::argmax of every logits row: it must pick what the scalar
// loop picks, ties to the first, whatever NaN or infinity a broken model writes.
TEST(ArgMax, PicksWhatTheScalarLoopPicks) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t n : {1, 2, 7, 15, 16, 17, 33, 100, 32000, 151936}) {
    std::vector<float> x = random_floats(n, 5 + n, 4.0f);
    std::vector<std::vector<float>> cases = {x};
    for (int64_t at : {int64_t{0}, n / 3, n - 1}) {
      std::vector<float> tie = x;  // the same largest value twice: the first wins
      tie[at] = 9.0f;
      tie[n - 1 - (at == n - 1 ? n / 2 : 0)] = 9.0f;
      cases.push_back(tie);
      std::vector<float> with_nan = x;
      with_nan[at] = nan;
      cases.push_back(with_nan);
      std::vector<float> with_inf = x;
      with_inf[at] = inf;
      cases.push_back(with_inf);
    }
    cases.push_back(std::vector<float>(n, -inf));
    cases.push_back(std::vector<float>(n, nan));
    std::vector<float> nan_but_one(n, nan);
    nan_but_one[n - 1] = -3.0f;
    cases.push_back(nan_but_one);
    for (const auto& c : cases) {
      const int64_t want = argmax_ref(c.data(), n);
      for_each_target([&] { EXPECT_EQ(argmax(c.data(), n), want) << "n=" << n; });
    }
  }
  EXPECT_EQ(argmax(nullptr, 0), 0);
}

// An F16 cache's key blocks as attention_f16 reads them: each block of rows [bs, head_dim]
// transposed to [head_dim, bs].
std::vector<uint16_t> transposed_keys(const std::vector<uint16_t>& rows, int64_t bs,
                                      int64_t head_dim) {
  std::vector<uint16_t> kt(rows.size());
  const int64_t n_blocks = static_cast<int64_t>(rows.size()) / (bs * head_dim);
  for (int64_t b = 0; b < n_blocks; ++b)
    for (int64_t j = 0; j < bs; ++j)
      for (int64_t d = 0; d < head_dim; ++d)
        kt[b * bs * head_dim + d * bs + j] = rows[(b * bs + j) * head_dim + d];
  return kt;
}

TEST(Attention, F16CacheMatchesReferenceAndStaysCloseToF32) {
  // Block sizes that are and are not a multiple of the vector length (the kernel scores a
  // block's slots a vector at a time, the rest one by one).
  for (int64_t bs : {16, 4, 24}) {
  for (int64_t head_dim : {8, 64, 72}) {
    for (int64_t n : {1, 17, 37}) {
      // 2, 3 and 6 query heads per KV head: the SIMD kernel takes up to four at once.
      const int64_t n_q = n == 1 ? 2 : n == 17 ? 3 : 6, n_blocks = (n + bs - 1) / bs;
      SCOPED_TRACE("bs=" + std::to_string(bs) + " head_dim=" + std::to_string(head_dim) +
                   " n=" + std::to_string(n) + " n_q=" + std::to_string(n_q));
      const std::vector<float> k32 = random_floats(n_blocks * bs * head_dim, 7);
      const std::vector<float> v32 = random_floats(n_blocks * bs * head_dim, 8);
      const std::vector<float> q = random_floats(n_q * head_dim, 9);
      std::vector<uint16_t> k16(k32.size()), v16(v32.size());
      for_each_target([&] {
        // The SIMD conversion rounds exactly as the scalar one, ties included.
        f32_to_f16_row(k32.data(), k16.data(), static_cast<int64_t>(k32.size()));
        for (size_t i = 0; i < k32.size(); ++i) ASSERT_EQ(k16[i], fp32_to_fp16(k32[i])) << i;
      });
      for (size_t i = 0; i < v32.size(); ++i) v16[i] = fp32_to_fp16(v32[i]);
      const std::vector<uint16_t> kt = transposed_keys(k16, bs, head_dim);
      std::vector<const uint16_t*> kb, vb;
      std::vector<const float*> kb32, vb32;
      for (int64_t b = 0; b < n_blocks; ++b) {
        kb.push_back(kt.data() + b * bs * head_dim);
        vb.push_back(v16.data() + b * bs * head_dim);
        kb32.push_back(k32.data() + b * bs * head_dim);
        vb32.push_back(v32.data() + b * bs * head_dim);
      }
      const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
      std::vector<float> s(n_q * n), ref(n_q * head_dim), got(n_q * head_dim), f32(n_q * head_dim);
      attention_f16_ref(q.data(), n_q, kb.data(), vb.data(), bs, head_dim, n, scale, s.data(),
                        ref.data());
      attention_ref(q.data(), n_q, kb32.data(), vb32.data(), bs, head_dim, n, scale, s.data(),
                    f32.data());
      for_each_target([&] {
        attention_f16(q.data(), n_q, kb.data(), vb.data(), bs, head_dim, n, scale, s.data(),
                      got.data());
        for (int64_t i = 0; i < n_q * head_dim; ++i) ASSERT_NEAR(got[i], ref[i], 1e-5f);
      });
      // Half precision keeps 11 significant bits: values in [-1, 1] move by at most 2^-11.
      for (int64_t i = 0; i < n_q * head_dim; ++i) EXPECT_NEAR(ref[i], f32[i], 4e-3f);
    }
  }
  }
}

TEST(Attention, MatchesReferenceOverPagedBlocks) {
  // Blocks deliberately out of order in memory, as a block table leaves them; n_q query heads
  // share the KV head.
  for (int64_t head_dim : {8, 64, 72}) {
    for (int64_t n : {1, 5, 16, 37}) {
      for (int64_t n_q : {1, 4}) {
        SCOPED_TRACE("head_dim=" + std::to_string(head_dim) + " n=" + std::to_string(n) +
                     " n_q=" + std::to_string(n_q));
        const int64_t bs = 16, n_blocks = (n + bs - 1) / bs;
        const std::vector<float> pool_k = random_floats(n_blocks * bs * head_dim, 4);
        const std::vector<float> pool_v = random_floats(n_blocks * bs * head_dim, 5);
        const std::vector<float> q = random_floats(n_q * head_dim, 6);
        std::vector<const float*> kb, vb;
        for (int64_t b = 0; b < n_blocks; ++b) {
          const int64_t slot = n_blocks - 1 - b;
          kb.push_back(pool_k.data() + slot * bs * head_dim);
          vb.push_back(pool_v.data() + slot * bs * head_dim);
        }
        const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
        std::vector<float> s1(n_q * n), s2(n_q * n), o1(n_q * head_dim), o2(n_q * head_dim);
        attention_ref(q.data(), n_q, kb.data(), vb.data(), bs, head_dim, n, scale, s2.data(),
                      o2.data());
        for_each_target([&] {
          attention(q.data(), n_q, kb.data(), vb.data(), bs, head_dim, n, scale, s1.data(),
                    o1.data());
          for (int64_t i = 0; i < n_q * head_dim; ++i) ASSERT_NEAR(o1[i], o2[i], 1e-5f);
        });
        // Direct definition for the last query head: out = sum_j softmax_j * v_j.
        const int64_t g = n_q - 1;
        std::vector<double> w(n), direct(head_dim, 0.0);
        double z = 0.0;
        for (int64_t j = 0; j < n; ++j) {
          double d = 0.0;
          for (int64_t i = 0; i < head_dim; ++i)
            d += q[g * head_dim + i] * kb[j / bs][(j % bs) * head_dim + i];
          w[j] = std::exp(d * scale);
          z += w[j];
        }
        for (int64_t j = 0; j < n; ++j)
          for (int64_t i = 0; i < head_dim; ++i)
            direct[i] += w[j] / z * vb[j / bs][(j % bs) * head_dim + i];
        for (int64_t i = 0; i < head_dim; ++i) ASSERT_NEAR(o2[g * head_dim + i], direct[i], 1e-5);
      }
    }
  }
}

// Each output of an element-wise op must be the same bits wherever the element sits in the
// array (body or tail of the vector loop): a token's row may land anywhere in a batch.
// op(offset, m, out) computes the outputs of elements offset .. offset + m - 1 into out.
template <class Op>
void expect_position_independent(Op op, int64_t n) {
  std::vector<float> whole(n);
  op(0, n, whole.data());
  for (int64_t offset : {1, 3, 5, 13}) {
    if (offset >= n) continue;
    std::vector<float> part(n - offset);
    op(offset, n - offset, part.data());
    for (int64_t i = 0; i < n - offset; ++i)
      ASSERT_EQ(part[i], whole[offset + i]) << "offset " << offset << " element " << i;
  }
}

TEST(GeluMul, MatchesReferenceAndKnownValuesAtEveryPosition) {
  for (int64_t n : {1, 7, 16, 33, 1000}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    const std::vector<float> g = random_floats(n, 4, 3.0f), u = random_floats(n, 5);
    std::vector<float> want(n), got(n);
    gelu_mul_ref(g.data(), u.data(), n, want.data());
    for_each_target([&] {
      gelu_mul(g.data(), u.data(), n, got.data());
      for (int64_t i = 0; i < n; ++i)
        ASSERT_NEAR(got[i], want[i], 2e-6f * (1 + std::fabs(want[i]))) << i;
      expect_position_independent(
          [&](int64_t offset, int64_t m, float* out) {
            std::copy(g.begin() + offset, g.begin() + offset + m, out);
            gelu_mul(out, u.data() + offset, m, out);  // in place, as the forward pass calls it
          },
          n);
    });
  }
  // gelu_tanh(x) for x = 1, -1, 3, -3, 0 (x/2 · (1 + tanh(√(2/π)(x + 0.044715 x³)))), and the
  // saturated ends: gelu(x) → x for large x, → 0 for very negative x.
  const std::vector<float> x = {1, -1, 3, -3, 0, 30, -30}, one(7, 1.0f);
  const std::vector<double> expect = {0.8411920, -0.1588080, 2.9963627, -0.0036373, 0, 30, 0};
  for_each_target([&] {
    std::vector<float> y(7);
    gelu_mul(x.data(), one.data(), 7, y.data());
    for (int i = 0; i < 7; ++i) EXPECT_NEAR(y[i], expect[i], 2e-6) << x[i];
  });
}

TEST(SoftCap, MatchesReferenceStaysInsideTheCapAndIsIdentityNearZero) {
  for (int64_t n : {1, 7, 16, 33, 1000}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    const std::vector<float> x = random_floats(n, 6, 40.0f);
    std::vector<float> want = x;
    soft_cap_ref(want.data(), 30.0f, n);
    for_each_target([&] {
      std::vector<float> got = x;
      soft_cap(got.data(), 30.0f, n);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_NEAR(got[i], want[i], 4e-6f * 30.0f) << i;
        ASSERT_LE(std::fabs(got[i]), 30.0f);
      }
      expect_position_independent(
          [&](int64_t offset, int64_t m, float* out) {
            std::copy(x.begin() + offset, x.begin() + offset + m, out);
            soft_cap(out, 30.0f, m);
          },
          n);
    });
  }
  std::vector<float> small = {1e-3f, -2e-3f, 1e4f, -1e4f};
  soft_cap(small.data(), 50.0f, 4);
  EXPECT_NEAR(small[0], 1e-3f, 1e-9f);
  EXPECT_NEAR(small[1], -2e-3f, 1e-9f);
  EXPECT_FLOAT_EQ(small[2], 50.0f);
  EXPECT_FLOAT_EQ(small[3], -50.0f);
}

TEST(Attention, SlidingWindowAndSoftCapFollowTheDefinition) {
  // Positions start .. n-1 only (a sliding window), scores capped as cap · tanh(s / cap);
  // F32 and F16 caches, SIMD against reference and both against the direct formula.
  const int64_t head_dim = 40, n_q = 2, bs = 16, n = 37, n_blocks = 3;
  const std::vector<float> k32 = random_floats(n_blocks * bs * head_dim, 12, 2.0f);
  const std::vector<float> v32 = random_floats(n_blocks * bs * head_dim, 13);
  const std::vector<float> q = random_floats(n_q * head_dim, 14, 2.0f);
  std::vector<uint16_t> k16(k32.size()), v16(v32.size());
  for (size_t i = 0; i < k32.size(); ++i) k16[i] = fp32_to_fp16(k32[i]);
  for (size_t i = 0; i < v32.size(); ++i) v16[i] = fp32_to_fp16(v32[i]);
  const std::vector<uint16_t> kt = transposed_keys(k16, bs, head_dim);
  std::vector<const float*> kb, vb;
  std::vector<const uint16_t*> kh, vh;
  for (int64_t b = 0; b < n_blocks; ++b) {
    kb.push_back(k32.data() + b * bs * head_dim);
    vb.push_back(v32.data() + b * bs * head_dim);
    kh.push_back(kt.data() + b * bs * head_dim);
    vh.push_back(v16.data() + b * bs * head_dim);
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  for (int64_t start : {0, 1, 16, 20, 36}) {
    for (float cap : {0.0f, 2.5f}) {
      SCOPED_TRACE("start=" + std::to_string(start) + " cap=" + std::to_string(cap));
      // The definition, in double, for the F32 cache.
      std::vector<double> direct(n_q * head_dim, 0.0);
      for (int64_t g = 0; g < n_q; ++g) {
        std::vector<double> w;
        double z = 0;
        for (int64_t j = start; j < n; ++j) {
          double d = 0;
          for (int64_t i = 0; i < head_dim; ++i)
            d += double{q[g * head_dim + i]} * k32[j * head_dim + i];
          d *= scale;
          if (cap > 0) d = cap * std::tanh(d / cap);
          w.push_back(std::exp(d));
          z += w.back();
        }
        for (int64_t j = start; j < n; ++j)
          for (int64_t i = 0; i < head_dim; ++i)
            direct[g * head_dim + i] += w[j - start] / z * v32[j * head_dim + i];
      }
      std::vector<float> s(n_q * (n - start)), ref(n_q * head_dim), ref16(n_q * head_dim);
      attention_ref(q.data(), n_q, kb.data(), vb.data(), bs, head_dim, n, scale, s.data(),
                    ref.data(), start, cap);
      attention_f16_ref(q.data(), n_q, kh.data(), vh.data(), bs, head_dim, n, scale, s.data(),
                        ref16.data(), start, cap);
      for (int64_t i = 0; i < n_q * head_dim; ++i) {
        ASSERT_NEAR(ref[i], direct[i], 1e-5) << i;
        ASSERT_NEAR(ref16[i], direct[i], 4e-3) << i;
      }
      for_each_target([&] {
        std::vector<float> got(n_q * head_dim), got16(n_q * head_dim);
        attention(q.data(), n_q, kb.data(), vb.data(), bs, head_dim, n, scale, s.data(),
                  got.data(), start, cap);
        attention_f16(q.data(), n_q, kh.data(), vh.data(), bs, head_dim, n, scale, s.data(),
                      got16.data(), start, cap);
        for (int64_t i = 0; i < n_q * head_dim; ++i) {
          ASSERT_NEAR(got[i], ref[i], 1e-5f) << i;
          ASSERT_NEAR(got16[i], ref16[i], 1e-5f) << i;
        }
      });
      if (start == 36) {  // one position left: its value row, exactly weighted 1
        for (int64_t i = 0; i < head_dim; ++i) EXPECT_NEAR(ref[i], v32[36 * head_dim + i], 1e-6);
      }
    }
  }
}

TEST(Softmax, LargeLogitsDoNotOverflow) {
  std::vector<float> x = {1000.0f, 1000.0f, -1000.0f};
  softmax(x.data(), 3);
  EXPECT_FLOAT_EQ(x[0], 0.5f);
  EXPECT_FLOAT_EQ(x[1], 0.5f);
  EXPECT_EQ(x[2], 0.0f);
}

TEST(Rope, NormalRotatesAdjacentPairsAndNeoxRotatesHalves) {
  const float quarter_turn = static_cast<float>(M_PI / 2);
  const std::vector<float> inv_freq = {quarter_turn, 0.0f};  // pair 0 turns 90° at pos 1
  std::vector<float> x = {1, 2, 3, 4};
  rope(x.data(), 4, 1, inv_freq.data(), RopeStyle::kNormal);
  // (x0, x1) = (1, 2) -> (-2, 1); pair (x2, x3) has frequency 0.
  EXPECT_NEAR(x[0], -2.0f, 1e-6f);
  EXPECT_NEAR(x[1], 1.0f, 1e-6f);
  EXPECT_FLOAT_EQ(x[2], 3.0f);
  EXPECT_FLOAT_EQ(x[3], 4.0f);

  x = {1, 2, 3, 4};
  rope(x.data(), 4, 1, inv_freq.data(), RopeStyle::kNeox);
  // (x0, x2) = (1, 3) -> (-3, 1); (x1, x3) frequency 0.
  EXPECT_NEAR(x[0], -3.0f, 1e-6f);
  EXPECT_FLOAT_EQ(x[1], 2.0f);
  EXPECT_NEAR(x[2], 1.0f, 1e-6f);
  EXPECT_FLOAT_EQ(x[3], 4.0f);

  // Position 0 is the identity; any rotation keeps each pair's length.
  std::vector<float> v = random_floats(64, 9), orig = v;
  std::vector<float> freqs(32);
  for (int i = 0; i < 32; ++i) freqs[i] = std::pow(10000.0f, -2.0f * i / 64);
  rope(v.data(), 64, 0, freqs.data(), RopeStyle::kNormal);
  EXPECT_EQ(v, orig);
  rope(v.data(), 64, 777, freqs.data(), RopeStyle::kNormal);
  for (int i = 0; i < 32; ++i)
    EXPECT_NEAR(std::hypot(v[2 * i], v[2 * i + 1]), std::hypot(orig[2 * i], orig[2 * i + 1]),
                1e-5f);
}

// The forward pass rotates with a per-token table (rope_table + rope_rotate): the same bits
// as rope(), so that taking cos and sin once per token changes no logit.
TEST(Rope, TheTableRotatesExactlyAsRope) {
  for (int64_t hd : {4, 64, 128}) {
    std::vector<float> freqs(hd / 2);
    for (int64_t i = 0; i < hd / 2; ++i) freqs[i] = std::pow(500000.0f, -2.0f * i / hd);
    for (RopeStyle style : {RopeStyle::kNormal, RopeStyle::kNeox}) {
      for (int64_t pos : {0, 1, 17, 4095, 131071}) {
        std::vector<float> a = random_floats(hd, 3 + pos), b = a, cs(hd);
        rope(a.data(), hd, pos, freqs.data(), style);
        rope_table(pos, freqs.data(), hd / 2, cs.data());
        rope_rotate(b.data(), hd, cs.data(), style);
        EXPECT_EQ(a, b) << "head_dim " << hd << " pos " << pos;
      }
    }
  }
}

}  // namespace
}  // namespace frugal::kernels
