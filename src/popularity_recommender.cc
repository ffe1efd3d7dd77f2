#include <algorithm>
#include <cmath>
#include <cstdio>

#include "streamrec/recommend_index.h"
#include "streamrec/recommender.h"

namespace streamrec {

namespace {

uint64_t Fnv1a64(std::string_view bytes, uint64_t h = 1469598103934665603ULL) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

class PopularityRecommender : public Recommender {
 public:
  PopularityRecommender(const RecommenderOptions& options, const Catalog* catalog)
      : options_(options), catalog_(catalog) {}

  void BeginBatch(const ItemStatsTable& items, int64_t now_ms) override {
    // Keep enough candidates that removing the customer's owned items still fills a list.
    const size_t keep = static_cast<size_t>(options_.list_length) * 8 + 64;
    ranked_.clear();
    for (const auto& [id, stats] : items) {
      if (catalog_ != nullptr) {
        const CatalogItem* item = catalog_->Find(id);
        if (item != nullptr && !item->recommendable) continue;
      }
      double score = stats.decayed_count() *
                     DecayFactor(now_ms - stats.last_time_ms(), options_.popularity_half_life_days);
      ranked_.push_back({&id, score});
    }
    // A total order (score, then id), and the normalising sum taken in that order: the result
    // must not depend on the hash table's iteration order, which differs between a table built
    // incrementally and one loaded from the store after a restart.
    std::sort(ranked_.begin(), ranked_.end(), [](const Ranked& a, const Ranked& b) {
      return a.score > b.score || (a.score == b.score && *a.id < *b.id);
    });
    total_decayed_ = 0;
    for (const Ranked& r : ranked_) total_decayed_ += r.score;
    if (ranked_.size() > keep) ranked_.resize(keep);
  }

  void Recommend(const CustomerState& customer, std::vector<Recommendation>* out) override {
    out->clear();
    for (const Ranked& r : ranked_) {
      if (static_cast<int>(out->size()) >= options_.list_length) break;
      if (options_.exclude_owned && FindItem(customer, *r.id) != nullptr) continue;
      Recommendation rec;
      rec.item_id = *r.id;
      rec.score = total_decayed_ > 0 ? r.score / total_decayed_ : 0;
      rec.strategy = "popularity";
      char reason[160];
      std::snprintf(reason, sizeof(reason),
                    "popular now: %.1f%% of recent purchases (half-life %.0f days)",
                    100.0 * rec.score, options_.popularity_half_life_days);
      rec.reason = reason;
      out->push_back(std::move(rec));
    }
  }

 private:
  struct Ranked {
    const std::string* id;  // points into the ItemStatsTable given to BeginBatch
    double score;
  };
  RecommenderOptions options_;
  const Catalog* catalog_;
  std::vector<Ranked> ranked_;
  double total_decayed_ = 0;
};

}  // namespace

std::unique_ptr<Recommender> NewPopularityRecommender(const RecommenderOptions& options,
                                                      const Catalog* catalog) {
  return std::make_unique<PopularityRecommender>(options, catalog);
}

bool InControlGroup(std::string_view customer_id, double control_share) {
  if (control_share <= 0) return false;
  if (control_share >= 1) return true;
  return UniformHash(customer_id, "control") < control_share;
}

uint64_t ListContentHash(const std::vector<Recommendation>& items) {
  uint64_t h = 1469598103934665603ULL;
  for (const auto& item : items) {
    h = Fnv1a64(item.item_id, h);
    h = Fnv1a64(std::string_view("\x1f", 1), h);
    h = Fnv1a64(item.strategy, h);
    h = Fnv1a64(std::string_view("\x1e", 1), h);
  }
  return h;
}

}  // namespace streamrec
