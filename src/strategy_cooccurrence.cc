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

  void BeginBatch(const StrategyEnv& env) override {
    // n^a and n^(1-a) of every item once per batch, not once per (customer, neighbour); the
    // trend factor (recent purchases / buyers)^trend folds into the candidate side.
    const RecommendIndex& index = *env.index;
    const double a = options_.cooccurrence_alpha;
    norm_a_.resize(index.item_count());
    norm_b_.resize(index.item_count());
    for (uint32_t i = 0; i < index.item_count(); ++i) {
      const double n = index.buyers(i);
      norm_a_[i] = n > 0 ? std::pow(n, a) : 0.0;
      norm_b_[i] = n > 0 ? 1.0 / std::pow(n, 1 - a) : 0.0;
      if (options_.cooccurrence_trend > 0 && n > 0) {
        double recent = 0;
        auto it = env.stats->find(index.item_id(i));
        if (it != env.stats->end()) {
          recent = it->second.decayed_count() *
                   DecayFactor(env.now_ms - it->second.last_time_ms(),
                               options_.popularity_half_life_days);
        }
        norm_b_[i] *= std::pow((recent + 0.5) / (n + 1.0), options_.cooccurrence_trend);
      }
    }
  }

  void Score(const StrategyEnv& env, const CustomerView& customer, size_t limit,
             std::vector<Candidate>* out) override {
    const RecommendIndex& index = *env.index;
    if (norm_a_.size() < index.item_count()) BeginBatch(env);
    acc_.Reset(index.item_count());
    best_ref_.resize(index.item_count());
    best_part_.resize(index.item_count());
    // Query items: the customer's owned items by recency weight, at most max_query_items of them
    // (cost per list is O(query items x neighbours); the oldest items add little).
    const auto& items = customer.state->items();
    query_.clear();
    for (int k = 0; k < items.size(); ++k) {
      uint32_t i = customer.owned[k];
      if (i == kNoItem || index.buyers(i) == 0) continue;
      double w = options_.cooccurrence_recency_floor +
                 (1 - options_.cooccurrence_recency_floor) *
                     DecayFactor(env.now_ms - items[k].last_time_ms(),
                                 options_.cooccurrence_recency_half_life_days);
      query_.push_back({w, i, k});
    }
    const size_t max_query = static_cast<size_t>(std::max(1, options_.cooccurrence_max_query_items));
    if (query_.size() > max_query) {
      auto heavier = [&](const Query& x, const Query& y) {
        if (x.weight != y.weight) return x.weight > y.weight;
        return x.position < y.position;  // table order = item id order
      };
      std::nth_element(query_.begin(), query_.begin() + max_query, query_.end(), heavier);
      query_.resize(max_query);
      std::sort(query_.begin(), query_.end(),
                [](const Query& x, const Query& y) { return x.position < y.position; });
    }
    for (const Query& q : query_) {
      const uint32_t i = q.item;
      const double wi = q.weight / norm_a_[i];
      for (const auto& [j, nij] : index.neighbours(i)) {
        if (customer.Skip(env, j)) continue;
        const double part = wi * nij * norm_b_[j];
        const bool fresh = acc_[j] == 0;
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
  struct Query {
    double weight;
    uint32_t item;
    int position;
  };
  StrategyOptions options_;
  std::vector<double> norm_a_, norm_b_;
  std::vector<Query> query_;
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
