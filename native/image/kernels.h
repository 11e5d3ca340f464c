// Pixel kernels on 8-bit RGB (HWC), bit-identical to the TypeScript versions in src/data (which follow
// PIL): PIL's two-pass bilinear resample, torchvision/PIL ColorJitter, and uint8 HWC -> float32 CHW.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace grimg {

// Per-thread scratch buffers keep their capacity from one image to the next; one that grew past this
// for a huge photo is released after use, so a worker thread does not hold it for the rest of a run.
constexpr size_t kScratchKeepBytes = size_t(64) << 20;
template <typename T>
void trim_scratch(std::vector<T>& v) {
  if (v.capacity() * sizeof(T) > kScratchKeepBytes) std::vector<T>().swap(v);
}

// One axis of a resample: the filter reads input [lo, hi); output covers the fractional input span [in0, in1).
struct Axis { int lo, hi; double in0, in1; };

// Size of resample's result: out_w x out_h, except that an axis needing no resampling keeps its window.
void resample_size(const Axis& ax, const Axis& ay, int out_w, int out_h, int& res_w, int& res_h);

// PIL ImagingResample (bilinear) of src (sw wide) over the boxes ax, ay into out (resample_size big).
// Scratch memory is kept per thread.
void resample(const uint8_t* src, int sw, const Axis& ax, const Axis& ay, int out_w, int out_h, uint8_t* out);

// ColorJitter in the order given (0 brightness, 1 contrast, 2 saturation, 3 hue); NaN factor = skip.
void color_jitter(uint8_t* d, size_t n_pixels, const int* order, int n_order, double brightness, double contrast,
                  double saturation, double hue);

// PIL Image.transform(AFFINE, BILINEAR, fillcolor): out pixel (x, y) samples src at (a x + b y + c, d x + e y + f),
// pixel centres at +0.5 (src/data/resample.ts affineBilinear).
void affine(const uint8_t* src, int w, int h, const double* m, const uint8_t* fill, uint8_t* out);

// PIL ImageEnhance.Sharpness in place: blend with the SMOOTH-filtered image, borders unchanged.
void sharpness(uint8_t* d, int w, int h, double f);

// d[i] = lut[i % 3][d[i]] in place (three 256-entry tables).
void apply_luts(uint8_t* d, size_t n_pixels, const uint8_t* l0, const uint8_t* l1, const uint8_t* l2);

// Per-channel histograms: hist[c * 256 + v].
void histograms(const uint8_t* d, size_t n_pixels, uint32_t* hist);

// (v / 255 - mean) / std per channel into CHW, mirrored left-right when flip.
void to_float_chw(const uint8_t* src, int w, int h, const double* mean, const double* std, bool flip, float* out);

}  // namespace grimg
