#include "streamrec/recommend_index.h"

#include <algorithm>
#include <cmath>

namespace streamrec {

namespace {

int64_t Cents(double amount) { return static_cast<int64_t>(std::llround(amount * 100.0)); }

}  // namespace

double BottomKThreshold(std::vector<double> hashes, size_t k) {
  std::nth_element(hashes.begin(), hashes.begin() + static_cast<ptrdiff_t>(k), hashes.end());
  return hashes[k];
}

double UniformHash(std::string_view id, std::string_view salt) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a 64 over salt, a separator, id
  auto mix = [&h](std::string_view bytes) {
    for (unsigned char c : bytes) {
      h ^= c;
      h *= 1099511628211ULL;
    }
  };
  mix(salt);
  mix(std::string_view("\0", 1));
  mix(id);
  // MurmurHash3's finaliser: FNV alone leaves the top bits of short, similar ids (e.g. the
  // 5-digit customer numbers of retail data) correlated.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0);
}

RecommendIndex::RecommendIndex(const RecommendIndexOptions& options)
    : options_(options), admit_below_(options.exemplar_share) {}

void RecommendIndex::Clear() {
  items_.clear();
  item_index_.clear();
  customers_ = 0;
  pair_entries_ = 0;
  exemplars_.clear();
  exemplar_slot_.clear();
  segments_.clear();
  admit_below_ = options_.exemplar_share;
  by_hash_.clear();
  free_slots_.clear();
}

uint32_t RecommendIndex::Find(std::string_view item_id) const {
  auto it = item_index_.find(std::string(item_id));
  // An item no customer holds any more is unknown, exactly as after a rebuild from the store.
  if (it == item_index_.end() || items_[it->second].buyers == 0) return kNoItem;
  return it->second;
}

uint32_t RecommendIndex::Intern(const std::string& item_id) {
  auto [it, inserted] = item_index_.try_emplace(item_id, static_cast<uint32_t>(items_.size()));
  if (inserted) {
    items_.emplace_back();
    items_.back().id = item_id;
  }
  return it->second;
}

uint32_t RecommendIndex::cooccurrence(uint32_t a, uint32_t b) const {
  if (a >= items_.size() || b >= items_.size()) return 0;
  const auto& m = items_[a].cooc;
  auto it = std::lower_bound(m.begin(), m.end(), Neighbour{b, 0});
  return it != m.end() && it->first == b ? it->second : 0;
}

void RecommendIndex::AddPair(uint32_t a, uint32_t b, int delta) {
  for (auto [x, y] : {std::pair{a, b}, std::pair{b, a}}) {
    auto& m = items_[x].cooc;
    auto it = std::lower_bound(m.begin(), m.end(), Neighbour{y, 0});
    const bool present = it != m.end() && it->first == y;
    if (delta > 0) {
      if (present) {
        it->second += static_cast<uint32_t>(delta);
      } else {
        m.insert(it, Neighbour{y, static_cast<uint32_t>(delta)});
        ++pair_entries_;
      }
    } else if (present) {
      if (it->second <= static_cast<uint32_t>(-delta)) {
        m.erase(it);
        --pair_entries_;
      } else {
        it->second -= static_cast<uint32_t>(-delta);
      }
    }
  }
}

bool RecommendIndex::IsExemplar(std::string_view customer_id) const {
  if (options_.exemplar_share <= 0) return false;
  if (options_.exemplar_share >= 1 && options_.max_exemplars == 0) return true;
  // A salt unlike the control group's, so the panel is not the control group.
  return UniformHash(customer_id, "exemplar") < admit_below_;
}

uint32_t RecommendIndex::ExemplarSlot(std::string_view customer_id) const {
  auto it = exemplar_slot_.find(std::string(customer_id));
  return it == exemplar_slot_.end() ? kNoExemplar : it->second;
}

const RecommendIndex::SegmentStats* RecommendIndex::segment(std::string_view name) const {
  auto it = segments_.find(std::string(name));
  return it == segments_.end() ? nullptr : &it->second;
}

void RecommendIndex::RemoveExemplarContribution(uint32_t slot) {
  Exemplar& e = exemplars_[slot];
  if (!e.live) return;
  auto it = segments_.find(e.segment);
  if (it != segments_.end()) {
    SegmentStats& s = it->second;
    s.exemplars -= 1;
    s.spend_cents -= e.spend_cents;
    for (uint32_t item : e.items) {
      if (item < s.holders.size() && s.holders[item] > 0) s.holders[item] -= 1;
    }
    if (s.exemplars == 0) segments_.erase(it);
  }
  for (uint32_t item : e.items) {
    auto& h = items_[item].exemplars;
    auto pos = std::find(h.begin(), h.end(), slot);
    if (pos != h.end()) {
      *pos = h.back();
      h.pop_back();
    }
  }
  e.live = false;
}

