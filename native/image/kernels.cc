#include "kernels.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace grimg {
namespace {

constexpr int kPrecisionBits = 22;
constexpr int32_t kHalf = 1 << (kPrecisionBits - 1);
constexpr double kOne = double(1 << kPrecisionBits);

struct Coeffs {
  int ksize = 0;
  std::vector<int32_t> bounds;  // [xmin, count] per output pixel
  std::vector<int32_t> k;       // fixed-point, sum 2^22
};

// PIL precompute_coeffs + normalize_coeffs_8bpc for the bilinear (triangle) filter, positions relative
// to lo; the same double arithmetic as src/data/resample.ts, so the coefficients are identical.
Coeffs precompute(int lo, int hi, double in0, double in1, int out_size) {
  Coeffs c;
  const double scale = (in1 - in0) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = 1.0 * filterscale;
  c.ksize = int(std::ceil(support)) * 2 + 1;
  c.bounds.assign(size_t(out_size) * 2, 0);
  c.k.assign(size_t(out_size) * c.ksize, 0);
  const double ss = 1.0 / filterscale;
  std::vector<double> w(size_t(c.ksize) + 2);
  const double rel0 = in0 - lo;
  const int n = hi - lo;
  for (int xx = 0; xx < out_size; xx++) {
    const double center = rel0 + (xx + 0.5) * scale;
    int xmin = int(std::trunc(center - support + 0.5));
    if (xmin < 0) xmin = 0;
    int xmax = int(std::trunc(center + support + 0.5));
    if (xmax > n) xmax = n;
    xmax -= xmin;
    if (xmax > c.ksize) xmax = c.ksize;
    double ww = 0;
    for (int x = 0; x < xmax; x++) {
      double t = (x + xmin - center + 0.5) * ss;
      if (t < 0) t = -t;
      const double v = t < 1 ? 1 - t : 0;
      w[x] = v;
      ww += v;
    }
    for (int x = 0; x < xmax; x++) {
      const double v = ww != 0 ? w[x] / ww : w[x];
      c.k[size_t(xx) * c.ksize + x] = int32_t(v < 0 ? std::trunc(-0.5 + v * kOne) : std::trunc(0.5 + v * kOne));
    }
    c.bounds[size_t(xx) * 2] = xmin + lo;
    c.bounds[size_t(xx) * 2 + 1] = std::max(0, xmax);
  }
  return c;
}

inline uint8_t clip8(int32_t s) { return uint8_t(s < 0 ? 0 : s > 255 ? 255 : s); }

// JS Math.round: ties toward +infinity.
inline double js_round(double x) {
  const double f = std::floor(x);
  return x - f >= 0.5 ? f + 1 : f;
}

inline uint8_t blend8(double a, double b, double alpha) {
  const double t = a + alpha * (b - a);
  return uint8_t(t <= 0 ? 0 : t >= 255 ? 255 : std::trunc(t));
}

inline uint32_t luma(uint32_t r, uint32_t g, uint32_t b) { return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16; }

void apply_lut(uint8_t* d, size_t n, const uint8_t* lut) {
  for (size_t i = 0; i < n; i++) d[i] = lut[d[i]];
}

void brightness(uint8_t* d, size_t np, double f) {
  uint8_t lut[256];
  for (int v = 0; v < 256; v++) lut[v] = blend8(0, v, f);
  apply_lut(d, np * 3, lut);
}

void contrast(uint8_t* d, size_t np, double f) {
  double sum = 0;
  for (size_t i = 0; i < np * 3; i += 3) sum += luma(d[i], d[i + 1], d[i + 2]);
  const double mean = std::trunc(sum / double(np) + 0.5);
  uint8_t lut[256];
  for (int v = 0; v < 256; v++) lut[v] = blend8(mean, v, f);
  apply_lut(d, np * 3, lut);
}

// The blended value depends only on (luma, channel value): a 256 x 256 table computed with the same
// double arithmetic replaces three multiplies per channel.
void saturation(uint8_t* d, size_t np, double f) {
  thread_local std::vector<uint8_t> table(256 * 256);
  const double g = 1 - f;
  for (int l = 0; l < 256; l++) {
    const double lg = double(l) * g;
    uint8_t* row = table.data() + size_t(l) * 256;
    for (int v = 0; v < 256; v++) {
      const double x = lg + f * double(v);
      row[v] = uint8_t(x <= 0 ? 0 : x >= 255 ? 255 : x);
    }
  }
  for (size_t i = 0; i < np * 3; i += 3) {
    const uint8_t* row = table.data() + size_t(luma(d[i], d[i + 1], d[i + 2])) * 256;
    d[i] = row[d[i]];
    d[i + 1] = row[d[i + 1]];
    d[i + 2] = row[d[i + 2]];
  }
}

void hue(uint8_t* d, size_t np, double h) {
  if (h == 0) return;
  const int shift = int(std::trunc(h * 255));
  for (size_t i = 0; i < np * 3; i += 3) {
    const int r = d[i], g = d[i + 1], b = d[i + 2];
    const int mx = std::max(r, std::max(g, b)), mn = std::min(r, std::min(g, b));
    const double v = mx;
    const int c = mx - mn;
    int hh = 0;
    const double s = mx == 0 ? 0 : js_round(double(c) * 255 / mx);
    if (c != 0) {
      double hf;
      if (mx == r) hf = double(g - b) / c;
      else if (mx == g) hf = 2 + double(b - r) / c;
      else hf = 4 + double(r - g) / c;
      hf = hf / 6;  // in (-1, 1), where fmod(x, 1) == x: the TypeScript `% 1` is a no-op here
      if (hf < 0) hf += 1;
      hh = int(js_round(hf * 255)) & 255;
    }
    hh = (hh + shift + 256) & 255;
    const double hf = (double(hh) / 255) * 6;
    const double sf = s / 255;
    const int k = int(std::floor(hf)) % 6;
    const double fr = hf - std::floor(hf);
    const double p = v * (1 - sf), q = v * (1 - sf * fr), t = v * (1 - sf * (1 - fr));
    double rr, gg, bb;
    switch (k) {
      case 0: rr = v; gg = t; bb = p; break;
      case 1: rr = q; gg = v; bb = p; break;
      case 2: rr = p; gg = v; bb = t; break;
      case 3: rr = p; gg = q; bb = v; break;
      case 4: rr = t; gg = p; bb = v; break;
      default: rr = v; gg = p; bb = q;
    }
    d[i] = uint8_t(js_round(rr));
    d[i + 1] = uint8_t(js_round(gg));
    d[i + 2] = uint8_t(js_round(bb));
  }
}

// Horizontal pass for outputs [x0, x1) of one row, scalar.
inline void horizontal_row(const uint8_t* row, const Coeffs& ch, int x0, int x1, uint8_t* out_row) {
  for (int xx = x0; xx < x1; xx++) {
    const int xmin = ch.bounds[size_t(xx) * 2], n = ch.bounds[size_t(xx) * 2 + 1];
    const int32_t* k = ch.k.data() + size_t(xx) * ch.ksize;
    int32_t s0 = kHalf, s1 = kHalf, s2 = kHalf;
    const uint8_t* p = row + size_t(xmin) * 3;
    for (int x = 0; x < n; x++, p += 3) {
      s0 += p[0] * k[x];
      s1 += p[1] * k[x];
      s2 += p[2] * k[x];
    }
    uint8_t* o = out_row + size_t(xx) * 3;
    o[0] = clip8(s0 >> kPrecisionBits);
    o[1] = clip8(s1 >> kPrecisionBits);
    o[2] = clip8(s2 >> kPrecisionBits);
  }
}

// SIMD levels of this CPU, read once (the kernels are compiled for several and pick at run time).
struct CpuFeatures {
  bool sse41 = false, avx2 = false;
  CpuFeatures() {
#if defined(__x86_64__) || defined(__i386__)
    sse41 = __builtin_cpu_supports("sse4.1");
    avx2 = __builtin_cpu_supports("avx2");
#endif
  }
};
const CpuFeatures& cpu() {
  static const CpuFeatures f;
  return f;
}

// Vertical pass: row-wise accumulation, sequential memory access over each source row. Written so the
// compiler vectorises it; inlined into a baseline and an AVX2 function, picked at run time.
__attribute__((always_inline)) inline void vertical_body(const uint8_t* tmp, size_t row_len, int y_first, const Coeffs& cv, int out_h, int32_t* acc, uint8_t* out) {
  for (int yy = 0; yy < out_h; yy++) {
    const int ymin = cv.bounds[size_t(yy) * 2] - y_first, n = cv.bounds[size_t(yy) * 2 + 1];
    const int32_t* k = cv.k.data() + size_t(yy) * cv.ksize;
    for (size_t xi = 0; xi < row_len; xi++) acc[xi] = kHalf;
    for (int y = 0; y < n; y++) {
      const int32_t c = k[y];
      if (c == 0) continue;
      const uint8_t* r = tmp + size_t(ymin + y) * row_len;
      for (size_t xi = 0; xi < row_len; xi++) acc[xi] += r[xi] * c;
    }
    uint8_t* o = out + size_t(yy) * row_len;
    for (size_t xi = 0; xi < row_len; xi++) o[xi] = clip8(acc[xi] >> kPrecisionBits);
  }
}

void vertical(const uint8_t* tmp, size_t row_len, int y_first, const Coeffs& cv, int out_h, int32_t* acc, uint8_t* out) {
  vertical_body(tmp, row_len, y_first, cv, out_h, acc, out);
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2"))) void vertical_avx2(const uint8_t* tmp, size_t row_len, int y_first, const Coeffs& cv, int out_h, int32_t* acc, uint8_t* out) {
  vertical_body(tmp, row_len, y_first, cv, out_h, acc, out);
}
#else
void vertical_avx2(const uint8_t* tmp, size_t row_len, int y_first, const Coeffs& cv, int out_h, int32_t* acc, uint8_t* out) {
  vertical_body(tmp, row_len, y_first, cv, out_h, acc, out);
}
#endif

#if defined(__x86_64__) || defined(__i386__)
// The same sums with the three channels (and one ignored byte) in the lanes of one vector: the exact
// integer arithmetic of the scalar pass, about three times fewer instructions. A pixel whose 4-byte
// load would pass src_end takes the scalar path.
__attribute__((target("sse4.1"))) void horizontal_sse41(const uint8_t* src, int sw, int y_first, int rows, const Coeffs& ch,
                                                        int out_w, const uint8_t* src_end, uint8_t* tmp) {
  const __m128i half = _mm_set1_epi32(kHalf);
  const __m128i zero = _mm_setzero_si128();
  const __m128i max = _mm_set1_epi32(255);
  for (int y = 0; y < rows; y++) {
    const uint8_t* row = src + size_t(y_first + y) * sw * 3;
    uint8_t* o = tmp + size_t(y) * out_w * 3;
    for (int xx = 0; xx < out_w; xx++) {
      const int xmin = ch.bounds[size_t(xx) * 2], n = ch.bounds[size_t(xx) * 2 + 1];
      const uint8_t* p = row + size_t(xmin) * 3;
      if (p + size_t(n) * 3 + 1 > src_end) {
        horizontal_row(row, ch, xx, xx + 1, o);
        continue;
      }
      const int32_t* k = ch.k.data() + size_t(xx) * ch.ksize;
      __m128i acc = half;
      for (int x = 0; x < n; x++, p += 3) {
        int32_t px;
        std::memcpy(&px, p, 4);
        const __m128i v = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(px));
        acc = _mm_add_epi32(acc, _mm_mullo_epi32(v, _mm_set1_epi32(k[x])));
      }
      acc = _mm_srai_epi32(acc, kPrecisionBits);
      acc = _mm_min_epi32(_mm_max_epi32(acc, zero), max);
      const __m128i b16 = _mm_packs_epi32(acc, acc);
      const int32_t packed = _mm_cvtsi128_si32(_mm_packus_epi16(b16, b16));
      o[size_t(xx) * 3] = uint8_t(packed);
      o[size_t(xx) * 3 + 1] = uint8_t(packed >> 8);
      o[size_t(xx) * 3 + 2] = uint8_t(packed >> 16);
    }
  }
}
#else
void horizontal_sse41(const uint8_t*, int, int, int, const Coeffs&, int, const uint8_t*, uint8_t*) {}
#endif

}  // namespace

