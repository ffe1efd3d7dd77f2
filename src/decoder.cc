// The three record decoders (protobuf, JSON, CSV) and the validation they share.
//
// Every decoder resets *out, copies the source fields into it, and hands it to ValidateEvent, so
// the invariants of a decoded PurchaseEvent are enforced in one place whatever the wire format.
// Nothing here throws: simdjson is used through its error-code API, protobuf does not throw on
// malformed input, and numbers are parsed with std::from_chars.
#include "streamrec/decoder.h"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "csv.h"
#include "streamrec/time_util.h"
#include "streamrec/v1/events.pb.h"

namespace streamrec {
namespace {

// How much of an offending record or value an error message quotes.
constexpr size_t kExcerptChars = 80;

// The event fields a source can carry, in the order of FieldNames.
enum Slot : int {
  kEventId = 0,
  kCustomerId,
  kItemId,
  kEventTime,
  kQuantity,
  kUnitPrice,
  kAmount,
  kDiscount,
  kChannel,
  kCurrency,
  kNumSlots,
};

// Names of the PurchaseEvent fields, as error messages call them.
constexpr std::array<const char*, kNumSlots> kSlotNames = {
    "event_id",   "customer_id", "item_id",  "event_time", "quantity",
    "unit_price", "amount",      "discount", "channel",    "currency",
};

const std::string& SourceName(const FieldNames& f, Slot slot) {
  switch (slot) {
    case kEventId:
      return f.event_id;
    case kCustomerId:
      return f.customer_id;
    case kItemId:
      return f.item_id;
    case kEventTime:
      return f.event_time;
    case kQuantity:
      return f.quantity;
    case kUnitPrice:
      return f.unit_price;
    case kAmount:
      return f.amount;
    case kDiscount:
      return f.discount;
    case kChannel:
      return f.channel;
    case kCurrency:
      return f.currency;
    case kNumSlots:
      break;
  }
  return f.event_id;  // unreachable
}

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

std::string_view TrimSpaces(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

void TrimInPlace(std::string* s) {
  size_t begin = 0;
  size_t end = s->size();
  while (begin < end && IsSpace((*s)[begin])) ++begin;
  while (end > begin && IsSpace((*s)[end - 1])) --end;
  if (end < s->size()) s->erase(end);
  if (begin > 0) s->erase(0, begin);
}

char ToLowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ToLowerAscii(a[i]) != ToLowerAscii(b[i])) return false;
  }
  return true;
}

// The first kExcerptChars bytes of `s`, with "..." when cut.
std::string Excerpt(std::string_view s) {
  if (s.size() <= kExcerptChars) return std::string(s);
  std::string out(s.substr(0, kExcerptChars));
  out.append("...");
  return out;
}

// Shortest round-trip text of `v` ("2.55", "-1", "nan"), independent of the locale.
std::string FormatNumber(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  if (ec != std::errc()) return "?";
  return std::string(buf, end);
}

// " (field 'MSISDN')", or "" when the source has no name for the field.
std::string FieldSuffix(const FieldNames& f, Slot slot) {
  const std::string& source = SourceName(f, slot);
  if (source.empty()) return "";
  return " (field '" + source + "')";
}

// "bad quantity 'abc' (field 'qty'): not a number"
Status BadValue(const FieldNames& f, Slot slot, std::string_view shown_value, bool quote,
                std::string_view why) {
  std::string msg = "bad ";
  msg.append(kSlotNames[slot]);
  msg.push_back(' ');
  if (quote) msg.push_back('\'');
  msg.append(Excerpt(shown_value));
  if (quote) msg.push_back('\'');
  msg.append(FieldSuffix(f, slot));
  msg.append(": ");
  msg.append(why);
  return Status::InvalidArgument(msg);
}

Status Missing(const FieldNames& f, Slot slot) {
  return Status::InvalidArgument("missing " + std::string(kSlotNames[slot]) + FieldSuffix(f, slot));
}

