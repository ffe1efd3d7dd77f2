#include "streamrec/recommend_index.h"

#include <algorithm>
#include <cmath>

namespace streamrec {

namespace {

int64_t Cents(double amount) { return static_cast<int64_t>(std::llround(amount * 100.0)); }

}  // namespace

std::string EncodeCooccurrenceRow(const CooccurrenceRow& row) {
  v1::CooccurrenceRow message;
  message.set_buyers(row.buyers);
  message.mutable_neighbour()->Reserve(static_cast<int>(row.neighbours.size()));
  message.mutable_count()->Reserve(static_cast<int>(row.neighbours.size()));
  for (const auto& [id, n] : row.neighbours) {
    message.add_neighbour(id);
    message.add_count(n);
  }
  return message.SerializeAsString();
}

Status DecodeCooccurrenceRow(std::string_view item_id, std::string_view bytes,
                             CooccurrenceRow* row) {
  v1::CooccurrenceRow message;
  if (!message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Status::Corruption("cannot parse streamrec.v1.CooccurrenceRow (" +
                              std::to_string(bytes.size()) + " bytes)");
  }
  if (message.count_size() != message.neighbour_size()) {
    return Status::Corruption(std::to_string(message.neighbour_size()) + " neighbours but " +
                              std::to_string(message.count_size()) + " counts");
  }
  row->item_id = std::string(item_id);
  row->buyers = message.buyers();
  row->neighbours.clear();
  row->neighbours.reserve(message.neighbour_size());
  for (int k = 0; k < message.neighbour_size(); ++k) {
    const std::string& id = message.neighbour(k);
    if (message.count(k) == 0) return Status::Corruption("neighbour '" + id + "' with count 0");
    if (id == item_id) return Status::Corruption("the item is its own neighbour");
    if (k > 0 && !(message.neighbour(k - 1) < id)) {
      return Status::Corruption("neighbour '" + id + "' out of order or repeated");
    }
    row->neighbours.emplace_back(id, message.count(k));
  }
  return Status::OK();
}

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
  remote_.clear();
  remote_row_count_ = 0;
  changed_.clear();
}

uint32_t RecommendIndex::Find(std::string_view item_id) const {
  auto it = item_index_.find(std::string(item_id));
  // An item no customer holds any more is unknown, exactly as after a rebuild from the store.
  if (it == item_index_.end() || buyers(it->second) == 0) return kNoItem;
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
  uint32_t n = 0;
  for (const auto* m : {&items_[a].cooc, &items_[a].remote_cooc}) {
    auto it = std::lower_bound(m->begin(), m->end(), Neighbour{b, 0});
    if (it != m->end() && it->first == b) n += it->second;
  }
  return n;
}

std::pair<uint64_t, uint64_t> RecommendIndex::CooccurrenceTotals() const {
  uint64_t buyers_total = 0, pairs_total = 0;
  for (uint32_t i = 0; i < items_.size(); ++i) {
    buyers_total += buyers(i);
    for (const auto* m : {&items_[i].cooc, &items_[i].remote_cooc}) {
      for (const auto& [j, n] : *m) pairs_total += n;
    }
  }
  return {buyers_total, pairs_total};
}

void RecommendIndex::MarkChanged(uint32_t item) {
  if (!options_.track_changes || items_[item].changed) return;
  items_[item].changed = true;
  changed_.push_back(item);
}

std::vector<uint32_t> RecommendIndex::TakeChangedItems() {
  std::vector<uint32_t> changed;
  changed.swap(changed_);
  for (uint32_t item : changed) items_[item].changed = false;
  return changed;
}

CooccurrenceRow RecommendIndex::Row(uint32_t item, size_t max_neighbours) const {
  CooccurrenceRow row;
  const Item& it = items_[item];
  row.item_id = it.id;
  row.buyers = it.buyers;
  std::vector<Neighbour> kept = it.cooc;
  if (max_neighbours > 0 && kept.size() > max_neighbours) {
    auto stronger = [&](const Neighbour& x, const Neighbour& y) {
      if (x.second != y.second) return x.second > y.second;
      return items_[x.first].id < items_[y.first].id;
    };
    std::nth_element(kept.begin(), kept.begin() + static_cast<ptrdiff_t>(max_neighbours),
                     kept.end(), stronger);
    kept.resize(max_neighbours);
  }
  row.neighbours.reserve(kept.size());
  for (const auto& [j, n] : kept) row.neighbours.emplace_back(items_[j].id, n);
  std::sort(row.neighbours.begin(), row.neighbours.end());
  return row;
}

void RecommendIndex::SetRemoteRow(uint32_t partition, const CooccurrenceRow& row) {
  RemoteRow fresh;
  fresh.buyers = row.buyers;
  if (row.buyers > 0) {
    fresh.cooc.reserve(row.neighbours.size());
    for (const auto& [id, n] : row.neighbours) {
      if (n == 0 || id == row.item_id) continue;
      fresh.cooc.emplace_back(Intern(id), n);
    }
    std::sort(fresh.cooc.begin(), fresh.cooc.end());
  }
  // (Intern grows items_: references into it are taken after the last one.)
  const uint32_t item = Intern(row.item_id);
  auto& rows = remote_[partition];
  auto found = rows.find(item);
  const RemoteRow* old = found != rows.end() ? &found->second : nullptr;
  if (old == nullptr && fresh.buyers == 0) return;
  // The item's remote sums: minus the old row, plus the new one, in one merge of sorted arrays.
  Item& target = items_[item];
  target.remote_buyers = target.remote_buyers - (old != nullptr ? old->buyers : 0) + fresh.buyers;
  static const std::vector<Neighbour> kEmpty;
  const std::vector<Neighbour>& sum = target.remote_cooc;
  const std::vector<Neighbour>& minus = old != nullptr ? old->cooc : kEmpty;
  const std::vector<Neighbour>& plus = fresh.cooc;
  std::vector<Neighbour> merged;
  merged.reserve(sum.size() + plus.size());
  size_t s = 0, m = 0, p = 0;
  while (s < sum.size() || p < plus.size()) {
    uint32_t j = 0xffffffffu;
    if (s < sum.size()) j = std::min(j, sum[s].first);
    if (p < plus.size()) j = std::min(j, plus[p].first);
    int64_t n = 0;
    if (s < sum.size() && sum[s].first == j) n += sum[s++].second;
    while (m < minus.size() && minus[m].first < j) ++m;
    if (m < minus.size() && minus[m].first == j) n -= minus[m++].second;
    if (p < plus.size() && plus[p].first == j) n += plus[p++].second;
    if (n > 0) merged.emplace_back(j, static_cast<uint32_t>(n));
  }
  target.remote_cooc.swap(merged);
  if (fresh.buyers == 0) {
    rows.erase(found);
    --remote_row_count_;
    if (rows.empty()) remote_.erase(partition);
  } else if (old != nullptr) {
    found->second = std::move(fresh);
  } else {
    rows.emplace(item, std::move(fresh));
    ++remote_row_count_;
  }
}

void RecommendIndex::AddPair(uint32_t a, uint32_t b, int delta) {
  MarkChanged(a);
  MarkChanged(b);
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
      MarkChanged(r);
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
      MarkChanged(a);
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
