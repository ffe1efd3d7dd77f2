// A minimal PNG decoder for tests that check rendered screenshots (8-bit greyscale, RGB, RGBA,
// non-interlaced: what headless Chromium writes). Not for untrusted input.
#ifndef STREAMREC_TESTS_TESTUTIL_PNG_H_
#define STREAMREC_TESTS_TESTUTIL_PNG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "streamrec/status.h"

namespace streamrec::testing {

struct DecodedPng {
  uint32_t width = 0, height = 0;
  /// width x height pixels, row-major, 0xRRGGBB (alpha dropped).
  std::vector<uint32_t> pixels;
};

// Decodes the PNG file at `path`: checks the signature, reads IHDR, inflates the IDAT chunks and
// reverses the scanline filters. NotSupported for other bit depths, colour types or interlacing.
StatusOr<DecodedPng> DecodePngFile(const std::string& path);

}  // namespace streamrec::testing

#endif  // STREAMREC_TESTS_TESTUTIL_PNG_H_