void resample_size(const Axis& ax, const Axis& ay, int out_w, int out_h, int& res_w, int& res_h) {
  const bool need_h = !(ax.in0 == ax.lo && ax.in1 == ax.hi && ax.hi - ax.lo == out_w);
  const bool need_v = !(ay.in0 == ay.lo && ay.in1 == ay.hi && ay.hi - ay.lo == out_h);
  res_w = need_h ? out_w : ax.hi - ax.lo;
  res_h = need_v ? out_h : ay.hi - ay.lo;
}

void resample(const uint8_t* src, int sw, const Axis& ax, const Axis& ay, int out_w, int out_h, uint8_t* out) {
  thread_local std::vector<uint8_t> tmp_store;
  thread_local std::vector<int32_t> acc;
  const bool need_h = !(ax.in0 == ax.lo && ax.in1 == ax.hi && ax.hi - ax.lo == out_w);
  const bool need_v = !(ay.in0 == ay.lo && ay.in1 == ay.hi && ay.hi - ay.lo == out_h);
  const Coeffs cv = precompute(ay.lo, ay.hi, ay.in0, ay.in1, out_h);
  // Rows the vertical pass reads (PIL's ybox_first / ybox_last).
  int y_first = need_v ? cv.bounds[0] : ay.lo;
  int y_last = need_v ? cv.bounds[size_t(out_h - 1) * 2] + cv.bounds[size_t(out_h - 1) * 2 + 1] : ay.hi;
  if (y_last <= y_first) { y_first = ay.lo; y_last = ay.lo + 1; }
  const int rows = y_last - y_first;
  const int tw = need_h ? out_w : ax.hi - ax.lo;
  // Without a vertical pass the horizontal one writes the result directly.
  uint8_t* tmp;
  if (need_v) {
    tmp_store.resize(size_t(tw) * rows * 3);
    tmp = tmp_store.data();
  } else {
    tmp = out;
  }
  if (need_h) {
    const Coeffs ch = precompute(ax.lo, ax.hi, ax.in0, ax.in1, out_w);
    const uint8_t* src_end = src + size_t(ay.hi) * sw * 3;  // no read may pass the last row the filter uses
    if (cpu().sse41) {
      horizontal_sse41(src, sw, y_first, rows, ch, out_w, src_end, tmp);
    } else {
      for (int y = 0; y < rows; y++) horizontal_row(src + size_t(y_first + y) * sw * 3, ch, 0, out_w, tmp + size_t(y) * out_w * 3);
    }
  } else {
    for (int y = 0; y < rows; y++) {
      std::memcpy(tmp + size_t(y) * tw * 3, src + (size_t(y_first + y) * sw + ax.lo) * 3, size_t(tw) * 3);
    }
  }
  if (!need_v) return;
  const size_t row_len = size_t(tw) * 3;
  acc.resize(row_len);
  if (cpu().avx2) vertical_avx2(tmp, row_len, y_first, cv, out_h, acc.data(), out);
  else vertical(tmp, row_len, y_first, cv, out_h, acc.data(), out);
  trim_scratch(tmp_store);
  trim_scratch(acc);
}

