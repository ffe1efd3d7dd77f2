#include "streamrec/features.h"

#include <algorithm>
#include <cmath>

namespace streamrec {

namespace {

// Increments `key` in a repeated CountEntry field kept sorted by key, bounded by `max_entries`:
// a new key arriving at a full table replaces the entry with the smallest count (ties: the
// larger key) — the table then keeps the customer's dominant values.
void IncrementCount(google::protobuf::RepeatedPtrField<v1::CountEntry>* entries,
                    std::string_view key, int max_entries) {
  auto it = std::lower_bound(entries->begin(), entries->end(), key,
                             [](const v1::CountEntry& e, std::string_view k) { return e.key() < k; });
  if (it != entries->end() && it->key() == key) {
    it->set_count(it->count() + 1);
    return;
  }
  if (max_entries <= 0) return;
  if (entries->size() >= max_entries) {
    auto victim = std::min_element(entries->begin(), entries->end(),
                                   [](const v1::CountEntry& a, const v1::CountEntry& b) {
                                     return a.count() < b.count() ||
                                            (a.count() == b.count() && a.key() > b.key());
                                   });
    if (victim->count() > 1) return;  // established values win over a one-off
    entries->erase(victim);
    it = std::lower_bound(entries->begin(), entries->end(), key,
                          [](const v1::CountEntry& e, std::string_view k) { return e.key() < k; });
  }
  int index = static_cast<int>(it - entries->begin());
  v1::CountEntry* added = entries->Add();
  added->set_key(std::string(key));
  added->set_count(1);
  // Move the new entry from the end into its sorted place.
  for (int i = entries->size() - 1; i > index; --i) entries->SwapElements(i, i - 1);
}

}  // namespace

double DecayFactor(int64_t elapsed_ms, double half_life_days) {
  if (elapsed_ms <= 0 || half_life_days <= 0) return 1.0;
  double half_life_ms = half_life_days * 86400000.0;
  return std::exp2(-static_cast<double>(elapsed_ms) / half_life_ms);
}

CustomerState NewCustomerState(std::string_view customer_id) {
  CustomerState state;
  state.set_format_version(kStateFormatVersion);
  state.set_customer_id(std::string(customer_id));
  state.set_cluster(-1);
  return state;
}

const v1::ItemCount* FindItem(const CustomerState& state, std::string_view item_id) {
  const auto& items = state.items();
  auto it = std::lower_bound(items.begin(), items.end(), item_id,
                             [](const v1::ItemCount& e, std::string_view k) { return e.item_id() < k; });
  if (it != items.end() && it->item_id() == item_id) return &*it;
  return nullptr;
}

namespace {

// The baskets that held `item` (its latest, bit 0, and the earlier ones), shifted left by
// `shift`: bit i then stands for basket last_basket + shift - i. 0 when the shift drops them all.
uint64_t HeldShifted(const v1::ItemCount& item, uint64_t shift) {
  return shift >= 64 ? 0 : ((item.earlier_baskets() << 1) | 1) << shift;
}

}  // namespace

uint64_t RecentBaskets(const CustomerState& state, const v1::ItemCount& item) {
  if (item.last_basket() == 0 || item.last_basket() > state.purchase_count()) return 0;
  return HeldShifted(item, state.purchase_count() - item.last_basket());
}

void ApplyEvent(const FeatureOptions& options, const PurchaseEvent& event, const CatalogItem* item,
                CustomerState* state) {
  const int64_t t = event.event_time_ms;
  const double paid = event.PaidAmount();
  const bool first = state->event_count() == 0;

  // Baskets: a line with an event time not equal to the last one opens a new basket (lines of
  // one invoice share a timestamp). Gaps are summed between consecutive baskets in arrival
  // order; an out-of-order basket adds no gap (the mean gap is then (last-first)/(n-1)-like).
  bool new_basket = first || t != state->last_time_ms();
  if (first) {
    state->set_first_time_ms(t);
    state->set_last_time_ms(t);
    state->set_decayed_spend(paid);
  } else {
    if (t > state->last_time_ms()) {
      if (new_basket) state->set_gap_sum_ms(state->gap_sum_ms() + (t - state->last_time_ms()));
      state->set_decayed_spend(
          state->decayed_spend() *
              DecayFactor(t - state->last_time_ms(), options.spend_half_life_days) +
          paid);
      state->set_last_time_ms(t);
    } else {
      // Late event: decay its contribution to the current reference time.
      state->set_decayed_spend(state->decayed_spend() +
                               paid * DecayFactor(state->last_time_ms() - t,
                                                  options.spend_half_life_days));
    }
    if (t < state->first_time_ms()) state->set_first_time_ms(t);
  }
  state->set_event_count(state->event_count() + 1);
  if (new_basket) state->set_purchase_count(state->purchase_count() + 1);
  state->set_total_spend(state->total_spend() + paid);
  state->set_total_discount(state->total_discount() + event.discount);
  state->set_total_quantity(state->total_quantity() + event.quantity);
  if (event.priced()) state->set_priced_count(state->priced_count() + 1);

  IncrementCount(state->mutable_channels(), event.channel.empty() ? "unknown" : event.channel,
                 options.max_channels);
  if (item != nullptr && !item->service_type.empty()) {
    IncrementCount(state->mutable_service_types(), item->service_type, options.max_service_types);
  }

  // Per-item table, sorted by item id, bounded.
  auto* items = state->mutable_items();
  auto it = std::lower_bound(items->begin(), items->end(), event.item_id,
                             [](const v1::ItemCount& e, const std::string& k) { return e.item_id() < k; });
  if (it == items->end() || it->item_id() != event.item_id) {
    if (options.max_items_per_customer <= 0) return;
    if (items->size() >= options.max_items_per_customer) {
      auto victim = std::min_element(items->begin(), items->end(),
                                     [](const v1::ItemCount& a, const v1::ItemCount& b) {
                                       if (a.count() != b.count()) return a.count() < b.count();
                                       if (a.last_time_ms() != b.last_time_ms())
                                         return a.last_time_ms() < b.last_time_ms();
                                       return a.item_id() > b.item_id();
                                     });
      items->erase(victim);
      state->set_items_evicted(state->items_evicted() + 1);
      it = std::lower_bound(items->begin(), items->end(), event.item_id,
                            [](const v1::ItemCount& e, const std::string& k) { return e.item_id() < k; });
    }
    int index = static_cast<int>(it - items->begin());
    v1::ItemCount* added = items->Add();
    added->set_item_id(event.item_id);
    for (int i = items->size() - 1; i > index; --i) items->SwapElements(i, i - 1);
    it = items->begin() + index;
  }
  const bool first_line = it->count() == 0;
  if (first_line || (t != it->last_time_ms() && t > it->last_time_ms())) {
    it->set_baskets(it->baskets() + 1);
  }
  // Basket membership: this line's basket is the customer's latest (purchase_count).
  const uint64_t basket = state->purchase_count();
  if (first_line || it->last_basket() == 0) {
    it->set_last_basket(basket);
    it->set_earlier_baskets(0);  // an item entry of an older state: its history is unknown
  } else if (basket > it->last_basket()) {
    // Bit i of earlier_baskets: basket (the new last_basket) - 1 - i.
    it->set_earlier_baskets(HeldShifted(*it, basket - it->last_basket() - 1));
    it->set_last_basket(basket);
  }
  if (first_line || t < it->first_time_ms()) it->set_first_time_ms(t);
  it->set_count(it->count() + 1);
  it->set_quantity(it->quantity() + event.quantity);
  it->set_spend(it->spend() + paid);
  if (t > it->last_time_ms()) it->set_last_time_ms(t);
}

void ApplyItemEvent(const FeatureOptions& options, const PurchaseEvent& event, bool new_buyer,
                    ItemStats* stats) {
  const int64_t t = event.event_time_ms;
  if (stats->count() == 0) {
    stats->set_first_time_ms(t);
    stats->set_last_time_ms(t);
    stats->set_decayed_count(1.0);
  } else if (t > stats->last_time_ms()) {
    stats->set_decayed_count(
        stats->decayed_count() * DecayFactor(t - stats->last_time_ms(), options.item_half_life_days) +
        1.0);
    stats->set_last_time_ms(t);
  } else {
    stats->set_decayed_count(stats->decayed_count() +
                             DecayFactor(stats->last_time_ms() - t, options.item_half_life_days));
    if (t < stats->first_time_ms()) stats->set_first_time_ms(t);
  }
  stats->set_count(stats->count() + 1);
  stats->set_quantity(stats->quantity() + event.quantity);
  stats->set_revenue(stats->revenue() + event.PaidAmount());
  if (event.unit_price) {
    stats->set_last_price(*event.unit_price);
  } else if (event.amount && event.quantity > 0) {
    stats->set_last_price(*event.amount / event.quantity);
  }
  if (new_buyer) stats->set_customers(stats->customers() + 1);
}

void MergeItemStats(const FeatureOptions& options, const ItemStats& part, ItemStats* total) {
  if (part.count() == 0) return;
  if (total->count() == 0) {
    std::string id = total->item_id();
    *total = part;
    if (!id.empty()) total->set_item_id(std::move(id));
    return;
  }
  const int64_t last = std::max(total->last_time_ms(), part.last_time_ms());
  const double half_life = options.item_half_life_days;
  total->set_decayed_count(
      total->decayed_count() * DecayFactor(last - total->last_time_ms(), half_life) +
      part.decayed_count() * DecayFactor(last - part.last_time_ms(), half_life));
  if (part.last_time_ms() > total->last_time_ms()) total->set_last_price(part.last_price());
  total->set_first_time_ms(std::min(total->first_time_ms(), part.first_time_ms()));
  total->set_last_time_ms(last);
  total->set_count(total->count() + part.count());
  total->set_quantity(total->quantity() + part.quantity());
  total->set_revenue(total->revenue() + part.revenue());
  total->set_customers(total->customers() + part.customers());
}

double DecayedSpendAt(const CustomerState& state, int64_t now_ms, double half_life_days) {
  return state.decayed_spend() * DecayFactor(now_ms - state.last_time_ms(), half_life_days);
}

DerivedFeatures Derive(const CustomerState& state, int64_t now_ms) {
  DerivedFeatures d;
  if (state.event_count() == 0) return d;
  constexpr double kDay = 86400000.0;
  d.recency_days = std::max<int64_t>(0, now_ms - state.last_time_ms()) / kDay;
  d.frequency = static_cast<double>(state.purchase_count());
  d.monetary = state.total_spend();
  d.avg_spend = d.frequency > 0 ? d.monetary / d.frequency : 0;
  double gross = state.total_spend() + state.total_discount();
  d.avg_discount = gross > 0 ? state.total_discount() / gross : 0;
  d.mean_gap_days =
      state.purchase_count() > 1 ? state.gap_sum_ms() / kDay / (state.purchase_count() - 1) : 0;
  d.tenure_days = (state.last_time_ms() - state.first_time_ms()) / kDay;
  return d;
}

std::string EncodeState(const google::protobuf::MessageLite& message) {
  std::string out;
  out.reserve(message.ByteSizeLong() + 1);
  out.push_back(static_cast<char>(kStateFormatVersion));
  message.AppendToString(&out);
  return out;
}

Status DecodeState(std::string_view bytes, google::protobuf::MessageLite* message) {
  if (bytes.empty()) return Status::Corruption("empty state value");
  uint8_t version = static_cast<uint8_t>(bytes[0]);
  if (version != kStateFormatVersion) {
    return Status::NotSupported("state value written in format version " +
                                std::to_string(version) + "; this build reads format version " +
                                std::to_string(kStateFormatVersion));
  }
  if (!message->ParseFromArray(bytes.data() + 1, static_cast<int>(bytes.size() - 1))) {
    return Status::Corruption("cannot parse " + message->GetTypeName() + " (" +
                              std::to_string(bytes.size()) + " bytes)");
  }
  return Status::OK();
}

}  // namespace streamrec
