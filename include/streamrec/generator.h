// Synthetic telco feed: data-package purchases of a mobile operator's subscribers, drawn from a
// few behaviour personas, so that segmentation finds real structure. Deterministic for a seed.
#ifndef STREAMREC_GENERATOR_H_
#define STREAMREC_GENERATOR_H_

#include <cstdint>
#include <functional>
#include <string>

#include "streamrec/catalog.h"
#include "streamrec/status.h"

namespace streamrec {

struct TelcoGeneratorOptions {
  uint64_t customers = 10000;  // distinct subscribers (MSISDNs)
  uint64_t events = 100000;    // purchase events to write (exactly this many)
  uint64_t seed = 42;          // same seed, same options -> byte-identical output
  // Event time of the feed's start, ms since epoch (default 2026-01-01T00:00:00Z).
  int64_t start_time_ms = 1767225600000LL;
  // Only used to scale the catalogue; the generator always writes the same core packages.
  int catalog_size = 60;
};

// Called every ~100k events with (events written, events total).
using GeneratorProgress = std::function<void(uint64_t, uint64_t)>;

// The package catalogue the generator sells from (deterministic; depends on options only).
Catalog TelcoCatalog(const TelcoGeneratorOptions& options);

// Writes `options.events` purchases, in event-time order, to `events_path` as canonical CSV
// (customer_id,item_id,timestamp,quantity,unit_price,amount,channel,discount,event_id; gzip
// when the path ends in .gz) and the catalogue to `catalog_path` (Catalog::WriteCsv format).
// Memory is O(customers), not O(events).
Status GenerateTelcoFeed(const TelcoGeneratorOptions& options, const std::string& events_path,
                         const std::string& catalog_path,
                         const GeneratorProgress& progress = nullptr);

}  // namespace streamrec

#endif  // STREAMREC_GENERATOR_H_
