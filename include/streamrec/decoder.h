// Decoders turn one input record (a Kafka message value, a CSV or JSON line) into a
// PurchaseEvent. A record that cannot be decoded or fails validation yields a non-OK Status
// whose message names the field and the offending value; it never throws and never aborts.
#ifndef STREAMREC_DECODER_H_
#define STREAMREC_DECODER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "streamrec/event.h"
#include "streamrec/status.h"

namespace streamrec {

// Names of the source fields (JSON keys, CSV header columns) that carry each event field.
// Defaults are the canonical CSV header; a telco billing feed maps e.g.
// customer_id: MSISDN, item_id: PACKAGE_CODE, event_time: BUY_DATE, channel: CHANNEL,
// amount: PRICE. An empty name means "the source has no such field".
struct FieldNames {
  std::string event_id = "event_id";
  std::string customer_id = "customer_id";
  std::string item_id = "item_id";
  std::string event_time = "timestamp";
  std::string quantity = "quantity";
  std::string unit_price = "unit_price";
  std::string amount = "amount";
  std::string discount = "discount";
  std::string channel = "channel";
  std::string currency = "currency";
};

enum class TimestampFormat {
  kAuto,          // ISO-8601 text, or a number: epoch seconds below 1e11, milliseconds above
  kIso8601,       // 2011-12-09 12:50:00, 2011-12-09T12:50:00.250+07:00, ...Z
  kEpochSeconds,  // 1323435000 (fractions allowed)
  kEpochMillis,   // 1323435000000
};

struct DecoderOptions {
  // Field names of the source (JSON keys, CSV header columns).
  FieldNames fields;
  // How event times are written.
  TimestampFormat timestamp_format = TimestampFormat::kAuto;
  // Zone applied to ISO-8601 times written without an offset, in minutes east of UTC
  // (e.g. 420 for UTC+07:00). Default 0: such times are UTC.
  int default_utc_offset_minutes = 0;
  // Accept quantity < 0 (returns, cancellations). Default false: such a record is invalid.
  bool allow_negative_quantity = false;
  // Event times outside [min, max] are rejected as absurd. Defaults: 1990-01-01 .. 2100-01-01.
  int64_t min_event_time_ms = 631152000000LL;
  int64_t max_event_time_ms = 4102444800000LL;
  // CSV only: the field delimiter.
  char csv_delimiter = ',';
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Decodes one record into *out (overwriting every field). REQUIRES: out != nullptr.
  // Thread-compatible: one Decoder per thread.
  virtual Status Decode(std::string_view record, PurchaseEvent* out) = 0;
  // "protobuf", "json" or "csv".
  virtual const char* name() const = 0;
};

// streamrec.v1.PurchaseEvent in protobuf binary encoding. Field names are fixed by the schema.
std::unique_ptr<Decoder> NewProtobufDecoder(const DecoderOptions& options);
// One JSON object per record; keys are taken from options.fields. Numbers may be sent as JSON
// numbers or as strings ("12.5"); ids may be strings or integers.
std::unique_ptr<Decoder> NewJsonDecoder(const DecoderOptions& options);
// One CSV line per record (RFC 4180 quoting), columns located by `header_line`, which must
// hold the columns named by options.fields.customer_id, item_id and event_time; the other
// mapped columns are optional. Error when a required column is missing (the message names it
// and lists the header).
StatusOr<std::unique_ptr<Decoder>> NewCsvDecoder(const DecoderOptions& options,
                                                 std::string_view header_line);

// Checks the invariants every decoder enforces (ids present, time in range, quantity and
// prices sane, finite numbers) and normalises the channel (trimmed, lower case). An absent
// amount stays absent: PurchaseEvent::PaidAmount() derives it. Exposed for tests and for
// sources that build events themselves.
Status ValidateEvent(const DecoderOptions& options, PurchaseEvent* event);

}  // namespace streamrec

#endif  // STREAMREC_DECODER_H_
