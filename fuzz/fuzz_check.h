// What the decoder fuzz targets check beyond "no crash, no sanitizer report": the promises of
// streamrec/decoder.h about a decoded event and about errors.
#ifndef STREAMREC_FUZZ_FUZZ_CHECK_H_
#define STREAMREC_FUZZ_FUZZ_CHECK_H_

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "streamrec/decoder.h"
#include "streamrec/event.h"
#include "streamrec/status.h"

namespace streamrec::fuzz {

// Aborts (a libFuzzer crash, with the input saved) when `ok` is false.
inline void Check(bool ok, const char* what, const std::string& detail = "") {
  if (ok) return;
  std::fprintf(stderr, "fuzz check failed: %s %s\n", what, detail.c_str());
  std::abort();
}

inline bool Trimmed(const std::string& s) {
  auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
  };
  return s.empty() || (!space(s.front()) && !space(s.back()));
}

// After Decode: an error has a message; a decoded event holds the invariants ValidateEvent
// enforces (ids present and trimmed, time in range, finite sane numbers, channel lower case),
// and ValidateEvent accepts it again unchanged.
inline void CheckDecoded(const DecoderOptions& options, const Status& status,
                         const PurchaseEvent& e) {
  if (!status.ok()) {
    Check(status.IsInvalidArgument(), "decode error is not InvalidArgument", status.ToString());
    Check(!status.message().empty(), "decode error without a message");
    return;
  }
  Check(!e.customer_id.empty() && Trimmed(e.customer_id), "customer_id", e.customer_id);
  Check(!e.item_id.empty() && Trimmed(e.item_id), "item_id", e.item_id);
  Check(Trimmed(e.event_id), "event_id not trimmed", e.event_id);
  Check(e.event_time_ms >= options.min_event_time_ms && e.event_time_ms <= options.max_event_time_ms,
        "event_time out of range", std::to_string(e.event_time_ms));
  Check(std::isfinite(e.quantity) && e.quantity != 0, "quantity");
  Check(e.quantity > 0 || options.allow_negative_quantity, "negative quantity accepted");
  Check(!e.unit_price || (std::isfinite(*e.unit_price) && *e.unit_price >= 0), "unit_price");
  Check(!e.amount || std::isfinite(*e.amount), "amount not finite");
  Check(!e.amount || *e.amount >= 0 || options.allow_negative_quantity, "negative amount");
  Check(std::isfinite(e.discount) && e.discount >= 0, "discount");
  for (char c : e.channel) Check(!(c >= 'A' && c <= 'Z'), "channel not lower case", e.channel);
  Check(Trimmed(e.channel) && Trimmed(e.currency), "channel/currency not trimmed");
  PurchaseEvent again = e;
  Status revalidated = ValidateEvent(options, &again);
  Check(revalidated.ok(), "ValidateEvent rejects a decoded event", revalidated.ToString());
  Check(again.channel == e.channel && again.customer_id == e.customer_id &&
            again.item_id == e.item_id && again.currency == e.currency,
        "ValidateEvent is not idempotent");
}

}  // namespace streamrec::fuzz

#endif  // STREAMREC_FUZZ_FUZZ_CHECK_H_
