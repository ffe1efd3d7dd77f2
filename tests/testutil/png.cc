#include "testutil/png.h"

#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>

namespace streamrec::testing {

namespace {

uint32_t BigEndian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

int Paeth(int a, int b, int c) {
  const int p = a + b - c;
  const int pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

}  // namespace

StatusOr<DecodedPng> DecodePngFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError("cannot read " + path);
  const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto* bytes = reinterpret_cast<const unsigned char*>(file.data());
  static const unsigned char kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (file.size() < 8 || !std::equal(kSignature, kSignature + 8, bytes)) {
    return Status::Corruption(path + ": not a PNG file");
  }
  DecodedPng png;
  int channels = 0;
  std::string idat;
  bool ended = false;
  for (size_t at = 8; at + 12 <= file.size() && !ended;) {
    const uint32_t length = BigEndian32(bytes + at);
    const std::string type(file.data() + at + 4, 4);
    if (at + 12 + length > file.size()) return Status::Corruption(path + ": truncated chunk " + type);
    const unsigned char* data = bytes + at + 8;
    if (type == "IHDR") {
      if (length < 13) return Status::Corruption(path + ": short IHDR");
      png.width = BigEndian32(data);
      png.height = BigEndian32(data + 4);
      const int depth = data[8], colour = data[9], interlace = data[12];
      channels = colour == 0 ? 1 : colour == 2 ? 3 : colour == 6 ? 4 : 0;
      if (depth != 8 || channels == 0 || interlace != 0) {
        return Status::NotSupported(path + ": bit depth " + std::to_string(depth) +
                                    ", colour type " + std::to_string(colour) + ", interlace " +
                                    std::to_string(interlace));
      }
    } else if (type == "IDAT") {
      idat.append(reinterpret_cast<const char*>(data), length);
    } else if (type == "IEND") {
      ended = true;
    }
    at += 12 + length;
  }
  if (channels == 0 || png.width == 0 || png.height == 0) {
    return Status::Corruption(path + ": no image header");
  }
  const size_t stride = static_cast<size_t>(png.width) * channels;
  std::vector<unsigned char> raw((stride + 1) * png.height);
  uLongf raw_size = raw.size();
  if (uncompress(raw.data(), &raw_size, reinterpret_cast<const Bytef*>(idat.data()),
                 idat.size()) != Z_OK ||
      raw_size != raw.size()) {
    return Status::Corruption(path + ": image data does not inflate to " +
                              std::to_string(raw.size()) + " bytes");
  }
  std::vector<unsigned char> previous(stride, 0), row(stride);
  png.pixels.reserve(static_cast<size_t>(png.width) * png.height);
  for (uint32_t y = 0; y < png.height; ++y) {
    const unsigned char* line = raw.data() + y * (stride + 1);
    const int filter = line[0];
    for (size_t i = 0; i < stride; ++i) {
      const int a = i >= static_cast<size_t>(channels) ? row[i - channels] : 0;
      const int b = previous[i];
      const int c = i >= static_cast<size_t>(channels) ? previous[i - channels] : 0;
      int predictor = 0;
      switch (filter) {
        case 0: predictor = 0; break;
        case 1: predictor = a; break;
        case 2: predictor = b; break;
        case 3: predictor = (a + b) / 2; break;
        case 4: predictor = Paeth(a, b, c); break;
        default:
          return Status::Corruption(path + ": filter " + std::to_string(filter) + " in row " +
                                    std::to_string(y));
      }
      row[i] = static_cast<unsigned char>(line[1 + i] + predictor);
    }
    for (uint32_t x = 0; x < png.width; ++x) {
      const unsigned char* p = row.data() + static_cast<size_t>(x) * channels;
      png.pixels.push_back(channels == 1 ? (uint32_t{p[0]} * 0x010101u)
                                         : (uint32_t{p[0]} << 16) | (uint32_t{p[1]} << 8) | p[2]);
    }
    std::swap(previous, row);
  }
  return png;
}

}  // namespace streamrec::testing
