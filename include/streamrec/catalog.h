// Catalog: what can be sold — telco data packages or retail products — and their attributes.
#ifndef STREAMREC_CATALOG_H_
#define STREAMREC_CATALOG_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "streamrec/status.h"

namespace streamrec {

enum class Charging { kUnknown, kOneTime, kRecurring };

struct CatalogItem {
  std::string item_id;            // package code / SKU
  std::string name;               // human name, may be empty
  std::string service_type;       // telco: normal_internet, social, streaming, gaming, roaming;
                                  // retail: category. Empty when unknown.
  double max_speed_mbps = 0;      // telco; 0 = not applicable
  double min_speed_mbps = 0;
  double quota_mb = 0;            // 0 = unlimited or not applicable
  double price = 0;               // list price; 0 = unknown
  Charging charging = Charging::kUnknown;
  int validity_days = 0;          // 0 = not applicable
  std::vector<std::string> channels;  // channels it may be offered on; empty = all
  bool recommendable = true;      // false: postage, adjustments, fees — never offered
  // Offered only in [active_from_ms, active_to_ms) of event time; 0 = open on that side.
  int64_t active_from_ms = 0;
  int64_t active_to_ms = 0;

  bool ActiveAt(int64_t t_ms) const {
    return (active_from_ms == 0 || t_ms >= active_from_ms) &&
           (active_to_ms == 0 || t_ms < active_to_ms);
  }
};

// An immutable-after-load item table. Thread-compatible.
class Catalog {
 public:
  // Loads a catalogue CSV with a header row. Recognised columns (any order, all but item_id
  // optional): item_id, name|description, service_type|category, max_speed_mbps,
  // min_speed_mbps, quota_mb, price, charging (one_time|recurring), validity_days,
  // channels ('|'-separated), non_product (1 = not recommendable), recommendable (0|1),
  // active_from, active_to (ISO-8601 date or time; the offer window).
  // Errors name the file, line and column.
  static StatusOr<Catalog> LoadCsv(const std::string& path);

  // Writes the catalogue in the format LoadCsv reads.
  Status WriteCsv(const std::string& path) const;

  void Add(CatalogItem item);
  // nullptr when unknown.
  const CatalogItem* Find(std::string_view item_id) const;
  size_t size() const { return items_.size(); }
  const std::vector<CatalogItem>& items() const { return items_; }

 private:
  std::vector<CatalogItem> items_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace streamrec

#endif  // STREAMREC_CATALOG_H_