void RecommendIndex::AddExemplarContribution(uint32_t slot) {
  Exemplar& e = exemplars_[slot];
  SegmentStats& s = segments_[e.segment];
  s.exemplars += 1;
  s.spend_cents += e.spend_cents;
  for (uint32_t item : e.items) {
    if (s.holders.size() <= item) s.holders.resize(items_.size(), 0);
    s.holders[item] += 1;
    items_[item].exemplars.push_back(slot);
  }
  e.live = true;
}

void RecommendIndex::UpdateExemplar(const CustomerState& state,
                                    const std::vector<uint32_t>* items) {
  if (!IsExemplar(state.customer_id())) return;
  auto [it, inserted] = exemplar_slot_.try_emplace(state.customer_id(), 0);
  if (inserted) {
    if (free_slots_.empty()) {
      it->second = static_cast<uint32_t>(exemplars_.size());
      exemplars_.emplace_back();
    } else {
      it->second = free_slots_.back();
      free_slots_.pop_back();
      exemplars_[it->second] = Exemplar();
    }
    Exemplar& e = exemplars_[it->second];
    e.customer_id = state.customer_id();
    e.hash = UniformHash(e.customer_id, "exemplar");
    by_hash_.emplace(e.hash, it->second);
  }
  const uint32_t slot = it->second;
  RemoveExemplarContribution(slot);
  Exemplar& e = exemplars_[slot];
  e.segment = state.segment();
  e.spend_cents = Cents(state.total_spend());
  if (items != nullptr) e.items = *items;
  AddExemplarContribution(slot);
  if (options_.max_exemplars > 0 && by_hash_.size() > options_.max_exemplars) {
    // Over the cap: the exemplar hashing highest leaves, and nobody at or above it comes in.
    auto last = std::prev(by_hash_.end());
    const uint32_t out = last->second;
    admit_below_ = last->first;
    by_hash_.erase(last);
    RemoveExemplarContribution(out);
    exemplar_slot_.erase(exemplars_[out].customer_id);
    exemplars_[out] = Exemplar();
    free_slots_.push_back(out);
  }
}

void RecommendIndex::ObserveChange(const CustomerState* before, const CustomerState& after) {
  // Item sets as dense ids. Both tables are sorted by item id, so a merge finds the difference.
  std::vector<uint32_t> added, removed, after_items;
  after_items.reserve(after.items_size());
  static const google::protobuf::RepeatedPtrField<v1::ItemCount> kNone;
  const auto& b = before != nullptr ? before->items() : kNone;
  int i = 0, j = 0;
  const int nb = b.size(), na = after.items_size();
  while (i < nb || j < na) {
    int cmp = i >= nb ? 1 : j >= na ? -1 : b.Get(i).item_id().compare(after.items(j).item_id());
    if (cmp < 0) {
      removed.push_back(Intern(b.Get(i).item_id()));
      ++i;
    } else if (cmp > 0) {
      uint32_t id = Intern(after.items(j).item_id());
      added.push_back(id);
      after_items.push_back(id);
      ++j;
    } else {
      after_items.push_back(Intern(after.items(j).item_id()));
      ++i;
      ++j;
    }
  }
  if (nb == 0 && na > 0) customers_ += 1;
  if (nb > 0 && na == 0) customers_ -= 1;
  if (!removed.empty()) {
    // Pairs (r, y) over the before-set; pairs inside `removed` once.
    std::vector<uint32_t> before_items;
    before_items.reserve(nb);
    for (const auto& e : b) before_items.push_back(Intern(e.item_id()));
    std::sort(removed.begin(), removed.end());
    for (uint32_t r : removed) {
      items_[r].buyers -= 1;
      for (uint32_t y : before_items) {
        if (y == r) continue;
        if (std::binary_search(removed.begin(), removed.end(), y) && y < r) continue;
        AddPair(r, y, -1);
      }
    }
  }
  if (!added.empty()) {
    std::sort(added.begin(), added.end());
    for (uint32_t a : added) {
      items_[a].buyers += 1;
      for (uint32_t y : after_items) {
        if (y == a) continue;
        if (std::binary_search(added.begin(), added.end(), y) && y < a) continue;
        AddPair(a, y, +1);
      }
    }
  }
  std::sort(after_items.begin(), after_items.end());
  UpdateExemplar(after, &after_items);
}

void RecommendIndex::ObserveRelabel(const CustomerState& state) {
  auto it = exemplar_slot_.find(state.customer_id());
  if (it == exemplar_slot_.end()) return;
  UpdateExemplar(state, nullptr);
}

}  // namespace streamrec
