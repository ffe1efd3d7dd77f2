// Upsell ladder: in each service type (telco) or category (retail) the customer buys, the items
// of a higher tier than their usual one — more quota, more speed, or simply a higher price —
// within a price ratio of what they usually pay; big spenders see the top of the ladder first.
#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>
#include <unordered_set>

#include "strategy_util.h"

namespace streamrec {

namespace {

std::string FormatQuota(double mb) {
  if (mb <= 0) return "unlimited";
  if (mb >= 1024) return Format("%g GB", std::round(mb / 102.4) / 10);
  return Format("%g MB", mb);
}

class UpsellStrategy final : public Strategy {
 public:
  UpsellStrategy(const StrategyOptions& options, const Catalog* catalog) : options_(options) {
    std::stringstream names(options.upsell_top_segments);
    for (std::string name; std::getline(names, name, ',');) {
      name.erase(0, name.find_first_not_of(' '));
      while (!name.empty() && name.back() == ' ') name.pop_back();
      if (!name.empty()) top_segments_.insert(name);
    }
    if (catalog == nullptr) return;
    for (const CatalogItem& item : catalog->items()) {
      if (!item.recommendable || item.service_type.empty() || item.price <= 0) continue;
      ladders_[item.service_type].push_back(
          {item.price, item.quota_mb, item.max_speed_mbps, &item, kNoItem});
    }
    for (auto& [type, ladder] : ladders_) {
      std::sort(ladder.begin(), ladder.end(), [](const Rung& a, const Rung& b) {
        if (a.price != b.price) return a.price < b.price;
        return a.item->item_id < b.item->item_id;
      });
    }
  }
  const char* name() const override { return "upsell"; }

  // Dense ids of the ladders' items, once per batch (the index does not change within one).
  void BeginBatch(const StrategyEnv& env) override {
    for (auto& [type, ladder] : ladders_) {
      for (Rung& rung : ladder) rung.id = env.index->Find(rung.item->item_id);
    }
  }

  void Score(const StrategyEnv& env, const CustomerView& customer, size_t limit,
             std::vector<Candidate>* out) override {
    if (ladders_.empty() || env.catalog == nullptr) return;
    const CustomerState& state = *customer.state;
    // The usual item per ladder: the one bought in the most baskets (latest on a tie), by its
    // position in the item table.
    std::map<std::string_view, std::pair<const CatalogItem*, int>> usual;
    for (int k = 0; k < state.items_size(); ++k) {
      const CatalogItem* item = customer.owned_catalog[k];
      if (item == nullptr || item->service_type.empty() || item->price <= 0) continue;
      const v1::ItemCount& e = state.items(k);
      auto [slot, inserted] = usual.try_emplace(item->service_type, item, k);
      if (inserted) continue;
      const v1::ItemCount& best = state.items(slot->second.second);
      if (e.baskets() > best.baskets() ||
          (e.baskets() == best.baskets() && e.last_time_ms() > best.last_time_ms())) {
        slot->second = {item, k};
      }
    }
    const bool top_first = top_segments_.count(state.segment()) > 0;
    proposals_.clear();
    best_.Reset(*env.index, limit);
    for (const auto& [type, pick] : usual) {
      auto ladder = ladders_.find(type);
      if (ladder == ladders_.end()) continue;
      const CatalogItem* base = pick.first;
      const double cap = base->price * options_.upsell_price_ratio;
      // The rungs priced in (base price, cap], in ladder order.
      const std::vector<Rung>& rungs = ladder->second;
      auto first = std::upper_bound(rungs.begin(), rungs.end(), base->price,
                                    [](double price, const Rung& r) { return price < r.price; });
      steps_.clear();
      for (auto rung = first; rung != rungs.end() && rung->price <= cap; ++rung) {
        if (rung->quota_mb > 0 && base->quota_mb > 0 && rung->quota_mb < base->quota_mb) continue;
        if (base->quota_mb == 0 && rung->quota_mb > 0 && base->max_speed_mbps == 0) {
          // An unlimited base is only upgraded by speed.
          continue;
        }
        if (rung->max_speed_mbps > 0 && base->max_speed_mbps > 0 &&
            rung->max_speed_mbps < base->max_speed_mbps) {
          continue;
        }
        steps_.push_back(&*rung);
      }
      for (size_t r = 0; r < steps_.size(); ++r) {
        // Never sold yet: not offered before anyone buys it.
        if (steps_[r]->id == kNoItem) continue;
        size_t rank = top_first ? steps_.size() - 1 - r : r;
        best_.Offer(1.0 / (1.0 + rank), steps_[r]->id, static_cast<uint32_t>(proposals_.size()));
        proposals_.push_back({base, steps_[r]->item, customer.owned[pick.second]});
      }
    }
    for (const ScoredItem& r : best_.Take()) {
      const Proposal& p = proposals_[r.aux];
      Candidate c;
      c.item = r.item;
      c.score = r.score;
      c.evidence[0] = p.base->quota_mb;
      c.evidence[1] = p.item->quota_mb;
      c.evidence[2] = p.item->price / p.base->price - 1;
      c.ref_text = p.base->item_id;
      c.ref = p.base_id;
      out->push_back(std::move(c));
    }
  }

  std::string Explain(const StrategyEnv& env, const CustomerView& customer,
                      const Candidate& c) const override {
    const std::string& base = ItemLabel(env, c.ref_text);
    const std::string& item = ItemLabel(env, env.index->item_id(c.item));
    if (c.evidence[1] > 0 && c.evidence[0] > 0) {
      return Format("next tier of your usual %s (%s): %s %s for +%.0f%%", base.c_str(),
                    FormatQuota(c.evidence[0]).c_str(), item.c_str(),
                    FormatQuota(c.evidence[1]).c_str(), 100 * c.evidence[2]);
    }
    return Format("a step up from your usual %s: %s for +%.0f%%", base.c_str(), item.c_str(),
                  100 * c.evidence[2]);
  }

 private:
  StrategyOptions options_;
  std::unordered_set<std::string> top_segments_;
  // A step of a ladder: what the tier comparison reads (copied from the catalogue item, so that
  // scanning a ladder does not visit every item), the item, and its dense id in the current
  // batch (kNoItem: no customer holds it).
  struct Rung {
    double price;
    double quota_mb;
    double max_speed_mbps;
    const CatalogItem* item;
    uint32_t id;
  };
  // A higher tier proposed over the customer's usual item `base` (dense id base_id).
  struct Proposal {
    const CatalogItem* base;
    const CatalogItem* item;
    uint32_t base_id;
  };
  std::map<std::string, std::vector<Rung>, std::less<>> ladders_;  // by price, then item id
  std::vector<const Rung*> steps_;
  std::vector<Proposal> proposals_;
  BestItems best_;  // aux: index into proposals_
};

}  // namespace

std::unique_ptr<Strategy> NewUpsellStrategy(const StrategyOptions& options,
                                            const Catalog* catalog) {
  return std::make_unique<UpsellStrategy>(options, catalog);
}

}  // namespace streamrec
