// goodsrec_image: the data loader's hot pixel work in C++ (JPEG decoding, PIL-exact resampling,
// ColorJitter, float conversion). Synchronous by design: the DataLoader calls it from its worker
// threads, one image per call. No libtorch here, so loading data never loads the tensor engine.
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "jpeg.h"
#include "kernels.h"

namespace {

Napi::Uint8Array bytes(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(info.Env(), std::string("Expected a Uint8Array for ") + name);
  }
  return info[i].As<Napi::Uint8Array>();
}

double num(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string("Expected a number for ") + name);
  return info[i].As<Napi::Number>().DoubleValue();
}

Napi::Uint8Array copy_out(Napi::Env env, const std::vector<uint8_t>& v) {
  auto a = Napi::Uint8Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size());
  return a;
}

// jpegInfo(buf) -> {width, height, components, orientation, supported} | null (not a readable JPEG header)
Napi::Value JpegInfo(const Napi::CallbackInfo& info) {
  auto buf = bytes(info, 0, "buf");
  grimg::JpegInfo ji;
  std::string msg;
  if (!grimg::jpeg_info(buf.Data(), buf.ByteLength(), ji, msg)) return info.Env().Null();
  auto o = Napi::Object::New(info.Env());
  o.Set("width", ji.width);
  o.Set("height", ji.height);
  o.Set("components", ji.components);
  o.Set("orientation", ji.orientation);
  o.Set("supported", ji.supported);
  return o;
}

// jpegCheck(buf) -> {header, complete, fatal, eof, errorCode, warnings, firstWarningCode, message}
// Only for files that failed to decode: what libjpeg-turbo says is wrong, by code.
Napi::Value JpegCheckFn(const Napi::CallbackInfo& info) {
  auto buf = bytes(info, 0, "buf");
  const grimg::JpegCheck k = grimg::check_jpeg(buf.Data(), buf.ByteLength());
  auto o = Napi::Object::New(info.Env());
  o.Set("header", k.header);
  o.Set("complete", k.complete);
  o.Set("fatal", k.fatal);
  o.Set("eof", k.hit_eof);
  o.Set("errorCode", k.error_code);
  o.Set("warnings", k.warnings);
  o.Set("firstWarningCode", k.first_warning_code);
  o.Set("message", k.message);
  return o;
}

// Reads an array of n numbers (a matrix, [r, g, b], an axis) into doubles.
void numbers(Napi::Env env, const Napi::Value& v, size_t n, double* out, const char* name) {
  if (!v.IsArray() || v.As<Napi::Array>().Length() != n) throw Napi::TypeError::New(env, std::string("Expected ") + std::to_string(n) + " numbers for " + name);
  auto a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < n; i++) out[i] = a.Get(i).As<Napi::Number>().DoubleValue();
}

// [lo, hi, in0, in1]
grimg::Axis axis(Napi::Env env, const Napi::Value& v, const char* name) {
  double d[4];
  numbers(env, v, 4, d, name);
  return {int(d[0]), int(d[1]), d[2], d[3]};
}

// Resamples an image held in native memory into a new Uint8Array: {data, width, height}.
Napi::Object resample_to_js(Napi::Env env, const uint8_t* src, int sw, int sh, int ow, int oh, const grimg::Axis& ax, const grimg::Axis& ay) {
  if (ow <= 0 || oh <= 0) throw Napi::RangeError::New(env, "resample: output size must be positive");
  if (ax.lo < 0 || ax.hi > sw || ax.lo >= ax.hi || ay.lo < 0 || ay.hi > sh || ay.lo >= ay.hi) throw Napi::RangeError::New(env, "resample: filter window outside the image");
  int rw = 0, rh = 0;
  grimg::resample_size(ax, ay, ow, oh, rw, rh);
  auto data = Napi::Uint8Array::New(env, size_t(rw) * rh * 3);
  grimg::resample(src, sw, ax, ay, ow, oh, data.Data());
  auto o = Napi::Object::New(env);
  o.Set("data", data);
  o.Set("width", rw);
  o.Set("height", rh);
  return o;
}

