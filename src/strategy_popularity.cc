// Popularity: recent (decayed) purchase counts, tilted toward what the customer's segment holds.
#include <cmath>
#include <unordered_map>

#include "strategy_util.h"

namespace streamrec {

namespace {

class PopularityStrategy final : public Strategy {
 public:
  explicit PopularityStrategy(const StrategyOptions& options) : options_(options) {}
  const char* name() const override { return "popularity"; }

  void BeginBatch(const StrategyEnv& env) override {
    rankings_.clear();
    ranked_.clear();
    total_ = 0;
    for (uint32_t item = 0; item < env.index->item_count(); ++item) {
      const ItemStats* stats = env.StatsOf(item);
      // (An item nobody holds any more is unknown, as RecommendIndex::Find says.)
      if (stats == nullptr || env.index->buyers(item) == 0) continue;
      const CatalogItem* cat = env.CatalogItemOf(item);
      if (cat != nullptr && !cat->recommendable) continue;
      double score = RecentPurchases(env, *stats, options_.popularity_half_life_days);
      if (score <= 0) continue;
      Candidate c;
      c.item = item;
      c.score = score;
      ranked_.push_back(c);
    }
    // Sum in a fixed order so the shares do not depend on hash-table order.
    KeepBest(*env.index, ranked_.size(), &ranked_);
    for (const Candidate& c : ranked_) total_ += c.score;
    if (ranked_.size() > kPool) ranked_.resize(kPool);
    // The panel and each pooled item's holders over all segments, once per batch.
    panel_ = 0;
    for (const auto& [name, s] : env.index->segments()) panel_ += s.exemplars;
    panel_holders_.assign(ranked_.size(), 0);
    for (size_t r = 0; r < ranked_.size(); ++r) {
      for (const auto& [name, s] : env.index->segments()) {
        panel_holders_[r] += s.holders_of(ranked_[r].item);
      }
    }
  }

  void Score(const StrategyEnv& env, const CustomerView& customer, size_t limit,
             std::vector<Candidate>* out) override {
    if (total_ <= 0) return;
    const RecommendIndex::SegmentStats* seg =
        options_.popularity_segment_tilt > 0 ? env.index->segment(customer.state->segment())
                                             : nullptr;
    if (seg != nullptr && seg->exemplars < kMinSegmentExemplars) seg = nullptr;
    // The best `limit` of the segment's ranking that the customer may be offered: the same as
    // ranking the customer's pool, which is that ranking without the skipped items.
    size_t taken = 0;
    for (const Candidate& c : RankingFor(env, seg, customer.state->segment())) {
      if (taken == limit) break;
      if (customer.Skip(env, c.item)) continue;
      out->push_back(c);
      ++taken;
    }
  }

  std::string Explain(const StrategyEnv& env, const CustomerView& customer,
                      const Candidate& c) const override {
    if (!c.ref_text.empty()) {
      return Format("popular now: %.1f%% of recent purchases; held by %.0f%% of %s customers",
                    100 * c.evidence[0], 100 * c.evidence[1], c.ref_text.c_str());
    }
    return Format("popular now: %.1f%% of recent purchases (half-life %.0f days)",
                  100 * c.evidence[0], options_.popularity_half_life_days);
  }

 private:
  // The pool scored for customers of segment `seg` (nullptr: no tilt), best first (KeepBest
  // order). A customer's candidates depend on the segment only, so each segment's ranking is
  // built on its first list of the batch.
  const std::vector<Candidate>& RankingFor(const StrategyEnv& env,
                                           const RecommendIndex::SegmentStats* seg,
                                           const std::string& segment_name) {
    auto [it, inserted] = rankings_.try_emplace(seg);
    std::vector<Candidate>& ranking = it->second;
    if (!inserted) return ranking;
    ranking.reserve(ranked_.size());
    for (size_t k = 0; k < ranked_.size(); ++k) {
      const Candidate& r = ranked_[k];
      Candidate c = r;
      c.evidence[0] = r.score / total_;  // share of recent purchases
      c.score = c.evidence[0];
      if (seg != nullptr && panel_ > 0) {
        // Segment share over panel share of holders, damped; > 1 when the segment favours it.
        double in_segment = (seg->holders_of(r.item) + 1.0) / (seg->exemplars + 1.0);
        double overall = (panel_holders_[k] + 1.0) / (panel_ + 1.0);
        c.score *= std::pow(in_segment / overall, options_.popularity_segment_tilt);
        c.evidence[1] = static_cast<double>(seg->holders_of(r.item)) / seg->exemplars;
        c.ref_text = segment_name;
      }
      ranking.push_back(std::move(c));
    }
    KeepBest(*env.index, ranking.size(), &ranking);
    return ranking;
  }

  static constexpr size_t kPool = 400;
  static constexpr uint64_t kMinSegmentExemplars = 20;
  StrategyOptions options_;
  std::vector<Candidate> ranked_;
  std::vector<uint32_t> panel_holders_;  // parallel to ranked_
  uint64_t panel_ = 0;
  double total_ = 0;
  // RankingFor's rankings of this batch, by segment (nullptr: untilted).
  std::unordered_map<const RecommendIndex::SegmentStats*, std::vector<Candidate>> rankings_;
};

}  // namespace

std::unique_ptr<Strategy> NewPopularityStrategy(const StrategyOptions& options) {
  return std::make_unique<PopularityStrategy>(options);
}

}  // namespace streamrec
