// Similar customers in higher-value segments: the customer's nearest exemplars by item mix (and,
// mildly, by spend) inside segments whose exemplars spend more per customer; items scored by
// similarity-weighted holdings (the telco seed's method).
#include <cmath>
#include <unordered_set>

#include "strategy_util.h"

namespace streamrec {

namespace {

class SimilarCustomersStrategy final : public Strategy {
 public:
  explicit SimilarCustomersStrategy(const StrategyOptions& options) : options_(options) {}
  const char* name() const override { return "similar"; }

  void Score(const StrategyEnv& env, const CustomerView& customer, size_t limit,
             std::vector<Candidate>* out) override {
    const RecommendIndex& index = *env.index;
    const auto& exemplars = index.exemplars();
    if (exemplars.empty() || customer.state->items_size() == 0) return;

    // Target segments: those spending more per customer than the customer's own; the own
    // segment when none does (the top segment learns from its peers).
    const RecommendIndex::SegmentStats* own = index.segment(customer.state->segment());
    const double own_value = own != nullptr ? own->spend_per_customer() : 0.0;
    targets_.clear();
    for (const auto& [name, s] : index.segments()) {
      if (s.spend_per_customer() > own_value) targets_.insert(name);
    }
    if (targets_.empty()) targets_.insert(customer.state->segment());

    // Overlap with every exemplar that shares an item, through the inverted index.
    overlap_.resize(exemplars.size());
    touched_.clear();
    size_t n_items = 0;
    for (uint32_t i : customer.owned) {
      if (i == kNoItem) continue;
      ++n_items;
      for (uint32_t slot : index.holders(i)) {
        if (overlap_[slot] == 0) touched_.push_back(slot);
        ++overlap_[slot];
      }
    }
    neighbours_.clear();
    const double spend_u = std::log1p(std::max(0.0, customer.state->total_spend()));
    for (uint32_t slot : touched_) {
      const auto& e = exemplars[slot];
      const uint32_t common = overlap_[slot];
      overlap_[slot] = 0;
      if (!e.live || e.customer_id == customer.state->customer_id()) continue;
      if (targets_.count(e.segment) == 0) continue;
      double sim = common / std::sqrt(static_cast<double>(n_items) * e.items.size());
      double spend_v = std::log1p(std::max<double>(0, e.spend_cents / 100.0));
      sim *= std::exp(-kSpendWeight * std::abs(spend_v - spend_u));
      neighbours_.push_back({sim, slot});
    }
    if (neighbours_.empty()) return;
    const size_t k = std::min<size_t>(neighbours_.size(), options_.similar_neighbours);
    auto closer = [&](const Neighbour& a, const Neighbour& b) {
      if (a.sim != b.sim) return a.sim > b.sim;
      return exemplars[a.slot].customer_id < exemplars[b.slot].customer_id;
    };
    std::partial_sort(neighbours_.begin(), neighbours_.begin() + k, neighbours_.end(), closer);
    neighbours_.resize(k);

    acc_.Reset(index.item_count());
    holders_.resize(index.item_count());
    top_segment_.resize(index.item_count());
    for (const Neighbour& n : neighbours_) {  // closest first
      for (uint32_t j : exemplars[n.slot].items) {
        if (customer.Skip(env, j)) continue;
        if (acc_[j] == 0) {
          holders_[j] = 0;
          top_segment_[j] = &exemplars[n.slot].segment;
        }
        acc_.Add(j, n.sim);
        ++holders_[j];
      }
    }
    std::vector<Candidate>& mine = scratch_;
    mine.clear();
    for (uint32_t j : acc_.touched()) {
      Candidate c;
      c.item = j;
      c.score = acc_[j];
      c.evidence[0] = static_cast<double>(holders_[j]) / k;
      c.evidence[1] = static_cast<double>(k);
      c.ref_text = *top_segment_[j];
      mine.push_back(std::move(c));
    }
    KeepBest(index, limit, &mine);
    for (Candidate& c : mine) out->push_back(std::move(c));
  }

  std::string Explain(const StrategyEnv& env, const CustomerView& customer,
                      const Candidate& c) const override {
    return Format("bought by %.0f%% of the %.0f customers most like you in %s",
                  100 * c.evidence[0], c.evidence[1],
                  c.ref_text.empty() ? "your segment" : c.ref_text.c_str());
  }

 private:
  struct Neighbour {
    double sim;
    uint32_t slot;
  };
  // How much a difference in (log) spend lowers similarity.
  static constexpr double kSpendWeight = 0.1;
  StrategyOptions options_;
  std::unordered_set<std::string> targets_;
  std::vector<uint32_t> overlap_;
  std::vector<uint32_t> touched_;
  std::vector<Neighbour> neighbours_;
  ItemAccumulator acc_;
  std::vector<uint32_t> holders_;
  std::vector<const std::string*> top_segment_;
  std::vector<Candidate> scratch_;
};

}  // namespace

std::unique_ptr<Strategy> NewSimilarCustomersStrategy(const StrategyOptions& options) {
  return std::make_unique<SimilarCustomersStrategy>(options);
}

}  // namespace streamrec