void color_jitter(uint8_t* d, size_t np, const int* order, int n_order, double b, double c, double s, double h) {
  for (int i = 0; i < n_order; i++) {
    switch (order[i]) {
      case 0: if (!std::isnan(b)) brightness(d, np, b); break;
      case 1: if (!std::isnan(c)) contrast(d, np, c); break;
      case 2: if (!std::isnan(s)) saturation(d, np, s); break;
      case 3: if (!std::isnan(h)) hue(d, np, h); break;
      default: break;
    }
  }
}

void affine(const uint8_t* src, int w, int h, const double* m, const uint8_t* fill, uint8_t* out) {
  const double a = m[0], b = m[1], c = m[2], d = m[3], e = m[4], f = m[5];
  for (int y = 0; y < h; y++) {
    for (int x = 0; x < w; x++) {
      const double xin = a * (x + 0.5) + b * (y + 0.5) + c - 0.5;
      const double yin = d * (x + 0.5) + e * (y + 0.5) + f - 0.5;
      uint8_t* o = out + (size_t(y) * w + x) * 3;
      // PIL leaves pixels whose centre maps outside the image at the fill colour.
      if (xin < -0.5 || yin < -0.5 || xin >= w - 0.5 || yin >= h - 0.5) {
        o[0] = fill[0]; o[1] = fill[1]; o[2] = fill[2];
        continue;
      }
      const double x0 = std::floor(xin), y0 = std::floor(yin);
      const double dx = xin - x0, dy = yin - y0;
      const int xi = int(x0), yi = int(y0);
      const int xa = xi < 0 ? 0 : xi, xb = xi + 1 >= w ? w - 1 : xi + 1;
      const int ya = yi < 0 ? 0 : yi, yb = yi + 1 >= h ? h - 1 : yi + 1;
      const uint8_t* p00 = src + (size_t(ya) * w + xa) * 3;
      const uint8_t* p01 = src + (size_t(ya) * w + xb) * 3;
      const uint8_t* p10 = src + (size_t(yb) * w + xa) * 3;
      const uint8_t* p11 = src + (size_t(yb) * w + xb) * 3;
      for (int ch = 0; ch < 3; ch++) {
        const double top = p00[ch] + (double(p01[ch]) - p00[ch]) * dx;
        const double bot = p10[ch] + (double(p11[ch]) - p10[ch]) * dx;
        const double v = top + (bot - top) * dy;
        o[ch] = uint8_t(v <= 0 ? 0 : v >= 255 ? 255 : js_round(v));
      }
    }
  }
}

