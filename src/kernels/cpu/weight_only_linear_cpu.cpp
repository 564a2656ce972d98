// Group-wise weight-only Linear (weight_only_kernels.h), one copy per instruction set. Made for
// few rows (decoding, small batches), where the time is reading the packed weight: each weight row
// is unpacked once per tile of input rows, 32 values at a time, and multiplied with every row of
// the tile while it sits in registers. Products are summed per group in float32, scaled by the
// group's scale once per group; the zero point is applied through the group's sum of x.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <vector>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "kernel_namespace.h"
#include "tq/kernels/weight_only_kernels.h"

namespace tq::kernels::TQ_KERNEL_NS {
namespace {

constexpr int kBlock = 32;  // values unpacked at once (16 bytes at 4 bits)

#if defined(__AVX512F__) && defined(__AVX512BW__)
using Vec = __m512;
constexpr int kWidth = 16;
constexpr int kMaxTile = 8;  // rows per tile: 8 x 2 accumulators + 2 weights + 8 totals of 32 registers
inline Vec zero() { return _mm512_setzero_ps(); }
inline Vec load(const float* p) { return _mm512_loadu_ps(p); }
inline Vec broadcast(float v) { return _mm512_set1_ps(v); }
inline Vec fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
inline float horizontal_sum(Vec v) { return _mm512_reduce_add_ps(v); }
inline void unpack(const uint8_t* p, int bits, Vec* out) {
  if (bits == 4) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i mask = _mm_set1_epi8(0x0F);
    out[0] = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(b, mask)));
    out[1] = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(b, 4), mask)));
  } else {
    out[0] = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
    out[1] = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16))));
  }
}
#elif defined(__AVX2__)
using Vec = __m256;
constexpr int kWidth = 8;
constexpr int kMaxTile = 2;  // 2 rows x 4 accumulators + 4 weights + 2 totals of 16 registers
inline Vec zero() { return _mm256_setzero_ps(); }
inline Vec load(const float* p) { return _mm256_loadu_ps(p); }
inline Vec broadcast(float v) { return _mm256_set1_ps(v); }
inline Vec fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline Vec add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
inline float horizontal_sum(Vec v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline Vec widen(__m128i bytes) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)); }
inline void unpack(const uint8_t* p, int bits, Vec* out) {
  __m128i first, second;
  if (bits == 4) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i mask = _mm_set1_epi8(0x0F);
    first = _mm_and_si128(b, mask);
    second = _mm_and_si128(_mm_srli_epi16(b, 4), mask);
  } else {
    first = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    second = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16));
  }
  out[0] = widen(first);
  out[1] = widen(_mm_srli_si128(first, 8));
  out[2] = widen(second);
  out[3] = widen(_mm_srli_si128(second, 8));
}
#else
// Portable: GCC vector extensions, 4 floats (one SSE register on x86, one NEON on aarch64).
typedef float Vec __attribute__((vector_size(16)));
constexpr int kWidth = 4;
constexpr int kMaxTile = 2;
inline Vec zero() { return Vec{}; }
inline Vec load(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline Vec broadcast(float v) { return Vec{} + v; }
inline Vec fma(Vec a, Vec b, Vec c) { return a * b + c; }
inline Vec add(Vec a, Vec b) { return a + b; }
inline float horizontal_sum(Vec v) {
  float s = 0.0f;
  for (int i = 0; i < kWidth; ++i) s += v[i];
  return s;
}
inline void unpack(const uint8_t* p, int bits, Vec* out) {
  float values[kBlock];
  for (int i = 0; i < kBlock; ++i) {
    values[i] = bits == 4 ? static_cast<float>(i < 16 ? (p[i] & 0x0F) : (p[i - 16] >> 4)) : static_cast<float>(p[i]);
  }
  std::memcpy(out, values, sizeof(values));
}
#endif

constexpr int kVecs = kBlock / kWidth;
constexpr int64_t kPrefetchBytes = 1024;

// One output channel n for `Tile` input rows starting at x: y[m * ldy] for m < Tile.
template <int Tile>
void channel_times_rows(const float* x, int64_t ldx, const float* x_group_sums, int64_t groups,
                        const GroupwiseWeightView& w, int64_t n, float bias, float* y, int64_t ldy) {
  const int64_t row_bytes = w.in_features * w.bits / 8;
  const int64_t block_bytes = kBlock * w.bits / 8;
  const uint8_t* q = w.packed + n * row_bytes;
  Vec total[Tile];
  float correction[Tile];
  for (int m = 0; m < Tile; ++m) {
    total[m] = zero();
    correction[m] = 0.0f;
  }
  // Independent accumulator chains hide the multiply-add's latency when the tile has few rows
  // (about 8 accumulator registers, so that weights and totals fit beside them).
  constexpr int kChains = Tile * kVecs >= 8 ? 1 : 8 / (Tile * kVecs);
  for (int64_t g = 0; g < groups; ++g) {
    Vec acc[Tile][kChains][kVecs];
    for (int m = 0; m < Tile; ++m) {
      for (int c = 0; c < kChains; ++c) {
        for (int v = 0; v < kVecs; ++v) acc[m][c][v] = zero();
      }
    }
    const int64_t end = (g + 1) * w.group_size;
    int64_t k = g * w.group_size;
    for (; k + kChains * kBlock <= end; k += kChains * kBlock) {
      // The hardware prefetcher alone leaves a weight stream well below the memory's bandwidth.
      if (kPrefetchBytes > 0) __builtin_prefetch(q + (k / kBlock) * block_bytes + kPrefetchBytes);
      for (int c = 0; c < kChains; ++c) {
        Vec wv[kVecs];
        unpack(q + (k / kBlock + c) * block_bytes, w.bits, wv);
        for (int m = 0; m < Tile; ++m) {
          const float* xk = x + m * ldx + k + c * kBlock;
          for (int v = 0; v < kVecs; ++v) acc[m][c][v] = fma(load(xk + v * kWidth), wv[v], acc[m][c][v]);
        }
      }
    }
    for (; k < end; k += kBlock) {
      Vec wv[kVecs];
      unpack(q + (k / kBlock) * block_bytes, w.bits, wv);
      for (int m = 0; m < Tile; ++m) {
        for (int v = 0; v < kVecs; ++v) acc[m][0][v] = fma(load(x + m * ldx + k + v * kWidth), wv[v], acc[m][0][v]);
      }
    }
    const float scale = w.scales[n * groups + g];
    const float scaled_zero_point = scale * w.zero_points[n * groups + g];
    for (int m = 0; m < Tile; ++m) {
      Vec sum = acc[m][0][0];
      for (int c = 0; c < kChains; ++c) {
        for (int v = c == 0 ? 1 : 0; v < kVecs; ++v) sum = add(sum, acc[m][c][v]);
      }
      total[m] = fma(broadcast(scale), sum, total[m]);
      correction[m] += scaled_zero_point * x_group_sums[m * groups + g];
    }
  }
  for (int m = 0; m < Tile; ++m) y[m * ldy] = horizontal_sum(total[m]) - correction[m] + bias;
}

template <int Tile>
void channel_times_tiles(const float* x, int64_t rows, const float* x_group_sums, int64_t groups,
                         const GroupwiseWeightView& w, int64_t n, float bias, float* y) {
  int64_t m = 0;
  for (; m + Tile <= rows; m += Tile) {
    channel_times_rows<Tile>(x + m * w.in_features, w.in_features, x_group_sums + m * groups, groups, w, n, bias,
                             y + m * w.out_features + n, w.out_features);
  }
  for (; m < rows; ++m) {
    channel_times_rows<1>(x + m * w.in_features, w.in_features, x_group_sums + m * groups, groups, w, n, bias,
                          y + m * w.out_features + n, w.out_features);
  }
}

}  // namespace

void linear_weight_only(const float* x, int64_t rows, const GroupwiseWeightView& w, const float* bias, float* y) {
  const int64_t groups = w.in_features / w.group_size;
  std::vector<float> x_group_sums(static_cast<size_t>(rows * groups));
  for (int64_t m = 0; m < rows; ++m) {
    for (int64_t g = 0; g < groups; ++g) {
      const float* p = x + m * w.in_features + g * w.group_size;
      float s = 0.0f;
      for (int64_t k = 0; k < w.group_size; ++k) s += p[k];
      x_group_sums[m * groups + g] = s;
    }
  }
  // Enough channels per task that a task reads at least ~64 KB of weights.
  const int64_t grain = std::max<int64_t>(1, (64 * 1024 * 8) / (w.in_features * w.bits));
  at::parallel_for(0, w.out_features, grain, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      channel_times_tiles<kMaxTile>(x, rows, x_group_sums.data(), groups, w, n, bias != nullptr ? bias[n] : 0.0f, y);
    }
  });
}

}  // namespace tq::kernels::TQ_KERNEL_NS