// Resets every field of *e, keeping string capacity for the next record.
void ResetEvent(PurchaseEvent* e) {
  e->event_id.clear();
  e->customer_id.clear();
  e->item_id.clear();
  e->event_time_ms = 0;
  e->quantity = 1.0;
  e->unit_price.reset();
  e->amount.reset();
  e->discount = 0.0;
  e->channel.clear();
  e->currency.clear();
}

// Parses decimal text ("12.5", " 3 ", "+1e3") for a numeric field. Empty text: *out = nullopt.
Status ParseNumberText(const FieldNames& f, Slot slot, std::string_view raw,
                       std::optional<double>* out) {
  std::string_view text = TrimSpaces(raw);
  if (text.empty()) {
    out->reset();
    return Status::OK();
  }
  std::string_view digits = text;
  if (digits.front() == '+') {
    digits.remove_prefix(1);  // std::from_chars takes '-' but not '+'
    if (!digits.empty() && (digits.front() == '+' || digits.front() == '-')) digits = {};
  }
  double value = 0;
  const char* end = digits.data() + digits.size();
  auto [ptr, ec] = std::from_chars(digits.data(), end, value, std::chars_format::general);
  if (ec == std::errc::result_out_of_range) return BadValue(f, slot, text, true, "out of range");
  if (digits.empty() || ec != std::errc() || ptr != end) {
    return BadValue(f, slot, text, true, "not a number");
  }
  *out = value;
  return Status::OK();
}

// Parses an event-time text per options; the error names the value and the source field.
Status ParseTimeText(const DecoderOptions& options, std::string_view text, int64_t* out) {
  if (TrimSpaces(text).empty()) return Missing(options.fields, kEventTime);
  StatusOr<int64_t> t =
      ParseEventTime(text, options.timestamp_format, options.default_utc_offset_minutes);
  if (!t.ok()) {
    return Status::InvalidArgument(t.status().message() + FieldSuffix(options.fields, kEventTime));
  }
  *out = *t;
  return Status::OK();
}

// An id with a control character (a byte below 0x20, or 0x7f): ids are keys of the store and of
// the output topics, and the changelog reserves keys that start with NUL. The id is not shown
// (a customer id is personal data, and the byte would not print).
Status NoControlCharacters(const FieldNames& f, Slot slot, const std::string& id) {
  for (size_t i = 0; i < id.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(id[i]);
    if (c < 0x20 || c == 0x7f) {
      char why[64];
      std::snprintf(why, sizeof(why), ": control character 0x%02x at byte %zu", c, i);
      return Status::InvalidArgument("bad " + std::string(kSlotNames[slot]) +
                                     FieldSuffix(f, slot) + why);
    }
  }
  return Status::OK();
}

// Trims the ids; customer_id and item_id must then be non-empty, without control characters.
Status ValidateIds(const FieldNames& f, PurchaseEvent* event) {
  TrimInPlace(&event->event_id);
  TrimInPlace(&event->customer_id);
  if (event->customer_id.empty()) return Missing(f, kCustomerId);
  STREAMREC_RETURN_IF_ERROR(NoControlCharacters(f, kCustomerId, event->customer_id));
  TrimInPlace(&event->item_id);
  if (event->item_id.empty()) return Missing(f, kItemId);
  return NoControlCharacters(f, kItemId, event->item_id);
}

// ---- protobuf ---------------------------------------------------------------------------------

class ProtobufDecoder final : public Decoder {
 public:
  explicit ProtobufDecoder(const DecoderOptions& options) : options_(options) {
    // The schema fixes the field names; error messages use them instead of the configured ones.
    options_.fields = FieldNames{};
    options_.fields.event_time = "event_time_ms";
  }

