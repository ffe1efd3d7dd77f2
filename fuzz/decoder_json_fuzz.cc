// libFuzzer target: one JSON record for the JSON decoder, decoded with four option sets (the
// canonical field names with automatic, ISO-8601-only and epoch-millisecond times; the telco
// field names of config/telco-json.yaml with a +07:00 zone and negative quantities allowed).
// Seeds: fuzz/corpus/decoder_json/.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "streamrec/decoder.h"

namespace {

struct Case {
  streamrec::DecoderOptions options;
  std::unique_ptr<streamrec::Decoder> decoder;
};

std::vector<Case>* MakeCases() {
  auto* cases = new std::vector<Case>();
  streamrec::DecoderOptions automatic;
  streamrec::DecoderOptions iso = automatic;
  iso.timestamp_format = streamrec::TimestampFormat::kIso8601;
  streamrec::DecoderOptions millis = automatic;
  millis.timestamp_format = streamrec::TimestampFormat::kEpochMillis;
  streamrec::DecoderOptions telco;
  telco.fields.customer_id = "MSISDN";
  telco.fields.item_id = "PACKAGE_CODE";
  telco.fields.event_time = "BUY_DATE";
  telco.fields.channel = "CHANNEL";
  telco.fields.amount = "PRICE";
  telco.fields.event_id = "";
  telco.default_utc_offset_minutes = 420;
  telco.allow_negative_quantity = true;
  for (const auto& o : {automatic, iso, millis, telco}) {
    cases->push_back({o, streamrec::NewJsonDecoder(o)});
  }
  return cases;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::vector<Case>* cases = MakeCases();
  const std::string_view record(reinterpret_cast<const char*>(data), size);
  streamrec::PurchaseEvent event;
  for (Case& c : *cases) {
    streamrec::fuzz::CheckDecoded(c.options, c.decoder->Decode(record, &event), event);
  }
  return 0;
}
