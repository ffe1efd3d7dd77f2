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
      ladders_[item.service_type].push_back(&item);
    }
    for (auto& [type, ladder] : ladders_) {
      std::sort(ladder.begin(), ladder.end(), [](const CatalogItem* a, const CatalogItem* b) {
        if (a->price != b->price) return a->price < b->price;
        return a->item_id < b->item_id;
      });
    }
  }
  const char* name() const override { return "upsell"; }

  void Score(const StrategyEnv& env, const CustomerView& customer, size_t limit,
             std::vector<Candidate>* out) override {
    if (ladders_.empty() || env.catalog == nullptr) return;
    const CustomerState& state = *customer.state;
    // The usual item per ladder: the one bought in the most baskets (latest on a tie).
    std::map<std::string_view, std::pair<const CatalogItem*, const v1::ItemCount*>> usual;
    for (const auto& e : state.items()) {
      const CatalogItem* item = env.catalog->Find(e.item_id());
      if (item == nullptr || item->service_type.empty() || item->price <= 0) continue;
      auto& slot = usual[item->service_type];
      if (slot.second == nullptr || e.baskets() > slot.second->baskets() ||
          (e.baskets() == slot.second->baskets() &&
           e.last_time_ms() > slot.second->last_time_ms())) {
        slot = {item, &e};
      }
    }
    const bool top_first = top_segments_.count(state.segment()) > 0;
    std::vector<Candidate>& mine = scratch_;
    mine.clear();
    for (const auto& [type, pick] : usual) {
      auto ladder = ladders_.find(std::string(type));
      if (ladder == ladders_.end()) continue;
      const CatalogItem* base = pick.first;
      const double cap = base->price * options_.upsell_price_ratio;
      std::vector<const CatalogItem*> steps;
      for (const CatalogItem* item : ladder->second) {
        if (item->price <= base->price || item->price > cap) continue;
        if (item->quota_mb > 0 && base->quota_mb > 0 && item->quota_mb < base->quota_mb) continue;
        if (base->quota_mb == 0 && item->quota_mb > 0 && base->max_speed_mbps == 0) {
          // An unlimited base is only upgraded by speed.
          continue;
        }
        if (item->max_speed_mbps > 0 && base->max_speed_mbps > 0 &&
            item->max_speed_mbps < base->max_speed_mbps) {
          continue;
        }
        steps.push_back(item);
      }
      for (size_t r = 0; r < steps.size(); ++r) {
        const CatalogItem* item = steps[r];
        uint32_t id = env.index->Find(item->item_id);
        if (id == kNoItem) continue;  // never sold yet: not offered before anyone buys it
        size_t rank = top_first ? steps.size() - 1 - r : r;
        Candidate c;
        c.item = id;
        c.score = 1.0 / (1.0 + rank);
        c.evidence[0] = base->quota_mb;
        c.evidence[1] = item->quota_mb;
        c.evidence[2] = item->price / base->price - 1;
        c.ref_text = base->item_id;
        c.ref = env.index->Find(base->item_id);
        mine.push_back(std::move(c));
      }
    }
    KeepBest(*env.index, limit, &mine);
    for (Candidate& c : mine) out->push_back(std::move(c));
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
  std::map<std::string, std::vector<const CatalogItem*>> ladders_;
  std::vector<Candidate> scratch_;
};

}  // namespace

std::unique_ptr<Strategy> NewUpsellStrategy(const StrategyOptions& options,
                                            const Catalog* catalog) {
  return std::make_unique<UpsellStrategy>(options, catalog);
}

}  // namespace streamrec
