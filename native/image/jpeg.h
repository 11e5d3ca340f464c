// JPEG decoding with libjpeg-turbo: 8-bit RGB out, optional DCT-domain downscaling (1/2, 1/4, 1/8),
// EXIF orientation read from APP1. No N-API here, so the code can be tested and reused on its own.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace grimg {

struct JpegInfo {
  int width = 0, height = 0;  // stored size (before EXIF orientation)
  int components = 0;
  int orientation = 1;        // EXIF 1..8 (1 when absent or invalid)
  bool supported = false;     // 8-bit grayscale or YCbCr/RGB: what decode_jpeg handles
};

enum class JpegStatus { Ok, Unsupported, Failed };

struct JpegResult {
  JpegStatus status = JpegStatus::Failed;
  std::string message;        // why, when not Ok
  int width = 0, height = 0;  // of the result: after scaling and orientation, or the window's
};

// Reads the header only. Returns false (with `message`) when it is not a readable JPEG header.
bool jpeg_info(const uint8_t* data, size_t len, JpegInfo& info, std::string& message);

// What libjpeg-turbo itself reports when decoding the whole file: its error and warning codes
// (jerror.h), and whether the data ran out before the end-of-image marker (JWRN_JPEG_EOF).
struct JpegCheck {
  bool header = false;          // jpeg_read_header succeeded
  bool complete = false;        // decoded through to the end-of-image marker without a fatal error
  bool fatal = false;           // a fatal error (error_code) stopped the decode
  bool hit_eof = false;         // the data ended early (libjpeg padded it with a fake EOI)
  int error_code = -1;          // jerror.h code of the fatal error
  int warnings = 0;             // corrupt-data warnings
  int first_warning_code = -1;  // jerror.h code of the first one
  std::string message;          // libjpeg's text for the fact that decides: EOF, else the error or first warning
};

// Decodes the whole file at 1/8 (any colour space) only to learn what is wrong with it; bad files only.
JpegCheck check_jpeg(const uint8_t* data, size_t len);

// A window of the decoded image (after scaling and EXIF orientation): x0, y0 may be negative and the
// window may extend past the image; those pixels get `fill`.
struct Window {
  int x0, y0, w, h;
  uint8_t fill[3];
};

// Decodes at 1/scale_denom (1, 2, 4 or 8; libjpeg rounds sizes up), applies EXIF orientation.
// With a window, only the part of the file the window needs is decompressed (libjpeg-turbo's
// crop and skip, plus a margin so the pixels equal a full decode's) and the result is the window.
// Unsupported: colour spaces other than gray/YCbCr/RGB (CMYK, YCCK), more than max_pixels pixels.
// Failed: any libjpeg error or warning (corrupt or truncated data), so the caller's own decoder can
// classify the file.
// The pixels (HWC) go to `out`, resized to fit; the caller may reuse it across calls.
JpegResult decode_jpeg(const uint8_t* data, size_t len, int scale_denom, uint64_t max_pixels, const Window* window,
                       std::vector<uint8_t>& out);

}  // namespace grimg
