// RecommendIndex: the global, incrementally maintained knowledge the recommendation strategies
// share — a dense item dictionary, item-to-item co-occurrence over customers' item sets, and a
// hash-sampled panel of "exemplar" customers (their item sets, segment and spend) from which
// per-segment popularity, segment value and similar customers are read.
//
// Everything in the index is an integer function of the customers' current states: the same set
// of states gives the same index, whatever order the changes arrived in. That is what lets a
// restarted pipeline rebuild it by scanning the store (Rebuild) and publish exactly the lists an
// uninterrupted run would have. Updates are diffs of a customer's state before and after a
// micro-batch (ObserveChange) or a segment relabel without events (ObserveRelabel).
//
// Bounded memory: co-occurrence is over the per-customer item tables, which FeatureOptions
// bounds; the exemplar panel holds `exemplar_share` of the customers (a deterministic hash of the
// id decides).
//
// Thread-compatible: the consumer thread updates it between micro-batches; strategies read it.
#ifndef STREAMREC_RECOMMEND_INDEX_H_
#define STREAMREC_RECOMMEND_INDEX_H_

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "streamrec/features.h"
#include "streamrec/status.h"

namespace streamrec {

inline constexpr uint32_t kNoItem = 0xffffffffu;

// A uniform number in [0, 1) from an id and a salt (FNV-1a 64 with a MurmurHash3 finaliser):
// stable across runs, platforms and versions; independent for different salts.
double UniformHash(std::string_view id, std::string_view salt);
// Bottom-k sampling by such hashes: the value below which exactly `k` of `hashes` lie (the
// (k+1)-th smallest), so a sample "hash < threshold" is the k lowest whatever the order they
// came in. REQUIRES: hashes.size() > k.
double BottomKThreshold(std::vector<double> hashes, size_t k);

struct RecommendIndexOptions {
  // Share of customers (0..1], by a hash of the id, kept in the exemplar panel.
  double exemplar_share = 0.05;
  // At most this many exemplars (0 = no cap): those of the share whose ids hash lowest, so the
  // panel, and the similar-customers strategy's work per list, stop growing with the population.
  // Order-free: the panel is the bottom of the hash order whatever the order customers come in.
  uint64_t max_exemplars = 5000;
  // Remember which items' rows (buyers, neighbours) changed, for TakeChangedItems: a
  // partition's shard, whose rows go to the other instances (Pipeline, kafka.cooccurrence_topic).
  bool track_changes = false;
};

// One item's row of a partition's co-occurrence, as instances exchange them: the partition's
// customers holding the item, and its neighbours (other item, customers holding both) — the
// strongest `max_neighbours` of them when the row was cut.
struct CooccurrenceRow {
  std::string item_id;
  uint32_t buyers = 0;
  std::vector<std::pair<std::string, uint32_t>> neighbours;  // by item id, ascending
};
// The row as the topic carries it (a v1::CooccurrenceRow; the item id is the record's key).
std::string EncodeCooccurrenceRow(const CooccurrenceRow& row);
// Refuses bytes that do not parse, a count per neighbour that is missing or 0, neighbours out
// of order or repeated, or the item itself among them.
Status DecodeCooccurrenceRow(std::string_view item_id, std::string_view bytes,
                             CooccurrenceRow* row);

class RecommendIndex {
 public:
  explicit RecommendIndex(const RecommendIndexOptions& options = {});

  // --- Updates (consumer thread) ---
  // `before` is the customer's state before the change (nullptr: a customer not seen before);
  // `after` the state after it. Co-occurrence follows the item-set difference.
  void ObserveChange(const CustomerState* before, const CustomerState& after);
  // The customer's segment changed without a purchase (a re-fit relabelled it).
  void ObserveRelabel(const CustomerState& state);
  void Clear();

  // --- Items ---
  // Dense id of an item, kNoItem when no customer holds it (so the answer depends only on the
  // current states, never on history a rebuild cannot see). Dense ids follow first sight: do not
  // use them to break ties (use the item id).
  uint32_t Find(std::string_view item_id) const;
  const std::string& item_id(uint32_t item) const { return items_[item].id; }
  size_t item_count() const { return items_.size(); }
  // Customers whose item table holds the item (the observed ones and the remote rows').
  uint32_t buyers(uint32_t item) const { return items_[item].buyers + items_[item].remote_buyers; }
  // Customers with at least one item.
  uint64_t customers() const { return customers_; }
  // Customers holding both items (0 when unknown): the observed ones, plus those of `a`'s
  // remote rows. Symmetric without remote rows (a cut remote row may hold b for a and not a
  // for b).
  uint32_t cooccurrence(uint32_t a, uint32_t b) const;
  // (other item, customers holding both) for every item held with `item`, by dense id: over
  // the observed customers, and (remote_neighbours) summed over the remote rows. Flat sorted
  // arrays: scoring walks them sequentially (a hash map's node chase cost 6x more).
  using Neighbour = std::pair<uint32_t, uint32_t>;
  const std::vector<Neighbour>& neighbours(uint32_t item) const { return items_[item].cooc; }
  const std::vector<Neighbour>& remote_neighbours(uint32_t item) const {
    return items_[item].remote_cooc;
  }
  // Co-occurrence pairs held (each counted from both sides).
  uint64_t pair_entries() const { return pair_entries_; }
  // Sums over every item of buyers(i) and of its co-occurrence counts (observed and remote):
  // a digest of what scoring sees (tests compare instances with one another).
  std::pair<uint64_t, uint64_t> CooccurrenceTotals() const;

