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

void PrepareCustomerView(const StrategyEnv& env, const CustomerState& state, CustomerView* view) {
  view->state = &state;
  view->now_ms = env.now_ms;
  view->owned.clear();
  view->owned.reserve(state.items_size());
  view->owned_sorted.clear();
  for (const auto& e : state.items()) {
    const uint32_t item = env.index->Find(e.item_id());
    view->owned.push_back(item);
    if (item != kNoItem) view->owned_sorted.push_back(item);
  }
  std::sort(view->owned_sorted.begin(), view->owned_sorted.end());
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
