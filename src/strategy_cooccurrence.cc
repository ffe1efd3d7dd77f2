// Item-to-item co-occurrence: customers who hold X also hold Y, normalised, each owned item
// weighted by how recently the customer bought it.
#include <cmath>

#include "strategy_util.h"

namespace streamrec {

namespace {

class CooccurrenceStrategy final : public Strategy {
 public:
  explicit CooccurrenceStrategy(const StrategyOptions& options) : options_(options) {}
  const char* name() const override { return "cooccurrence"; }

  void Score(const StrategyEnv& env, const CustomerView& customer, size_t limit,
             std::vector<Candidate>* out) override {
    const RecommendIndex& index = *env.index;
    acc_.Reset(index.item_count());
    best_ref_.resize(index.item_count());
    best_part_.resize(index.item_count());
    const double a = options_.cooccurrence_alpha;
    const auto& items = customer.state->items();
    for (int k = 0; k < items.size(); ++k) {
      uint32_t i = customer.owned[k];
      if (i == kNoItem || index.buyers(i) == 0) continue;
      double w = options_.cooccurrence_recency_floor +
                 (1 - options_.cooccurrence_recency_floor) *
                     DecayFactor(env.now_ms - items[k].last_time_ms(),
                                 options_.cooccurrence_recency_half_life_days);
      double ni = std::pow(static_cast<double>(index.buyers(i)), a);
      for (const auto& [j, nij] : index.neighbours(i)) {
        double nj = std::pow(static_cast<double>(index.buyers(j)), 1 - a);
        double part = w * nij / (ni * nj);
        bool fresh = acc_[j] == 0;
        acc_.Add(j, part);
        if (fresh || part > best_part_[j] ||
            (part == best_part_[j] && index.item_id(i) < index.item_id(best_ref_[j]))) {
          best_part_[j] = part;
          best_ref_[j] = i;
        }
      }
    }
    std::vector<Candidate>& mine = scratch_;
    mine.clear();
    for (uint32_t j : acc_.touched()) {
      Candidate c;
      c.item = j;
      c.score = acc_[j];
      c.ref = best_ref_[j];
      mine.push_back(c);
    }
    KeepBest(index, limit, &mine);
    for (Candidate& c : mine) {
      c.evidence[0] = static_cast<double>(index.cooccurrence(c.ref, c.item)) /
                      std::max<uint32_t>(1, index.buyers(c.ref));
      c.evidence[1] = index.buyers(c.ref);
      out->push_back(std::move(c));
    }
  }

  std::string Explain(const StrategyEnv& env, const CustomerView& customer,
                      const Candidate& c) const override {
    return Format("bought by %.0f%% of the %.0f customers who bought %s, as you did",
                  100 * c.evidence[0], c.evidence[1], ItemLabel(env, env.index->item_id(c.ref)).c_str());
  }

 private:
  StrategyOptions options_;
  ItemAccumulator acc_;
  std::vector<uint32_t> best_ref_;
  std::vector<double> best_part_;
  std::vector<Candidate> scratch_;
};

}  // namespace

std::unique_ptr<Strategy> NewCooccurrenceStrategy(const StrategyOptions& options) {
  return std::make_unique<CooccurrenceStrategy>(options);
}

}  // namespace streamrec
