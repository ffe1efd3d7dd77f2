// Per-customer features, maintained incrementally: every update is O(1) in the number of past
// events (the per-customer item, channel and service-type tables are bounded by FeatureOptions).
// The state itself is the protobuf message streamrec.v1.CustomerState (proto/streamrec/v1/
// state.proto), which is also its RocksDB encoding.
#ifndef STREAMREC_FEATURES_H_
#define STREAMREC_FEATURES_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "streamrec/catalog.h"
#include "streamrec/event.h"
#include "streamrec/status.h"
#include "streamrec/v1/state.pb.h"

namespace streamrec {

using CustomerState = v1::CustomerState;
using ItemStats = v1::ItemStats;

struct FeatureOptions {
  // Per-customer item table bound. When full, the entry with the fewest purchases (oldest on a
  // tie) is dropped to make room. Larger: better re-offer/ownership recall, bigger state.
  int max_items_per_customer = 64;
  // Bound of the channel and service-type count tables (distinct values kept per customer).
  int max_channels = 16;
  int max_service_types = 16;
  // Half-life of decayed spend, in days of event time.
  double spend_half_life_days = 30.0;
  // Half-life of an item's decayed purchase count (ItemStats.decayed_count, its recent
  // popularity), in days of event time. LoadConfig sets it from recommend.popularity_half_life_days
  // so the stored counts decay as fast as the rankings that read them assume.
  double item_half_life_days = 14.0;
};

// A customer nobody has seen yet: cluster -1, zero counts.
CustomerState NewCustomerState(std::string_view customer_id);

// Applies one validated event to `state`. `item` is the catalogue entry of the event's item, or
// nullptr when the item is unknown (then no service type is counted). Pure: depends on the
// arguments only. Out-of-order events (older than the last seen) are folded in correctly for
// totals and counts; gaps are counted between baskets as they arrive.
void ApplyEvent(const FeatureOptions& options, const PurchaseEvent& event, const CatalogItem* item,
                CustomerState* state);

// Applies one event to the global statistics of its item (`stats.item_id` must match).
// `new_buyer` says the customer had not bought this item before.
void ApplyItemEvent(const FeatureOptions& options, const PurchaseEvent& event, bool new_buyer,
                    ItemStats* stats);

// Adds the statistics of one item over some purchases (`part`, e.g. one input partition's) to
// `total` (the same item over other purchases): counts, quantities, revenue and buyers add up
// (a customer lives in one partition, so buyers of different partitions are distinct); the
// decayed counts are decayed to the later of the two last times and added; the last price is
// the one seen last (`total`'s on a tie). Folding the partitions of an item in one order gives
// the statistics of all its purchases, up to floating-point rounding of the decayed count.
void MergeItemStats(const FeatureOptions& options, const ItemStats& part, ItemStats* total);

// Exponential decay factor for `elapsed_ms` of event time at the given half-life (1 for <= 0).
double DecayFactor(int64_t elapsed_ms, double half_life_days);

// Decayed spend of `state` seen at event time `now_ms`.
double DecayedSpendAt(const CustomerState& state, int64_t now_ms, double half_life_days);

// nullptr when the customer has no entry for `item_id` (never bought, or evicted by the bound).
const v1::ItemCount* FindItem(const CustomerState& state, std::string_view item_id);

// Which of the customer's 64 most recent baskets held the item: bit j is basket
// purchase_count - j (bit 0: the latest basket). 0 when unknown (an entry written before baskets
// were tracked) or when the item was last bought more than 64 baskets ago.
uint64_t RecentBaskets(const CustomerState& state, const v1::ItemCount& item);

// Derived figures used by models and reports.
struct DerivedFeatures {
  double recency_days = 0;       // now - last purchase
  double frequency = 0;          // baskets
  double monetary = 0;           // total spend
  double avg_spend = 0;          // spend per basket
  double avg_discount = 0;       // discount / (spend + discount)
  double mean_gap_days = 0;      // mean days between baskets (0 with one basket)
  double tenure_days = 0;        // last purchase - first purchase
};
DerivedFeatures Derive(const CustomerState& state, int64_t now_ms);

// Encoding of states in the store: one format byte, then the protobuf. Decoding a value of
// another format version fails with NotSupported naming both versions.
constexpr uint8_t kStateFormatVersion = 1;
std::string EncodeState(const google::protobuf::MessageLite& message);
Status DecodeState(std::string_view bytes, google::protobuf::MessageLite* message);

}  // namespace streamrec

#endif  // STREAMREC_FEATURES_H_
