#include "streamrec/strategy.h"

#include <algorithm>

namespace streamrec {

double ItemPrice(const StrategyEnv& env, std::string_view item_id) {
  if (env.catalog != nullptr) {
    const CatalogItem* item = env.catalog->Find(item_id);
    if (item != nullptr && item->price > 0) return item->price;
  }
  if (env.stats != nullptr) {
    auto it = env.stats->find(std::string(item_id));
    if (it != env.stats->end()) return it->second.last_price();
  }
  return 0;
}

const CatalogItem* StrategyEnv::CatalogItemOf(uint32_t item) const {
  if (item < catalog_items.size()) return catalog_items[item];
  return catalog != nullptr ? catalog->Find(index->item_id(item)) : nullptr;
}

const ItemStats* StrategyEnv::StatsOf(uint32_t item) const {
  if (item < item_stats.size()) return item_stats[item];
  if (stats == nullptr) return nullptr;
  auto it = stats->find(index->item_id(item));
  return it != stats->end() ? &it->second : nullptr;
}

void IndexStats(const RecommendIndex& index, const ItemStatsTable* stats,
                std::vector<const ItemStats*>* out) {
  out->assign(index.item_count(), nullptr);
  if (stats == nullptr) return;
  for (uint32_t i = 0; i < index.item_count(); ++i) {
    auto it = stats->find(index.item_id(i));
    if (it != stats->end()) (*out)[i] = &it->second;
  }
}

void IndexCatalog(const RecommendIndex& index, const Catalog* catalog,
                  std::vector<const CatalogItem*>* out) {
  out->assign(index.item_count(), nullptr);
  if (catalog == nullptr) return;
  for (uint32_t i = 0; i < index.item_count(); ++i) (*out)[i] = catalog->Find(index.item_id(i));
}

void PrepareCustomerView(const StrategyEnv& env, const CustomerState& state, CustomerView* view) {
  view->state = &state;
  view->now_ms = env.now_ms;
  for (uint32_t item : view->owned) {
    if (item < view->owned_flag.size()) view->owned_flag[item] = 0;
  }
  if (view->owned_flag.size() < env.index->item_count()) {
    view->owned_flag.resize(env.index->item_count(), 0);
  }
  view->owned.clear();
  view->owned.reserve(state.items_size());
  view->owned_catalog.clear();
  view->owned_catalog.reserve(state.items_size());
  for (const auto& e : state.items()) {
    const uint32_t item = env.index->Find(e.item_id());
    view->owned.push_back(item);
    if (item != kNoItem) {
      view->owned_flag[item] = 1;
      view->owned_catalog.push_back(env.CatalogItemOf(item));
    } else {
      view->owned_catalog.push_back(env.catalog != nullptr ? env.catalog->Find(e.item_id())
                                                           : nullptr);
    }
  }
  view->derived = Derive(state, env.now_ms);
  double priced_spend = 0;
  uint64_t priced = 0;
  for (const auto& e : state.items()) {
    if (e.spend() > 0 && e.quantity() > 0) {
      priced_spend += e.spend() / e.quantity();
      ++priced;
    }
  }
  view->avg_line_price = priced > 0 ? priced_spend / priced : 0;
  view->main_channel.clear();
  uint64_t best = 0;
  for (const auto& c : state.channels()) {
    if (c.count() > best) {
      best = c.count();
      view->main_channel = c.key();
    }
  }
}

}  // namespace streamrec