// decodeJpeg(buf, scaleDenom, maxPixels, window?: [x0, y0, w, h, r, g, b], resample?: [outW, outH, ax, ay])
//   -> {status: 'ok', data, width, height} | {status, message}
// With `resample`, the decoded pixels (the window) stay in native memory and only the resampled image
// comes back.
Napi::Value DecodeJpeg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  thread_local std::vector<uint8_t> pixels;
  auto buf = bytes(info, 0, "buf");
  const int denom = int(num(info, 1, "scaleDenom"));
  const double maxp = num(info, 2, "maxPixels");
  grimg::Window win{};
  const bool has_win = info.Length() > 3 && !info[3].IsUndefined() && !info[3].IsNull();
  if (has_win) {
    if (!info[3].IsArray() || info[3].As<Napi::Array>().Length() != 7) throw Napi::TypeError::New(env, "Expected [x0, y0, w, h, r, g, b] for window");
    auto a = info[3].As<Napi::Array>();
    auto d = [&](uint32_t k) { return a.Get(k).As<Napi::Number>().Int32Value(); };
    win = {d(0), d(1), d(2), d(3), {uint8_t(d(4)), uint8_t(d(5)), uint8_t(d(6))}};
    if (win.w <= 0 || win.h <= 0) throw Napi::RangeError::New(env, "decodeJpeg: window size must be positive");
  }
  const bool has_rs = info.Length() > 4 && !info[4].IsUndefined() && !info[4].IsNull();
  int ow = 0, oh = 0;
  grimg::Axis ax{}, ay{};
  if (has_rs) {
    if (!info[4].IsArray() || info[4].As<Napi::Array>().Length() != 4) throw Napi::TypeError::New(env, "Expected [outW, outH, xAxis, yAxis] for resample");
    auto a = info[4].As<Napi::Array>();
    ow = a.Get(0u).As<Napi::Number>().Int32Value();
    oh = a.Get(1u).As<Napi::Number>().Int32Value();
    ax = axis(env, a.Get(2u), "resample x axis");
    ay = axis(env, a.Get(3u), "resample y axis");
  }
  grimg::JpegResult r = grimg::decode_jpeg(buf.Data(), buf.ByteLength(), denom, maxp >= 1.8e19 ? std::numeric_limits<uint64_t>::max() : uint64_t(maxp), has_win ? &win : nullptr, pixels);
  if (r.status != grimg::JpegStatus::Ok) {
    auto o = Napi::Object::New(env);
    o.Set("status", r.status == grimg::JpegStatus::Unsupported ? "unsupported" : "failed");
    o.Set("message", r.message);
    return o;
  }
  Napi::Object o;
  if (has_rs) {
    o = resample_to_js(env, pixels.data(), r.width, r.height, ow, oh, ax, ay);
  } else {
    o = Napi::Object::New(env);
    o.Set("data", copy_out(env, pixels));
    o.Set("width", r.width);
    o.Set("height", r.height);
  }
  grimg::trim_scratch(pixels);
  o.Set("status", "ok");
  return o;
}

// resample(src, srcWidth, srcHeight, outW, outH, [lo, hi, in0, in1] x, [...] y) -> {data, width, height}
Napi::Value Resample(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto src = bytes(info, 0, "src");
  const int sw = int(num(info, 1, "srcWidth")), sh = int(num(info, 2, "srcHeight"));
  const int ow = int(num(info, 3, "outWidth")), oh = int(num(info, 4, "outHeight"));
  if (info.Length() < 7) throw Napi::TypeError::New(env, "resample: expected 7 arguments");
  const grimg::Axis ax = axis(env, info[5], "x axis"), ay = axis(env, info[6], "y axis");
  if (sw <= 0 || sh <= 0 || size_t(sw) * sh * 3 != src.ByteLength()) throw Napi::RangeError::New(env, "resample: src size does not match its width and height");
  return resample_to_js(env, src.Data(), sw, sh, ow, oh, ax, ay);
}

// colorJitter(data, order[], brightness, contrast, saturation, hue) in place; NaN skips a factor.
Napi::Value ColorJitter(const Napi::CallbackInfo& info) {
  auto d = bytes(info, 0, "data");
  if (d.ByteLength() % 3 != 0) throw Napi::RangeError::New(info.Env(), "colorJitter: data length is not a multiple of 3");
  if (info.Length() <= 1 || !info[1].IsArray()) throw Napi::TypeError::New(info.Env(), "Expected an array for order");
  auto arr = info[1].As<Napi::Array>();
  int order[4];
  const int n = int(std::min<uint32_t>(4, arr.Length()));
  for (int i = 0; i < n; i++) order[i] = arr.Get(uint32_t(i)).As<Napi::Number>().Int32Value();
  grimg::color_jitter(d.Data(), d.ByteLength() / 3, order, n, num(info, 2, "brightness"), num(info, 3, "contrast"), num(info, 4, "saturation"), num(info, 5, "hue"));
  return info.Env().Undefined();
}


void check_image(Napi::Env env, const Napi::Uint8Array& d, int w, int h, const char* fn) {
  if (w <= 0 || h <= 0 || size_t(w) * h * 3 != d.ByteLength()) throw Napi::RangeError::New(env, std::string(fn) + ": data size does not match its width and height");
}