  Status Decode(std::string_view record, PurchaseEvent* out) override {
    ResetEvent(out);
    if (record.size() > static_cast<size_t>(INT_MAX) ||
        !message_.ParseFromArray(record.data(), static_cast<int>(record.size()))) {
      return Status::InvalidArgument("not a valid streamrec.v1.PurchaseEvent protobuf (" +
                                     std::to_string(record.size()) + " bytes)");
    }
    out->event_id = message_.event_id();
    out->customer_id = message_.customer_id();
    out->item_id = message_.item_id();
    out->event_time_ms = message_.event_time_ms();
    // proto3: quantity 0 means "not sent", which defaults to 1.
    out->quantity = message_.quantity() == 0.0 ? 1.0 : message_.quantity();
    if (message_.has_unit_price()) out->unit_price = message_.unit_price();
    if (message_.has_amount()) out->amount = message_.amount();
    out->discount = message_.discount();
    out->channel = message_.channel();
    out->currency = message_.currency();
    // proto3 cannot tell 0 from absent; 0 (1970-01-01) is never a real purchase time. Ids are
    // checked first so that errors come in the same order as from ValidateEvent.
    if (out->event_time_ms == 0) {
      STREAMREC_RETURN_IF_ERROR(ValidateIds(options_.fields, out));
      return Missing(options_.fields, kEventTime);
    }
    return ValidateEvent(options_, out);
  }

  const char* name() const override { return "protobuf"; }

 private:
  DecoderOptions options_;
  streamrec::v1::PurchaseEvent message_;  // reused: keeps its string buffers between records
};

// ---- JSON -------------------------------------------------------------------------------------

class JsonDecoder final : public Decoder {
 public:
  explicit JsonDecoder(const DecoderOptions& options) : options_(options) {
    for (int i = 0; i < kNumSlots; ++i) keys_[i] = SourceName(options_.fields, Slot(i));
  }

  Status Decode(std::string_view record, PurchaseEvent* out) override {
    ResetEvent(out);
    simdjson::dom::element root;
    // realloc_if_needed: the parser copies the record into its own padded buffer, which it
    // reuses across calls once large enough.
    auto error = parser_.parse(record.data(), record.size(), true).get(root);
    if (error) {
      return Status::InvalidArgument(std::string("bad JSON record (") +
                                     simdjson::error_message(error) + "): '" + Excerpt(record) +
                                     "'");
    }
    simdjson::dom::object object;
    if (root.get_object().get(object)) {
      return Status::InvalidArgument("JSON record is not an object: '" + Excerpt(record) + "'");
    }
    std::array<simdjson::dom::element, kNumSlots> values;
    std::array<bool, kNumSlots> present{};
    for (simdjson::dom::key_value_pair field : object) {
      for (int i = 0; i < kNumSlots; ++i) {
        // The first occurrence of a duplicated key wins, as with object[key].
        if (!present[i] && !keys_[i].empty() && field.key == keys_[i]) {
          values[i] = field.value;
          present[i] = true;
        }
      }
    }
    const FieldNames& f = options_.fields;
    auto text = [&](Slot slot, std::string* dst) -> Status {
      if (!present[slot]) return Status::OK();
      return JsonText(f, slot, values[slot], dst);
    };
    auto number = [&](Slot slot, std::optional<double>* dst) -> Status {
      if (!present[slot]) return Status::OK();
      return JsonNumber(f, slot, values[slot], dst);
    };
    STREAMREC_RETURN_IF_ERROR(text(kEventId, &out->event_id));
    STREAMREC_RETURN_IF_ERROR(text(kCustomerId, &out->customer_id));
    STREAMREC_RETURN_IF_ERROR(text(kItemId, &out->item_id));
    if (!present[kEventTime] || values[kEventTime].is_null()) return Missing(f, kEventTime);
    STREAMREC_RETURN_IF_ERROR(JsonTime(values[kEventTime], &out->event_time_ms));
    std::optional<double> quantity;
    STREAMREC_RETURN_IF_ERROR(number(kQuantity, &quantity));
    out->quantity = quantity.value_or(1.0);
    STREAMREC_RETURN_IF_ERROR(number(kUnitPrice, &out->unit_price));
    STREAMREC_RETURN_IF_ERROR(number(kAmount, &out->amount));
    std::optional<double> discount;
    STREAMREC_RETURN_IF_ERROR(number(kDiscount, &discount));
    out->discount = discount.value_or(0.0);
    STREAMREC_RETURN_IF_ERROR(text(kChannel, &out->channel));
    STREAMREC_RETURN_IF_ERROR(text(kCurrency, &out->currency));
    return ValidateEvent(options_, out);
  }

