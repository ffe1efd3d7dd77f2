// libFuzzer target: CSV text for the CSV decoder. The first line is a header for
// NewCsvDecoder (which may reject it), the following lines are records for that decoder; every
// line, the first included, is also a record for decoders built on the canonical header
// (delimiters ',' and ';'). Seeds: fuzz/corpus/decoder_csv/ (header + lines).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "streamrec/decoder.h"

namespace {

constexpr std::string_view kCanonicalHeader =
    "event_id,customer_id,item_id,timestamp,quantity,unit_price,amount,discount,channel,currency";

struct Case {
  streamrec::DecoderOptions options;
  std::unique_ptr<streamrec::Decoder> decoder;
};

std::vector<Case>* MakeCanonical() {
  auto* cases = new std::vector<Case>();
  streamrec::DecoderOptions comma;
  streamrec::DecoderOptions semicolon;
  semicolon.csv_delimiter = ';';
  semicolon.allow_negative_quantity = true;
  semicolon.timestamp_format = streamrec::TimestampFormat::kIso8601;
  std::string header_semicolon(kCanonicalHeader);
  for (char& ch : header_semicolon) {
    if (ch == ',') ch = ';';
  }
  auto a = streamrec::NewCsvDecoder(comma, kCanonicalHeader);
  auto b = streamrec::NewCsvDecoder(semicolon, header_semicolon);
  streamrec::fuzz::Check(a.ok() && b.ok(), "canonical CSV header rejected");
  cases->push_back({comma, std::move(a).value()});
  cases->push_back({semicolon, std::move(b).value()});
  return cases;
}

// Lines of `text` split on '\n' (a '\r' before it stays: the decoder drops it).
std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    lines.push_back(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return lines;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::vector<Case>* canonical = MakeCanonical();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::vector<std::string_view> lines = Lines(text);
  if (lines.empty()) return 0;
  streamrec::PurchaseEvent event;
  for (std::string_view line : lines) {
    for (Case& c : *canonical) {
      streamrec::fuzz::CheckDecoded(c.options, c.decoder->Decode(line, &event), event);
    }
  }
  const streamrec::DecoderOptions options;
  auto decoder = streamrec::NewCsvDecoder(options, lines[0]);
  if (!decoder.ok()) {
    streamrec::fuzz::Check(decoder.status().IsInvalidArgument() &&
                               !decoder.status().message().empty(),
                           "header error", decoder.status().ToString());
    return 0;
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    streamrec::fuzz::CheckDecoded(options, (*decoder)->Decode(lines[i], &event), event);
  }
  return 0;
}
