// PurchaseEvent: the decoded form of one purchase line, whatever its wire format.
#ifndef STREAMREC_EVENT_H_
#define STREAMREC_EVENT_H_

#include <cstdint>
#include <optional>
#include <string>

namespace streamrec {

struct PurchaseEvent {
  std::string event_id;      // may be empty
  std::string customer_id;   // never empty after a successful decode
  std::string item_id;       // never empty after a successful decode
  int64_t event_time_ms = 0; // UTC milliseconds since the epoch
  double quantity = 1.0;
  std::optional<double> unit_price;  // nullopt: the source sent no price
  std::optional<double> amount;      // nullopt: derived as quantity*unit_price-discount if priced
  double discount = 0.0;
  std::string channel;       // lower-cased; may be empty
  std::string currency;

  // True when the event carries money (a price or an amount).
  bool priced() const { return amount.has_value() || unit_price.has_value(); }
  // The amount paid: `amount` when given, else quantity*unit_price-discount, else 0.
  double PaidAmount() const {
    if (amount) return *amount;
    if (unit_price) return quantity * *unit_price - discount;
    return 0.0;
  }
};

}  // namespace streamrec

#endif  // STREAMREC_EVENT_H_
