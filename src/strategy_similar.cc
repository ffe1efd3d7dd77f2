// Similar customers in higher-value segments: the customer's nearest exemplars by item mix (and,
// mildly, by spend) inside segments whose exemplars spend more per customer; items scored by
// similarity-weighted holdings (the telco seed's method).
#include <algorithm>
#include <cmath>

#include "strategy_util.h"

namespace streamrec {

namespace {

class SimilarCustomersStrategy final : public Strategy {
 public:
  explicit SimilarCustomersStrategy(const StrategyOptions& options) : options_(options) {}
  const char* name() const override { return "similar"; }

  // What the similarity needs of each exemplar, once per batch (the panel does not change
  // within one) and packed, so that the thousands of exemplars a list touches are not each a
  // cache miss into the index.
  void BeginBatch(const StrategyEnv& env) override {
    const auto& exemplars = env.index->exemplars();
    panel_.resize(exemplars.size());
    for (size_t slot = 0; slot < exemplars.size(); ++slot) {
      const auto& e = exemplars[slot];
      panel_[slot].segment = e.live ? env.index->segment(e.segment) : nullptr;
      panel_[slot].segment_value =
          panel_[slot].segment != nullptr ? panel_[slot].segment->spend_per_customer() : 0.0;
      panel_[slot].items = static_cast<double>(e.items.size());
      panel_[slot].log_spend = std::log1p(std::max<double>(0, e.spend_cents / 100.0));
    }
  }

  void Score(const StrategyEnv& env, const CustomerView& customer, size_t limit,
             std::vector<Candidate>* out) override {
    const RecommendIndex& index = *env.index;
    const auto& exemplars = index.exemplars();
    if (exemplars.empty() || customer.state->items_size() == 0) return;
    if (panel_.size() != exemplars.size()) BeginBatch(env);

    // Target segments: those spending more per customer than the customer's own; the own
    // segment when none does (the top segment learns from its peers).
    const RecommendIndex::SegmentStats* own = index.segment(customer.state->segment());
    const double own_value = own != nullptr ? own->spend_per_customer() : 0.0;
    bool any_higher = false;
    for (const auto& [name, s] : index.segments()) {
      if (s.spend_per_customer() > own_value) any_higher = true;
    }
    // Whether a live exemplar is in a target segment (its segment is always one of
    // index.segments(), so an own segment without exemplars, own == nullptr, matches none).
    auto is_target = [&](const PanelEntry& e) {
      return any_higher ? e.segment_value > own_value : e.segment == own;
    };
    // The customer's own panel entry is not a neighbour.
    const uint32_t self = index.ExemplarSlot(customer.state->customer_id());

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
      const PanelEntry& e = panel_[slot];
      const uint32_t common = overlap_[slot];
      overlap_[slot] = 0;
      if (e.segment == nullptr || !is_target(e) || slot == self) continue;  // (null: not live)
      double sim = common / std::sqrt(static_cast<double>(n_items) * e.items);
      sim *= std::exp(-kSpendWeight * std::abs(e.log_spend - spend_u));
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
    best_.Reset(index, limit);
    for (uint32_t j : acc_.touched()) best_.Offer(acc_[j], j);
    for (const ScoredItem& r : best_.Take()) {
      Candidate c;
      c.item = r.item;
      c.score = r.score;
      c.evidence[0] = static_cast<double>(holders_[r.item]) / k;
      c.evidence[1] = static_cast<double>(k);
      c.ref_text = *top_segment_[r.item];
      out->push_back(std::move(c));
    }
  }

  std::string Explain(const StrategyEnv& env, const CustomerView& customer,
                      const Candidate& c) const override {
    const char* segment = c.ref_text.empty() ? "your segment" : c.ref_text.c_str();
    if (c.evidence[1] <= 1) {
      return Format("bought by the customer most like you in %s", segment);
    }
    return Format("bought by %.0f%% of the %.0f customers most like you in %s",
                  100 * c.evidence[0], c.evidence[1], segment);
  }

 private:
  struct Neighbour {
    double sim;
    uint32_t slot;
  };
  // How much a difference in (log) spend lowers similarity.
  static constexpr double kSpendWeight = 0.1;
  StrategyOptions options_;
  // An exemplar as the similarity sees it.
  struct PanelEntry {
    const RecommendIndex::SegmentStats* segment;  // null: not live
    double segment_value;                         // segment->spend_per_customer()
    double items;                                 // size of its item set
    double log_spend;
  };
  std::vector<PanelEntry> panel_;  // by slot
  std::vector<uint32_t> overlap_;
  std::vector<uint32_t> touched_;
  std::vector<Neighbour> neighbours_;
  ItemAccumulator acc_;
  std::vector<uint32_t> holders_;
  std::vector<const std::string*> top_segment_;
  BestItems best_;
};

}  // namespace

std::unique_ptr<Strategy> NewSimilarCustomersStrategy(const StrategyOptions& options) {
  return std::make_unique<SimilarCustomersStrategy>(options);
}

}  // namespace streamrec