  const char* name() const override { return "json"; }

 private:
  // Minified JSON of `value`, for error messages.
  static std::string Shown(simdjson::dom::element value) { return simdjson::to_string(value); }

  // A text field: a string, or an integer written as digits (an MSISDN sent as a JSON number
  // stays "6281234567890"; 17850.0 becomes "17850"). null leaves *dst empty.
  static Status JsonText(const FieldNames& f, Slot slot, simdjson::dom::element value,
                         std::string* dst) {
    char buf[32];
    switch (value.type()) {
      case simdjson::dom::element_type::STRING: {
        std::string_view s;
        if (value.get_string().get(s)) break;
        dst->assign(s.data(), s.size());
        return Status::OK();
      }
      case simdjson::dom::element_type::INT64: {
        int64_t v = 0;
        if (value.get_int64().get(v)) break;
        auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
        dst->assign(buf, end);
        return Status::OK();
      }
      case simdjson::dom::element_type::UINT64: {
        uint64_t v = 0;
        if (value.get_uint64().get(v)) break;
        auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
        dst->assign(buf, end);
        return Status::OK();
      }
      case simdjson::dom::element_type::DOUBLE: {
        double v = 0;
        if (value.get_double().get(v)) break;
        // Integral and exactly representable: a float-typed id exported by e.g. pandas.
        if (std::isfinite(v) && v == std::trunc(v) && std::fabs(v) < 9007199254740992.0) {
          auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), static_cast<int64_t>(v));
          dst->assign(buf, end);
          return Status::OK();
        }
        return BadValue(f, slot, Shown(value), false, "expected a string or an integer");
      }
      case simdjson::dom::element_type::NULL_VALUE:
        dst->clear();
        return Status::OK();
      default:
        break;
    }
    return BadValue(f, slot, Shown(value), false, "expected a string or an integer");
  }

  // A numeric field: a JSON number or a numeric string ("12.5"; "" and null: absent).
  static Status JsonNumber(const FieldNames& f, Slot slot, simdjson::dom::element value,
                           std::optional<double>* dst) {
    switch (value.type()) {
      case simdjson::dom::element_type::INT64:
      case simdjson::dom::element_type::UINT64:
      case simdjson::dom::element_type::DOUBLE: {
        double v = 0;
        if (value.get_double().get(v)) break;  // converts integers too
        *dst = v;
        return Status::OK();
      }
      case simdjson::dom::element_type::STRING: {
        std::string_view s;
        if (value.get_string().get(s)) break;
        return ParseNumberText(f, slot, s, dst);
      }
      case simdjson::dom::element_type::NULL_VALUE:
        dst->reset();
        return Status::OK();
      default:
        break;
    }
    return BadValue(f, slot, Shown(value), false, "expected a number or a numeric string");
  }

  // The event time: a string parsed per timestamp_format, or an epoch number (seconds or
  // milliseconds per timestamp_format; kAuto: below 1e11 seconds, else milliseconds).
  Status JsonTime(simdjson::dom::element value, int64_t* dst) const {
    const FieldNames& f = options_.fields;
    char buf[64];
    std::string_view text;
    switch (value.type()) {
      case simdjson::dom::element_type::STRING:
        if (value.get_string().get(text)) break;
        return ParseTimeText(options_, text, dst);
      case simdjson::dom::element_type::INT64:
      case simdjson::dom::element_type::UINT64:
      case simdjson::dom::element_type::DOUBLE: {
        if (options_.timestamp_format == TimestampFormat::kIso8601) {
          return BadValue(f, kEventTime, Shown(value), false,
                          "a number, but timestamp_format is ISO-8601 text");
        }
        // Numbers go through the same text parser as numeric strings, so 1323435000 and
        // "1323435000" decode alike (integers exactly).
        std::to_chars_result r{};
        if (value.is_int64()) {
          r = std::to_chars(buf, buf + sizeof(buf), value.get_int64().value_unsafe());
        } else if (value.is_uint64()) {
          r = std::to_chars(buf, buf + sizeof(buf), value.get_uint64().value_unsafe());
        } else {
          r = std::to_chars(buf, buf + sizeof(buf), value.get_double().value_unsafe());
        }
        if (r.ec != std::errc()) break;
        return ParseTimeText(options_, std::string_view(buf, r.ptr - buf), dst);
      }
      default:
        break;
    }
    return BadValue(f, kEventTime, Shown(value), false, "expected a string or a number");
  }

  DecoderOptions options_;
  std::array<std::string, kNumSlots> keys_;  // JSON key per slot; "" = not mapped
  simdjson::dom::parser parser_;             // reused: keeps its buffers between records
};

