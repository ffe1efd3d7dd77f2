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

// Keeps the `limit` best candidates of *c: score descending, then item id ascending (a total
// order that does not depend on dense ids or hash-table order).
inline void KeepBest(const RecommendIndex& index, size_t limit, std::vector<Candidate>* c) {
  auto better = [&](const Candidate& a, const Candidate& b) {
    if (a.score != b.score) return a.score > b.score;
    return index.item_id(a.item) < index.item_id(b.item);
  };
  if (c->size() > limit) {
    std::nth_element(c->begin(), c->begin() + limit, c->end(), better);
    c->resize(limit);
  }
  std::sort(c->begin(), c->end(), better);
}

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
