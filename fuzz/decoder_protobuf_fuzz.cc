// libFuzzer target: one Kafka message value for the protobuf decoder (streamrec.v1.PurchaseEvent
// in binary encoding), decoded with the default options and with negative quantities allowed.
// Seeds: fuzz/corpus/decoder_protobuf/ (serialized events; fuzz/make_protobuf_seeds.py).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include <google/protobuf/stubs/logging.h>

#include "fuzz_check.h"
#include "streamrec/decoder.h"

namespace {

streamrec::DecoderOptions NegativeAllowed() {
  streamrec::DecoderOptions o;
  o.allow_negative_quantity = true;
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // libprotobuf logs every string field with invalid UTF-8 (then the parse fails, which the
  // decoder reports): millions of lines under the fuzzer.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const streamrec::DecoderOptions kDefault;
  static const streamrec::DecoderOptions kNegative = NegativeAllowed();
  static auto* strict = streamrec::NewProtobufDecoder(kDefault).release();
  static auto* lenient = streamrec::NewProtobufDecoder(kNegative).release();
  const std::string_view record(reinterpret_cast<const char*>(data), size);
  streamrec::PurchaseEvent event;
  streamrec::fuzz::CheckDecoded(kDefault, strict->Decode(record, &event), event);
  streamrec::fuzz::CheckDecoded(kNegative, lenient->Decode(record, &event), event);
  return 0;
}