// ---- CSV --------------------------------------------------------------------------------------

class CsvDecoder final : public Decoder {
 public:
  // columns[slot]: index of the column carrying the slot, or -1.
  CsvDecoder(const DecoderOptions& options, const std::array<int, kNumSlots>& columns)
      : options_(options), columns_(columns) {
    for (int c : columns_) min_columns_ = std::max(min_columns_, static_cast<size_t>(c + 1));
  }

  Status Decode(std::string_view record, PurchaseEvent* out) override {
    ResetEvent(out);
    STREAMREC_RETURN_IF_ERROR(SplitCsvLine(record, options_.csv_delimiter, &cells_));
    if (cells_.size() < min_columns_) {
      return Status::InvalidArgument("CSV line has " + std::to_string(cells_.size()) +
                                     " columns, expected at least " + std::to_string(min_columns_) +
                                     ": '" + Excerpt(record) + "'");
    }
    const FieldNames& f = options_.fields;
    auto cell = [this](Slot slot) -> std::string_view {
      int c = columns_[slot];
      return c < 0 ? std::string_view() : TrimSpaces(cells_[static_cast<size_t>(c)]);
    };
    out->event_id.assign(cell(kEventId));
    out->customer_id.assign(cell(kCustomerId));
    out->item_id.assign(cell(kItemId));
    STREAMREC_RETURN_IF_ERROR(ParseTimeText(options_, cell(kEventTime), &out->event_time_ms));
    std::optional<double> quantity;
    STREAMREC_RETURN_IF_ERROR(ParseNumberText(f, kQuantity, cell(kQuantity), &quantity));
    out->quantity = quantity.value_or(1.0);
    STREAMREC_RETURN_IF_ERROR(ParseNumberText(f, kUnitPrice, cell(kUnitPrice), &out->unit_price));
    STREAMREC_RETURN_IF_ERROR(ParseNumberText(f, kAmount, cell(kAmount), &out->amount));
    std::optional<double> discount;
    STREAMREC_RETURN_IF_ERROR(ParseNumberText(f, kDiscount, cell(kDiscount), &discount));
    out->discount = discount.value_or(0.0);
    out->channel.assign(cell(kChannel));
    out->currency.assign(cell(kCurrency));
    return ValidateEvent(options_, out);
  }

  const char* name() const override { return "csv"; }

 private:
  DecoderOptions options_;
  std::array<int, kNumSlots> columns_;
  size_t min_columns_ = 0;          // a line must have at least this many cells
  std::vector<std::string> cells_;  // reused between records
};

}  // namespace

