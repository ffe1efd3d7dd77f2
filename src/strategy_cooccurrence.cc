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
        const ItemStats* stats = env.StatsOf(i);
        const double recent =
            stats != nullptr ? RecentPurchases(env, *stats, options_.popularity_half_life_days)
                             : 0.0;
        norm_b_[i] *= std::pow((recent + 0.5) / (n + 1.0), options_.cooccurrence_trend);
      }
    }
  }

  void Score(const StrategyEnv& env, const CustomerView& customer, size_t limit,
             std::vector<Candidate>* out) override {
    const RecommendIndex& index = *env.index;
    if (norm_a_.size() < index.item_count()) BeginBatch(env);
    // Query items: the customer's owned items by recency weight, at most max_query_items of them
    // (cost per list is O(query items x neighbours); the oldest items add little).
    const auto& items = customer.state->items();
    query_.clear();
    for (int k = 0; k < items.size(); ++k) {
      uint32_t i = customer.owned[k];
      if (i == kNoItem) continue;  // (Find: an item nobody holds is kNoItem)
      query_.push_back({QueryWeight(env, items[k]), i, k});
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
    // Dense accumulation: the inner loop is a multiply-add per (query item, neighbour); the
    // candidate-side normaliser, the owned filter and the reference item are applied once per
    // item afterwards (the reference only for the kept candidates).
    const size_t n = index.item_count();
    sum_.assign(n, 0.0);
    double* sum = sum_.data();
    for (const Query& q : query_) {
      const double wi = q.weight / norm_a_[q.item];
      for (const auto& [j, nij] : index.neighbours(q.item)) sum[j] += wi * nij;
      for (const auto& [j, nij] : index.remote_neighbours(q.item)) sum[j] += wi * nij;
    }
    best_.Reset(index, limit);
    for (uint32_t j = 0; j < n; ++j) {
      const double score = sum[j] * norm_b_[j];
      if (sum[j] <= 0 || !best_.MayKeep(score) || customer.Skip(env, j)) continue;
      best_.Offer(score, j);
    }
    for (const ScoredItem& r : best_.Take()) {
      Candidate c;
      c.item = r.item;
      c.score = r.score;
      out->push_back(std::move(c));
    }
  }

  std::string Explain(const StrategyEnv& env, const CustomerView& customer,
                      const Candidate& c) const override {
    // The owned item contributing most to the candidate (ties: the smaller item id), found
    // here because only the items that make the list need it.
    const RecommendIndex& index = *env.index;
    const auto& items = customer.state->items();
    uint32_t ref = kNoItem;
    double best = 0;
    for (int k = 0; k < items.size(); ++k) {
      const uint32_t i = customer.owned[k];
      if (i == kNoItem) continue;  // (Find: an item nobody holds is kNoItem)
      const uint32_t both = index.cooccurrence(i, c.item);
      if (both == 0) continue;  // contributes nothing
      // (norm_a_[i] = buyers(i)^alpha, from this batch's BeginBatch.)
      const double part = QueryWeight(env, items[k]) / norm_a_[i] * both;
      if (part > best || (part == best && part > 0 && index.item_id(i) < index.item_id(ref))) {
        best = part;
        ref = i;
      }
    }
    if (ref == kNoItem) return "bought by customers who bought what you bought";
    const double share = static_cast<double>(index.cooccurrence(ref, c.item)) / index.buyers(ref);
    return Format("bought by %.0f%% of the %u customers who bought %s, as you did", 100 * share,
                  index.buyers(ref), ItemLabel(env, index.item_id(ref)).c_str());
  }

 private:
  // How much an owned item counts: by how recently the customer bought it, never below the floor.
  double QueryWeight(const StrategyEnv& env, const v1::ItemCount& item) const {
    return options_.cooccurrence_recency_floor +
           (1 - options_.cooccurrence_recency_floor) *
               DecayFactor(env.now_ms - item.last_time_ms(),
                           options_.cooccurrence_recency_half_life_days);
  }
  struct Query {
    double weight;
    uint32_t item;
    int position;
  };
  StrategyOptions options_;
  std::vector<double> norm_a_, norm_b_;
  std::vector<Query> query_;
  std::vector<double> sum_;
  BestItems best_;
};

}  // namespace

std::unique_ptr<Strategy> NewCooccurrenceStrategy(const StrategyOptions& options) {
  return std::make_unique<CooccurrenceStrategy>(options);
}

}  // namespace streamrec
