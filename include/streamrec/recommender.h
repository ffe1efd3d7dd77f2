// Recommender: builds the ranked list of one customer. The pipeline calls BeginBatch once per
// micro-batch (after the batch's events are applied to the item statistics), then Recommend for
// each changed customer. (The blended recommendation engine replaces the popularity placeholder.)
#ifndef STREAMREC_RECOMMENDER_H_
#define STREAMREC_RECOMMENDER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "streamrec/catalog.h"
#include "streamrec/features.h"

namespace streamrec {

struct Recommendation {
  std::string item_id;
  double score = 0;
  std::string strategy;  // e.g. "popularity"
  std::string reason;    // a human sentence with numbers
};

// Global item statistics by item id (the "items" column family, held in memory).
using ItemStatsTable = std::unordered_map<std::string, ItemStats>;

struct RecommenderOptions {
  // Items per list.
  int list_length = 10;
  // Half-life of item popularity, days of event time.
  double popularity_half_life_days = 14.0;
  // Do not offer items the customer already bought.
  bool exclude_owned = true;
  // Share of customers (0..1) in the control group, by a hash of the customer id.
  double control_share = 0.05;
};

class Recommender {
 public:
  virtual ~Recommender() = default;
  // Called once per micro-batch with the statistics after the batch, at event time `now_ms`.
  virtual void BeginBatch(const ItemStatsTable& items, int64_t now_ms) = 0;
  // Appends the customer's list to *out (cleared first). Reads only what BeginBatch saw and
  // the customer's own state.
  virtual void Recommend(const CustomerState& customer, std::vector<Recommendation>* out) = 0;
};

// Placeholder until the recommendation engine: the most popular recommendable items (decayed
// purchase counts), owned items removed.
std::unique_ptr<Recommender> NewPopularityRecommender(const RecommenderOptions& options,
                                                      const Catalog* catalog);

// Deterministic control-group split: a stable hash of the customer id (FNV-1a 64) mapped to
// [0, 1) and compared with `control_share`. The same id always lands in the same group.
bool InControlGroup(std::string_view customer_id, double control_share);

// A stable hash of a list's content (item ids and strategies, in order), used to publish a list
// only when it differs from the last one published.
uint64_t ListContentHash(const std::vector<Recommendation>& items);

}  // namespace streamrec

#endif  // STREAMREC_RECOMMENDER_H_