  // --- Rows of other partitions (kafka.cooccurrence_topic, docs/scale-out.md) ---
  // Replaces `partition`'s row of `row.item_id` (a row with no buyers removes it). The rows of
  // different partitions add up, and add to the observed customers': the caller gives rows only
  // of partitions whose customers it does not observe.
  void SetRemoteRow(uint32_t partition, const CooccurrenceRow& row);
  // Remote rows held.
  uint64_t remote_rows() const { return remote_row_count_; }

  // --- A partition's shard (track_changes) ---
  // Items whose observed row changed since the last call (dense ids), each once.
  std::vector<uint32_t> TakeChangedItems();
  // The observed row of `item`: its neighbours by count, the strongest `max_neighbours`
  // (0 = all; ties: the smaller item id), then in item id order.
  CooccurrenceRow Row(uint32_t item, size_t max_neighbours) const;

  // --- Exemplar panel ---
  struct Exemplar {
    std::string customer_id;
    std::string segment;
    std::vector<uint32_t> items;  // dense ids, sorted
    int64_t spend_cents = 0;
    bool live = false;
    double hash = 0;  // UniformHash(customer_id, "exemplar")
  };
  struct SegmentStats {
    uint64_t exemplars = 0;
    int64_t spend_cents = 0;
    // Exemplars of this segment holding each item, by dense id (grown on demand).
    std::vector<uint32_t> holders;
    double spend_per_customer() const {
      return exemplars > 0 ? static_cast<double>(spend_cents) / 100.0 / exemplars : 0.0;
    }
    uint32_t holders_of(uint32_t item) const { return item < holders.size() ? holders[item] : 0; }
  };
  bool IsExemplar(std::string_view customer_id) const;
  const std::vector<Exemplar>& exemplars() const { return exemplars_; }
  // Slot in exemplars() of the customer's entry (live or not), kNoExemplar when it has none.
  static constexpr uint32_t kNoExemplar = 0xffffffffu;
  uint32_t ExemplarSlot(std::string_view customer_id) const;
  // Slots of the live exemplars holding `item`.
  const std::vector<uint32_t>& holders(uint32_t item) const { return items_[item].exemplars; }
  // Segment name -> statistics over the live exemplars (segments with no exemplar are absent).
  const std::unordered_map<std::string, SegmentStats>& segments() const { return segments_; }
  const SegmentStats* segment(std::string_view name) const;

 private:
  struct Item {
    std::string id;
    uint32_t buyers = 0;  // observed customers
    std::vector<Neighbour> cooc;  // sorted by other item
    std::vector<uint32_t> exemplars;  // slots into exemplars_
    uint32_t remote_buyers = 0;  // summed over the remote rows
    std::vector<Neighbour> remote_cooc;  // sorted by other item
    bool changed = false;  // in changed_ (track_changes)
  };
  struct RemoteRow {
    uint32_t buyers = 0;
    std::vector<Neighbour> cooc;  // sorted by other item
  };
  uint32_t Intern(const std::string& item_id);
  void AddPair(uint32_t a, uint32_t b, int delta);
  void MarkChanged(uint32_t item);
  void UpdateExemplar(const CustomerState& state, const std::vector<uint32_t>* items);
  void RemoveExemplarContribution(uint32_t slot);
  void AddExemplarContribution(uint32_t slot);

  RecommendIndexOptions options_;
  std::vector<Item> items_;
  std::unordered_map<std::string, uint32_t> item_index_;
  uint64_t customers_ = 0;
  uint64_t pair_entries_ = 0;
  std::vector<Exemplar> exemplars_;
  std::unordered_map<std::string, uint32_t> exemplar_slot_;
  // The cap: customers hashing at or above admit_below_ are not admitted (it only decreases);
  // the exemplars by hash, to evict the highest; slots freed by evictions.
  double admit_below_ = 1.0;
  std::set<std::pair<double, uint32_t>> by_hash_;
  std::vector<uint32_t> free_slots_;
  std::unordered_map<std::string, SegmentStats> segments_;
  // Remote rows by partition, then item (dense id); their sums are in Item::remote_*.
  std::unordered_map<uint32_t, std::unordered_map<uint32_t, RemoteRow>> remote_;
  uint64_t remote_row_count_ = 0;
  std::vector<uint32_t> changed_;
};

}  // namespace streamrec

#endif  // STREAMREC_RECOMMEND_INDEX_H_
