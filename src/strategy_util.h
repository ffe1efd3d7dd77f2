// Internal helpers of the strategies (not a public header).
#ifndef STREAMREC_SRC_STRATEGY_UTIL_H_
#define STREAMREC_SRC_STRATEGY_UTIL_H_

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <string>
#include <vector>

#include "streamrec/strategy.h"

namespace streamrec {

// An item's recent purchases now: its decayed purchase count carried from its last purchase to
// the batch time (popularity, co-occurrence's trend factor).
inline double RecentPurchases(const StrategyEnv& env, const ItemStats& stats,
                              double half_life_days) {
  return stats.decayed_count() * DecayFactor(env.now_ms - stats.last_time_ms(), half_life_days);
}

// The order of candidates: score descending, then item id ascending (a total order that does
// not depend on dense ids or hash-table order, so which items are kept does not depend on the
// order they were scored in).
template <typename Entry>
bool RanksBefore(const RecommendIndex& index, const Entry& a, const Entry& b) {
  if (a.score != b.score) return a.score > b.score;
  return index.item_id(a.item) < index.item_id(b.item);
}

// Keeps the `limit` best candidates of *c (RanksBefore), best first.
inline void KeepBest(const RecommendIndex& index, size_t limit, std::vector<Candidate>* c) {
  auto better = [&](const Candidate& a, const Candidate& b) { return RanksBefore(index, a, b); };
  if (c->size() > limit) {
    std::nth_element(c->begin(), c->begin() + limit, c->end(), better);
    c->resize(limit);
  }
  std::sort(c->begin(), c->end(), better);
}

// An item kept by BestItems. `aux` is the strategy's own (e.g. a model index).
struct ScoredItem {
  double score;
  uint32_t item;
  uint32_t aux;
};

// The `limit` best of a stream of scored items (RanksBefore), without storing the others: a
// heap of the kept items with the worst on top, so that strategies scoring thousands of items
// pay one well-predicted comparison for most of them, and build full Candidates (evidence,
// reference text) only for the kept ones.
class BestItems {
 public:
  // Starts a stream keeping at most `limit` items, ranked by `index`'s item ids.
  void Reset(const RecommendIndex& index, size_t limit) {
    index_ = &index;
    limit_ = limit;
    heap_.clear();
  }
  // False when an item scoring `score` would not be kept, whatever its id: a cheap test to make
  // before the others an item must pass.
  bool MayKeep(double score) const {
    return heap_.size() < limit_ || (limit_ > 0 && score >= heap_.front().score);
  }
  // Offers an item (at most once per stream).
  void Offer(double score, uint32_t item, uint32_t aux = 0) {
    const ScoredItem x{score, item, aux};
    if (heap_.size() < limit_) {
      heap_.push_back(x);
      std::push_heap(heap_.begin(), heap_.end(), Better{index_});
    } else if (limit_ > 0 && Better{index_}(x, heap_.front())) {
      std::pop_heap(heap_.begin(), heap_.end(), Better{index_});
      heap_.back() = x;
      std::push_heap(heap_.begin(), heap_.end(), Better{index_});
    }
  }
  // The kept items, best first. Ends the stream (Reset before offering again).
  const std::vector<ScoredItem>& Take() {
    std::sort_heap(heap_.begin(), heap_.end(), Better{index_});
    return heap_;
  }

 private:
  struct Better {
    const RecommendIndex* index;
    bool operator()(const ScoredItem& a, const ScoredItem& b) const {
      return RanksBefore(*index, a, b);
    }
  };
  const RecommendIndex* index_ = nullptr;
  size_t limit_ = 0;
  std::vector<ScoredItem> heap_;
};

// A dense accumulator over item ids with a list of touched entries (reset in O(touched)).
class ItemAccumulator {
 public:
  void Reset(size_t items) {
    for (uint32_t i : touched_) score_[i] = 0;
    touched_.clear();
    if (score_.size() < items) score_.resize(items, 0.0);
  }
  void Add(uint32_t item, double v) {
    if (score_[item] == 0) touched_.push_back(item);
    score_[item] += v;
  }
  double& operator[](uint32_t item) { return score_[item]; }
  const std::vector<uint32_t>& touched() const { return touched_; }

 private:
  std::vector<double> score_;
  std::vector<uint32_t> touched_;
};

// An item as a person reads it: the catalogue name when there is one, else the id.
inline const std::string& ItemLabel(const StrategyEnv& env, const std::string& item_id) {
  if (env.catalog != nullptr) {
    const CatalogItem* item = env.catalog->Find(item_id);
    if (item != nullptr && !item->name.empty()) return item->name;
  }
  return item_id;
}

inline std::string Format(const char* fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  return buf;
}

// "12 days", "3 hours", "1 day".
inline std::string FormatDays(double days) {
  if (days < 1) return Format("%.0f hours", std::max(1.0, days * 24));
  if (days < 1.5) return "1 day";
  return Format("%.0f days", days);
}

}  // namespace streamrec

#endif  // STREAMREC_SRC_STRATEGY_UTIL_H_