Status ValidateEvent(const DecoderOptions& options, PurchaseEvent* event) {
  const FieldNames& f = options.fields;
  STREAMREC_RETURN_IF_ERROR(ValidateIds(f, event));

  if (event->event_time_ms < options.min_event_time_ms ||
      event->event_time_ms > options.max_event_time_ms) {
    return Status::InvalidArgument("event_time " + FormatIso8601(event->event_time_ms) +
                                   " out of range [" + FormatIso8601(options.min_event_time_ms) +
                                   ", " + FormatIso8601(options.max_event_time_ms) + "]" +
                                   FieldSuffix(f, kEventTime));
  }

  const double q = event->quantity;
  if (!std::isfinite(q)) return BadValue(f, kQuantity, FormatNumber(q), false, "not finite");
  if (q == 0) return BadValue(f, kQuantity, FormatNumber(q), false, "must not be 0");
  if (q < 0 && !options.allow_negative_quantity) {
    return BadValue(f, kQuantity, FormatNumber(q), false,
                    "negative (a return?); set allow_negative_quantity to accept it");
  }
  if (event->unit_price) {
    const double p = *event->unit_price;
    if (!std::isfinite(p)) return BadValue(f, kUnitPrice, FormatNumber(p), false, "not finite");
    if (p < 0) return BadValue(f, kUnitPrice, FormatNumber(p), false, "negative");
  }
  if (event->amount) {
    const double a = *event->amount;
    if (!std::isfinite(a)) return BadValue(f, kAmount, FormatNumber(a), false, "not finite");
    if (a < 0 && !options.allow_negative_quantity) {
      return BadValue(f, kAmount, FormatNumber(a), false,
                      "negative (a return?); set allow_negative_quantity to accept it");
    }
  }
  const double d = event->discount;
  if (!std::isfinite(d)) return BadValue(f, kDiscount, FormatNumber(d), false, "not finite");
  if (d < 0) return BadValue(f, kDiscount, FormatNumber(d), false, "negative");

  TrimInPlace(&event->channel);
  for (char& c : event->channel) c = ToLowerAscii(c);
  TrimInPlace(&event->currency);
  return Status::OK();
}

std::unique_ptr<Decoder> NewProtobufDecoder(const DecoderOptions& options) {
  return std::make_unique<ProtobufDecoder>(options);
}

std::unique_ptr<Decoder> NewJsonDecoder(const DecoderOptions& options) {
  return std::make_unique<JsonDecoder>(options);
}

StatusOr<std::unique_ptr<Decoder>> NewCsvDecoder(const DecoderOptions& options,
                                                 std::string_view header_line) {
  std::vector<std::string> header;
  Status split = SplitCsvLine(header_line, options.csv_delimiter, &header);
  if (!split.ok()) return Status::InvalidArgument("bad CSV header: " + split.message());
  if (!header.empty()) {
    constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";
    if (std::string_view(header[0]).substr(0, kUtf8Bom.size()) == kUtf8Bom) {
      header[0].erase(0, kUtf8Bom.size());
    }
  }
  for (std::string& column : header) TrimInPlace(&column);

  std::array<int, kNumSlots> columns;
  columns.fill(-1);
  for (int i = 0; i < kNumSlots; ++i) {
    const Slot slot = Slot(i);
    const std::string& wanted = SourceName(options.fields, slot);
    const bool required = slot == kCustomerId || slot == kItemId || slot == kEventTime;
    if (wanted.empty()) {
      if (required) {
        return Status::InvalidArgument(std::string("no CSV column configured for ") +
                                       kSlotNames[slot] + " (its field name is empty)");
      }
      continue;
    }
    // Case-sensitive match first, so "ID" and "id" can coexist; then case-insensitive.
    for (size_t c = 0; c < header.size() && columns[slot] < 0; ++c) {
      if (header[c] == wanted) columns[slot] = static_cast<int>(c);
    }
    for (size_t c = 0; c < header.size() && columns[slot] < 0; ++c) {
      if (EqualsIgnoreCase(header[c], wanted)) columns[slot] = static_cast<int>(c);
    }
    if (columns[slot] < 0 && required) {
      std::string shown(TrimSpaces(header_line).substr(0, 200));
      std::string msg = "CSV header lacks column '" + wanted + "' for " + kSlotNames[slot] +
                        "; header is: " + shown;
      if (header.size() == 1) {
        msg += " (a single column: is csv_delimiter '" + std::string(1, options.csv_delimiter) +
               "' right?)";
      }
      return Status::InvalidArgument(msg);
    }
  }
  return std::unique_ptr<Decoder>(std::make_unique<CsvDecoder>(options, columns));
}

}  // namespace streamrec