void sharpness(uint8_t* d, int w, int h, double f) {
  if (w < 3 || h < 3) return;
  thread_local std::vector<uint8_t> copy;
  const size_t n = size_t(w) * h * 3;
  copy.assign(d, d + n);
  const uint8_t* src = copy.data();
  for (int y = 1; y < h - 1; y++) {
    for (int x = 1; x < w - 1; x++) {
      for (int c = 0; c < 3; c++) {
        const size_t o = (size_t(y) * w + x) * 3 + c;
        int s = 4 * src[o];  // kernel [[1,1,1],[1,5,1],[1,1,1]] / 13
        for (int dy = -1; dy <= 1; dy++)
          for (int dx = -1; dx <= 1; dx++) s += src[o + (ptrdiff_t(dy) * w + dx) * 3];
        const double smooth = std::min(255.0, std::max(0.0, js_round(double(s) / 13)));
        d[o] = blend8(smooth, src[o], f);
      }
    }
  }
  trim_scratch(copy);
}

void apply_luts(uint8_t* d, size_t np, const uint8_t* l0, const uint8_t* l1, const uint8_t* l2) {
  for (size_t i = 0; i < np * 3; i += 3) {
    d[i] = l0[d[i]];
    d[i + 1] = l1[d[i + 1]];
    d[i + 2] = l2[d[i + 2]];
  }
}

void histograms(const uint8_t* d, size_t np, uint32_t* hist) {
  std::fill(hist, hist + 768, 0u);
  for (size_t i = 0; i < np * 3; i += 3) {
    hist[d[i]]++;
    hist[256 + d[i + 1]]++;
    hist[512 + d[i + 2]]++;
  }
}

void to_float_chw(const uint8_t* src, int w, int h, const double* mean, const double* std, bool flip, float* out) {
  float lut[3][256];
  for (int c = 0; c < 3; c++)
    for (int v = 0; v < 256; v++) lut[c][v] = float((double(v) / 255 - mean[c]) / std[c]);
  const size_t plane = size_t(w) * h;
  float* o0 = out;
  float* o1 = out + plane;
  float* o2 = out + 2 * plane;
  for (int y = 0; y < h; y++) {
    const uint8_t* row = src + size_t(y) * w * 3;
    const size_t base = size_t(y) * w;
    for (int x = 0; x < w; x++) {
      const uint8_t* p = row + size_t(flip ? w - 1 - x : x) * 3;
      o0[base + x] = lut[0][p[0]];
      o1[base + x] = lut[1][p[1]];
      o2[base + x] = lut[2][p[2]];
    }
  }
}

}  // namespace grimg