// affine(src, width, height, [a, b, c, d, e, f], [r, g, b]) -> Uint8Array
Napi::Value Affine(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto src = bytes(info, 0, "src");
  const int w = int(num(info, 1, "width")), h = int(num(info, 2, "height"));
  check_image(env, src, w, h, "affine");
  double m[6], fill[3];
  numbers(env, info[3], 6, m, "matrix");
  numbers(env, info[4], 3, fill, "fill");
  const uint8_t f8[3] = {uint8_t(fill[0]), uint8_t(fill[1]), uint8_t(fill[2])};
  auto out = Napi::Uint8Array::New(env, src.ByteLength());
  grimg::affine(src.Data(), w, h, m, f8, out.Data());
  return out;
}

// sharpness(data, width, height, factor) in place
Napi::Value Sharpness(const Napi::CallbackInfo& info) {
  auto d = bytes(info, 0, "data");
  const int w = int(num(info, 1, "width")), h = int(num(info, 2, "height"));
  check_image(info.Env(), d, w, h, "sharpness");
  grimg::sharpness(d.Data(), w, h, num(info, 3, "factor"));
  return info.Env().Undefined();
}

// applyLuts(data, lut0, lut1, lut2) in place
Napi::Value ApplyLuts(const Napi::CallbackInfo& info) {
  auto d = bytes(info, 0, "data");
  if (d.ByteLength() % 3 != 0) throw Napi::RangeError::New(info.Env(), "applyLuts: data length is not a multiple of 3");
  Napi::Uint8Array l[3] = {bytes(info, 1, "lut0"), bytes(info, 2, "lut1"), bytes(info, 3, "lut2")};
  for (auto& t : l) if (t.ByteLength() != 256) throw Napi::RangeError::New(info.Env(), "applyLuts: each table needs 256 entries");
  grimg::apply_luts(d.Data(), d.ByteLength() / 3, l[0].Data(), l[1].Data(), l[2].Data());
  return info.Env().Undefined();
}

// histograms(data) -> Uint32Array(768): channel c's count of value v at c * 256 + v
Napi::Value Histograms(const Napi::CallbackInfo& info) {
  auto d = bytes(info, 0, "data");
  if (d.ByteLength() % 3 != 0) throw Napi::RangeError::New(info.Env(), "histograms: data length is not a multiple of 3");
  auto out = Napi::Uint32Array::New(info.Env(), 768);
  grimg::histograms(d.Data(), d.ByteLength() / 3, out.Data());
  return out;
}

// toFloatChw(src, width, height, mean[3], std[3], flip, out?) -> Float32Array (CHW; `out` when given)
Napi::Value ToFloatChw(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto src = bytes(info, 0, "src");
  const int w = int(num(info, 1, "width")), h = int(num(info, 2, "height"));
  if (w <= 0 || h <= 0 || size_t(w) * h * 3 != src.ByteLength()) throw Napi::RangeError::New(env, "toFloatChw: src size does not match its width and height");
  double mean[3], stdv[3];
  numbers(env, info[3], 3, mean, "mean");
  numbers(env, info[4], 3, stdv, "std");
  const bool flip = info.Length() > 5 && info[5].ToBoolean().Value();
  Napi::Float32Array out;
  if (info.Length() > 6 && !info[6].IsUndefined()) {
    if (!info[6].IsTypedArray() || info[6].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) throw Napi::TypeError::New(env, "Expected a Float32Array for out");
    out = info[6].As<Napi::Float32Array>();
    if (out.ElementLength() != size_t(w) * h * 3) throw Napi::RangeError::New(env, "toFloatChw: out has the wrong length");
  } else {
    out = Napi::Float32Array::New(env, size_t(w) * h * 3);
  }
  grimg::to_float_chw(src.Data(), w, h, mean, stdv, flip, out.Data());
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("jpegInfo", Napi::Function::New(env, JpegInfo, "jpegInfo"));
  exports.Set("jpegCheck", Napi::Function::New(env, JpegCheckFn, "jpegCheck"));
  exports.Set("decodeJpeg", Napi::Function::New(env, DecodeJpeg, "decodeJpeg"));
  exports.Set("resample", Napi::Function::New(env, Resample, "resample"));
  exports.Set("colorJitter", Napi::Function::New(env, ColorJitter, "colorJitter"));
  exports.Set("toFloatChw", Napi::Function::New(env, ToFloatChw, "toFloatChw"));
  exports.Set("affine", Napi::Function::New(env, Affine, "affine"));
  exports.Set("sharpness", Napi::Function::New(env, Sharpness, "sharpness"));
  exports.Set("applyLuts", Napi::Function::New(env, ApplyLuts, "applyLuts"));
  exports.Set("histograms", Napi::Function::New(env, Histograms, "histograms"));
  return exports;
}

}  // namespace

NODE_API_MODULE(goodsrec_image, Init)
