#include "streamrec/evaluation.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <deque>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "file_io.h"
#include "json_writer.h"
#include "progress.h"
#include "streamrec/pipeline.h"
#include "streamrec/state_store.h"
#include "streamrec/time_util.h"

namespace streamrec {

namespace {

constexpr int kMaxK = 1000;
constexpr int kInvalidExamplesShown = 10;

std::string Format(const char* format, double a) {
  char buf[160];
  std::snprintf(buf, sizeof(buf), format, a);
  return buf;
}

// "2011-12-09" from an event time.
std::string DateOf(int64_t time_ms) { return FormatIso8601(time_ms).substr(0, 10); }

// What every baseline keeps: item ids by dense number, which items it may not offer, and each
// customer's distinct items (from EventIds::new_item_for_customer, so exact and unbounded).
class BaselineProvider : public ListProvider {
 protected:
  explicit BaselineProvider(const EvaluationOptions& options)
      : k_(static_cast<size_t>(options.k)),
        catalog_(options.baselines_skip_non_recommendable ? options.catalog : nullptr) {}

  // Records the event's item id on first sight. REQUIRES: ids numbered densely (the harness).
  void RegisterItem(const PurchaseEvent& event, const EventIds& ids) {
    if (ids.item < item_ids_.size()) return;
    item_ids_.resize(ids.item + 1);
    blocked_.resize(ids.item + 1, 0);
    owned_stamp_.resize(ids.item + 1, 0);
    item_ids_[ids.item] = event.item_id;
    if (catalog_ != nullptr) {
      const CatalogItem* item = catalog_->Find(event.item_id);
      blocked_[ids.item] = item != nullptr && !item->recommendable;
    }
  }

  // Appends the item to the customer's distinct items when it is new to them.
  void RegisterOwnership(const EventIds& ids) {
    if (ids.customer >= customer_items_.size()) customer_items_.resize(ids.customer + 1);
    if (ids.new_item_for_customer) customer_items_[ids.customer].push_back(ids.item);
  }

  // After MarkOwned(c), Owned(i) is true exactly for the items customer c bought.
  void MarkOwned(uint32_t customer) {
    ++stamp_;
    for (uint32_t item : customer_items_[customer]) owned_stamp_[item] = stamp_;
  }
  bool Owned(uint32_t item) const { return owned_stamp_[item] == stamp_; }

  // Total order for ranked items: higher score first, then item id.
  bool Before(double score_a, uint32_t a, double score_b, uint32_t b) const {
    if (score_a != score_b) return score_a > score_b;
    return item_ids_[a] < item_ids_[b];
  }

  const size_t k_;
  const Catalog* catalog_;  // null unless non-recommendable items are skipped
  std::vector<std::string> item_ids_;
  std::vector<char> blocked_;  // 1: not recommendable (only with catalog_)
  std::vector<std::vector<uint32_t>> customer_items_;

 private:
  std::vector<uint64_t> owned_stamp_;
  uint64_t stamp_ = 0;
};

// Purchase lines per item in the trailing window [now - window, now), maintained incrementally:
// events enter when observed and leave in AdvanceTo. The ranking is rebuilt lazily, at most once
// per time, and only as deep as needed (a customer owning many of the top items extends it).
class WindowPopularityProvider final : public BaselineProvider {
 public:
  WindowPopularityProvider(const EvaluationOptions& options, bool exclude_owned)
      : BaselineProvider(options),
        window_ms_(options.popularity_window_ms),
        exclude_owned_(exclude_owned) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "popularity-%gd%s", window_ms_ / 86400000.0,
                  exclude_owned_ ? "-new" : "");
    name_ = buf;
    std::snprintf(buf, sizeof(buf), "%g days", window_ms_ / 86400000.0);
    window_text_ = buf;
  }

  std::string name() const override { return name_; }

  void AdvanceTo(int64_t now_ms) override {
    while (!window_.empty() && window_.front().first < now_ms - window_ms_) {
      --lines_[window_.front().second];
      window_.pop_front();
      dirty_ = true;
    }
  }

  void Recommend(uint32_t customer, std::vector<Recommendation>* out) override {
    out->clear();
    if (dirty_) Rank();
    if (exclude_owned_) MarkOwned(customer);
    for (size_t pos = 0; out->size() < k_;) {
      if (pos == ranked_depth_) {
        if (ranked_depth_ == ranked_.size()) break;
        CompleteRanking();
      }
      uint32_t item = ranked_[pos++];
      if (exclude_owned_ && Owned(item)) continue;
      Recommendation rec;
      rec.item_id = item_ids_[item];
      rec.score = lines_[item];
      rec.strategy = name_;
      rec.reason = "bought " + std::to_string(lines_[item]) + " times in the last " + window_text_;
      out->push_back(std::move(rec));
    }
  }

  void Observe(const PurchaseEvent& event, const EventIds& ids) override {
    RegisterItem(event, ids);
    if (exclude_owned_) RegisterOwnership(ids);
    if (ids.item >= lines_.size()) lines_.resize(ids.item + 1, 0);
    ++lines_[ids.item];
    window_.emplace_back(event.event_time_ms, ids.item);
    dirty_ = true;
  }

 private:
  // Ranking order: more lines first, then item id.
  struct Order {
    const WindowPopularityProvider* self;
    bool operator()(uint32_t a, uint32_t b) const {
      return self->Before(self->lines_[a], a, self->lines_[b], b);
    }
  };

  void Rank() {
    ranked_.clear();
    for (uint32_t item = 0; item < lines_.size(); ++item) {
      if (lines_[item] > 0 && !blocked_[item]) ranked_.push_back(item);
    }
    // Deep enough for most customers even with owned items skipped.
    ranked_depth_ = std::min(ranked_.size(), k_ + 64);
    std::partial_sort(ranked_.begin(), ranked_.begin() + ranked_depth_, ranked_.end(), Order{this});
    dirty_ = false;
  }
  void CompleteRanking() {
    std::sort(ranked_.begin() + ranked_depth_, ranked_.end(), Order{this});
    ranked_depth_ = ranked_.size();
  }

  const int64_t window_ms_;
  const bool exclude_owned_;
  std::string name_;
  std::string window_text_;
  std::deque<std::pair<int64_t, uint32_t>> window_;  // (event time, item) in time order
  std::vector<uint32_t> lines_;                      // lines in the window, by item
  std::vector<uint32_t> ranked_;  // items with lines in the window; sorted up to ranked_depth_
  size_t ranked_depth_ = 0;
  bool dirty_ = true;
};

// The customer's own items by purchase lines, ties by the most recent purchase, then item id.
class OwnMostBoughtProvider final : public BaselineProvider {
 public:
  explicit OwnMostBoughtProvider(const EvaluationOptions& options) : BaselineProvider(options) {}

  std::string name() const override { return "own-most-bought"; }
  void AdvanceTo(int64_t now_ms) override {}

  void Recommend(uint32_t customer, std::vector<Recommendation>* out) override {
    out->clear();
    candidates_.clear();
    for (const Entry& e : entries_[customer]) {
      if (!blocked_[e.item]) candidates_.push_back(&e);
    }
    size_t n = std::min(candidates_.size(), k_);
    std::partial_sort(candidates_.begin(), candidates_.begin() + n, candidates_.end(),
                      [this](const Entry* a, const Entry* b) {
                        if (a->lines != b->lines) return a->lines > b->lines;
                        if (a->last_ms != b->last_ms) return a->last_ms > b->last_ms;
                        return item_ids_[a->item] < item_ids_[b->item];
                      });
    for (size_t i = 0; i < n; ++i) {
      const Entry& e = *candidates_[i];
      Recommendation rec;
      rec.item_id = item_ids_[e.item];
      rec.score = e.lines;
      rec.strategy = "own-most-bought";
      rec.reason =
          "you bought it " + std::to_string(e.lines) + " times, last on " + DateOf(e.last_ms);
      out->push_back(std::move(rec));
    }
  }

  void Observe(const PurchaseEvent& event, const EventIds& ids) override {
    RegisterItem(event, ids);
    if (ids.customer >= entries_.size()) entries_.resize(ids.customer + 1);
    std::vector<Entry>& entries = entries_[ids.customer];
    const uint64_t key = (uint64_t{ids.customer} << 32) | ids.item;
    auto [it, inserted] = position_.try_emplace(key, static_cast<uint32_t>(entries.size()));
    if (inserted) entries.push_back(Entry{ids.item, 0, event.event_time_ms});
    Entry& e = entries[it->second];
    ++e.lines;
    e.last_ms = std::max(e.last_ms, event.event_time_ms);
  }

 private:
  struct Entry {
    uint32_t item;
    uint32_t lines;
    int64_t last_ms;
  };
  std::vector<std::vector<Entry>> entries_;          // by customer
  std::unordered_map<uint64_t, uint32_t> position_;  // (customer, item) -> index in entries_
  std::vector<const Entry*> candidates_;
};

// Item-item cosine over customer-item sets. The co-occurrence counts are not materialised: the
// provider keeps the bipartite customer-item graph (each customer's distinct items, each item's
// distinct buyers), updated in O(1) per event, and computes a customer's scores through their
// neighbours:
//   sum_{i owned} co(i, j) / sqrt(b(i) b(j))
//     = 1/sqrt(b(j)) * sum_{customers d who bought j} sum_{i owned by both} 1/sqrt(b(i)),
// i.e. first a weight per neighbouring customer d (walking the buyers of the owned items), then
// each neighbour's items receive its weight. Only 4-byte ids are read (no counts), and nothing
// has to be maintained but two adjacency lists.
class CooccurrenceProvider final : public BaselineProvider {
 public:
  explicit CooccurrenceProvider(const EvaluationOptions& options) : BaselineProvider(options) {}

  std::string name() const override { return "cooccurrence-cosine"; }
  void AdvanceTo(int64_t now_ms) override {}

  void Recommend(uint32_t customer, std::vector<Recommendation>* out) override {
    out->clear();
    if (scores_.size() < item_ids_.size()) scores_.resize(item_ids_.size(), 0.0);
    if (weights_.size() < customer_items_.size()) weights_.resize(customer_items_.size(), 0.0);
    // 1. Neighbour weights: w(d) = sum over items i owned by both of 1 / sqrt(b(i)).
    const std::vector<uint32_t>& owned = customer_items_[customer];
    for (uint32_t i : owned) {
      const double w = 1.0 / std::sqrt(static_cast<double>(buyers_[i].size()));
      for (uint32_t d : buyers_[i]) {
        double& weight = weights_[d];
        if (weight == 0.0) neighbours_.push_back(d);
        weight += w;
      }
    }
    // 2. Item scores: each neighbour's weight goes to each of its items. The customer's own
    // items only score owned items, which are dropped below.
    double* scores = scores_.data();
    for (uint32_t d : neighbours_) {
      if (d != customer) {
        const double w = weights_[d];
        for (uint32_t j : customer_items_[d]) scores[j] += w;
      }
      weights_[d] = 0.0;
    }
    neighbours_.clear();
    // 3. Candidates: items scored, not owned, offerable; cosine needs 1 / sqrt(b(j)).
    MarkOwned(customer);
    ranked_.clear();
    for (uint32_t j = 0; j < item_ids_.size(); ++j) {
      if (scores[j] > 0 && !Owned(j) && !blocked_[j]) {
        ranked_.emplace_back(scores[j] / std::sqrt(static_cast<double>(buyers_[j].size())), j);
      }
      scores[j] = 0.0;
    }
    size_t n = std::min(ranked_.size(), k_);
    std::partial_sort(
        ranked_.begin(), ranked_.begin() + n, ranked_.end(),
        [this](const std::pair<double, uint32_t>& a, const std::pair<double, uint32_t>& b) {
          return Before(a.first, a.second, b.first, b.second);
        });
    for (size_t r = 0; r < n; ++r) {
      Recommendation rec;
      rec.item_id = item_ids_[ranked_[r].second];
      rec.score = ranked_[r].first;
      rec.strategy = "cooccurrence-cosine";
      rec.reason = Format("bought by the buyers of items you own (cosine sum %.2f)", rec.score);
      out->push_back(std::move(rec));
    }
  }

  void Observe(const PurchaseEvent& event, const EventIds& ids) override {
    RegisterItem(event, ids);
    if (ids.item >= buyers_.size()) buyers_.resize(ids.item + 1);
    if (ids.new_item_for_customer) buyers_[ids.item].push_back(ids.customer);
    RegisterOwnership(ids);
  }

 private:
  std::vector<std::vector<uint32_t>> buyers_;  // distinct buyers, by item
  std::vector<double> scores_;                 // scratch by item, all zero between calls
  std::vector<double> weights_;                // scratch by customer, all zero between calls
  std::vector<uint32_t> neighbours_;
  std::vector<std::pair<double, uint32_t>> ranked_;
};

class StreamrecListProvider final : public ListProvider {
 public:
  StreamrecListProvider(const StreamrecListProviderOptions& options, Recommender* recommender,
                        Segmenter* segmenter)
      : options_(options), recommender_(recommender), segmenter_(segmenter) {}

  std::string name() const override { return options_.name; }

  void AdvanceTo(int64_t now_ms) override {
    now_ms_ = now_ms;
    if (changed_.empty()) return;
    const uint64_t segment_version = segmenter_ != nullptr ? segmenter_->model_version() : 0;
    if (segmenter_ != nullptr) {
      std::vector<CustomerState*> states;
      states.reserve(changed_.size());
      for (uint32_t c : changed_) states.push_back(&states_[c]);
      segmenter_->AssignBatch(states, watermark_);
    }
    if (recommender_->ObservesCustomers()) {
      for (uint32_t c : changed_) {
        recommender_->ObserveChange(before_[c].customer_id().empty() ? nullptr : &before_[c],
                                    states_[c]);
      }
    }
    // Whole-population models, on the same triggers as the pipeline's (every state is here).
    const uint64_t every = static_cast<uint64_t>(options_.refit_every_events);
    const bool refit = (segmenter_ != nullptr && segmenter_->model_version() != segment_version) ||
                       (every > 0 && events_ / every != events_at_refit_ / every);
    if (refit) {
      events_at_refit_ = events_;
      WriteSet unused;
      Status s = recommender_->RefitModel(nullptr, states_, &unused);
      if (!s.ok()) std::fprintf(stderr, "streamrec: model re-fit failed: %s\n", s.message().c_str());
      items_changed_ = true;
    }
    if (options_.lists != Lists::kFresh) {
      // The lists the pipeline computes in the micro-batch of these customers' purchases.
      if (kept_.size() < states_.size()) {
        kept_.resize(states_.size());
        kept_at_ms_.resize(states_.size(), 0);
      }
      for (uint32_t c : changed_) Compute(c, &kept_[c]);
    }
    for (uint32_t c : changed_) changed_flag_[c] = 0;
    changed_.clear();
  }

  void Recommend(uint32_t customer, std::vector<Recommendation>* out) override {
    if (options_.lists == Lists::kFresh) return Compute(customer, out);
    const double age_days = static_cast<double>(now_ms_ - kept_at_ms_[customer]) / kDayMs;
    if (options_.lists == Lists::kPublished && options_.refresh_after_days > 0 &&
        age_days > options_.refresh_after_days) {
      Compute(customer, &kept_[customer]);  // the freshness sweep
    }
    *out = kept_[customer];
  }

  void Observe(const PurchaseEvent& event, const EventIds& ids) override {
    if (ids.customer >= states_.size()) {
      states_.resize(ids.customer + 1);
      changed_flag_.resize(ids.customer + 1, 0);
    }
    if (!changed_flag_[ids.customer] && recommender_->ObservesCustomers()) {
      if (before_.size() < states_.size()) before_.resize(states_.size());
      before_[ids.customer] = states_[ids.customer];  // empty for a new customer
    }
    CustomerState& state = states_[ids.customer];
    if (state.customer_id().empty()) state = NewCustomerState(event.customer_id);
    const CatalogItem* item =
        options_.catalog != nullptr ? options_.catalog->Find(event.item_id) : nullptr;
    // As in the pipeline: "new buyer" by the customer's (bounded) item table.
    const bool new_buyer = FindItem(state, event.item_id) == nullptr;
    ApplyEvent(options_.features, event, item, &state);
    auto [it, inserted] = items_.try_emplace(event.item_id);
    if (inserted) it->second.set_item_id(event.item_id);
    ApplyItemEvent(options_.features, event, new_buyer, &it->second);
    watermark_ = std::max(watermark_, event.event_time_ms);
    items_changed_ = true;
    ++events_;
    if (!changed_flag_[ids.customer]) {
      changed_flag_[ids.customer] = 1;
      changed_.push_back(ids.customer);
    }
  }

  bool DescribeList(uint32_t customer, v1::RecommendationList* list) override {
    const CustomerState& state = states_[customer];
    list->set_segment(state.segment());
    list->set_cluster(state.cluster());
    list->set_model_version(state.model_version());
    list->set_group(InControlGroup(state.customer_id(), options_.control_share)
                        ? v1::RecommendationList::CONTROL
                        : v1::RecommendationList::TREATMENT);
    return true;
  }

 private:
  using Lists = StreamrecListProviderOptions::Lists;
  static constexpr double kDayMs = 86400000.0;

  // The customer's list now (from every event observed so far), noting when it was computed.
  void Compute(uint32_t customer, std::vector<Recommendation>* out) {
    if (items_changed_) {
      recommender_->BeginBatch(items_, watermark_);
      items_changed_ = false;
    }
    recommender_->Recommend(states_[customer], out);
    if (customer < kept_at_ms_.size()) kept_at_ms_[customer] = watermark_;
  }

  StreamrecListProviderOptions options_;
  Recommender* recommender_;
  Segmenter* segmenter_;
  // Lists kept between purchases (all but Lists::kFresh), by customer, and the event time they
  // were computed at.
  std::vector<std::vector<Recommendation>> kept_;
  std::vector<int64_t> kept_at_ms_;
  int64_t now_ms_ = 0;
  std::vector<CustomerState> states_;  // by customer number
  std::vector<CustomerState> before_;  // states before the changes since the last AdvanceTo
  ItemStatsTable items_;
  std::vector<uint32_t> changed_;  // customers observed since the last AdvanceTo
  std::vector<char> changed_flag_;
  int64_t watermark_ = 0;
  bool items_changed_ = true;
  uint64_t events_ = 0;
  uint64_t events_at_refit_ = 0;
};

// Per-provider tallies while the evaluation runs.
struct ProviderTally {
  ListProvider* provider = nullptr;
  ProviderReport report;
  uint64_t list_items = 0;
  int64_t micros = 0;
  std::vector<uint64_t> versions;  // recs-out list versions, by customer
};

// One basket of the time group being scored: a customer and their distinct items (sorted).
struct Basket {
  uint32_t customer = 0;
  std::vector<uint32_t> items;
};

uint64_t PairKey(uint32_t customer, uint32_t item) { return (uint64_t{customer} << 32) | item; }

// The harness: numbering, the group of events sharing one time, the exact purchase history.
class Evaluator {
 public:
  Evaluator(const EvaluationOptions& options, std::span<ListProvider* const> providers,
            const ListSink& recs_out, const Clock* clock)
      : options_(options), recs_out_(recs_out), clock_(clock) {
    for (ListProvider* p : providers) {
      ProviderTally tally;
      tally.provider = p;
      tally.report.name = p->name();
      tallies_.push_back(std::move(tally));
    }
  }

  // Adds one valid event; scores and applies the previous time group when the time moves on.
  Status Add(PurchaseEvent event, uint64_t record) {
    if (!group_.empty() && event.event_time_ms != group_time_) {
      if (event.event_time_ms < group_time_) {
        return Status::InvalidArgument(
            "record " + std::to_string(record) + ": event time " +
            FormatIso8601(event.event_time_ms) + " is earlier than the previous event's " +
            FormatIso8601(group_time_) +
            "; prequential evaluation needs the events in time order (sort the file by time)");
      }
      STREAMREC_RETURN_IF_ERROR(FlushGroup());
    }
    group_time_ = event.event_time_ms;
    EventIds ids;
    ids.customer = Number(&customer_index_, &customer_ids_, event.customer_id);
    ids.item = Number(&item_index_, nullptr, event.item_id);
    if (ids.customer >= last_basket_ms_.size()) last_basket_ms_.push_back(INT64_MIN);
    group_.push_back(std::move(event));
    group_ids_.push_back(ids);
    return Status::OK();
  }

  // Scores and applies the last group.
  Status Finish() { return group_.empty() ? Status::OK() : FlushGroup(); }

  void Fill(EvaluationReport* report) {
    report->events = events_;
    report->customers = customer_ids_.size();
    report->items = item_index_.size();
    report->baskets = baskets_;
    report->baskets_scored = baskets_scored_;
    report->first_time_ms = first_time_ms_;
    report->last_time_ms = watermark_;
    for (ProviderTally& t : tallies_) {
      ProviderReport r = t.report;
      if (r.baskets_scored > 0) {
        r.hr_all = static_cast<double>(r.hits_all) / r.baskets_scored;
        r.hr_new = static_cast<double>(r.hits_new) / r.baskets_scored;
        r.mean_list_length = static_cast<double>(t.list_items) / r.baskets_scored;
      }
      r.seconds = t.micros / 1e6;
      report->providers.push_back(std::move(r));
    }
  }

  uint64_t events() const { return events_; }

 private:
  static uint32_t Number(std::unordered_map<std::string, uint32_t>* index,
                         std::vector<std::string>* names, const std::string& id) {
    auto [it, inserted] = index->try_emplace(id, static_cast<uint32_t>(index->size()));
    if (inserted && names != nullptr) names->push_back(id);
    return it->second;
  }

  Status FlushGroup() {
    const int64_t t = group_time_;
    if (events_ == 0) first_time_ms_ = t;

    // Baskets of the group: (customer, item) pairs sorted, items deduplicated.
    order_.resize(group_.size());
    for (size_t e = 0; e < group_.size(); ++e) order_[e] = e;
    std::sort(order_.begin(), order_.end(), [this](size_t a, size_t b) {
      const EventIds& x = group_ids_[a];
      const EventIds& y = group_ids_[b];
      return x.customer != y.customer ? x.customer < y.customer : x.item < y.item;
    });
    baskets_in_group_.clear();
    for (size_t e : order_) {
      const EventIds& ids = group_ids_[e];
      if (baskets_in_group_.empty() || baskets_in_group_.back().customer != ids.customer) {
        baskets_in_group_.push_back(Basket{ids.customer, {}});
      }
      std::vector<uint32_t>& items = baskets_in_group_.back().items;
      if (items.empty() || items.back() != ids.item) items.push_back(ids.item);
    }
    scored_.clear();
    for (const Basket& b : baskets_in_group_) {
      if (last_basket_ms_[b.customer] != INT64_MIN) scored_.push_back(&b);
    }
    baskets_ += baskets_in_group_.size();
    baskets_scored_ += scored_.size();

    // Lists from strictly earlier events, scored against the history before this group.
    for (ProviderTally& tally : tallies_) {
      int64_t start = clock_->NowMicros();
      tally.provider->AdvanceTo(t);
      for (const Basket* b : scored_) {
        tally.provider->Recommend(b->customer, &list_);
        tally.micros += clock_->NowMicros() - start;
        if (list_.size() > static_cast<size_t>(options_.k)) list_.resize(options_.k);
        Score(*b, &tally);
        if (recs_out_) STREAMREC_RETURN_IF_ERROR(WriteList(b->customer, &tally));
        start = clock_->NowMicros();
      }
      tally.micros += clock_->NowMicros() - start;
    }

    // Apply the group: the exact history first (it decides EventIds::new_item_for_customer).
    for (EventIds& ids : group_ids_) {
      ids.new_item_for_customer = owned_.insert(PairKey(ids.customer, ids.item)).second;
    }
    for (ProviderTally& tally : tallies_) {
      const int64_t start = clock_->NowMicros();
      for (size_t e = 0; e < group_.size(); ++e) tally.provider->Observe(group_[e], group_ids_[e]);
      tally.micros += clock_->NowMicros() - start;
    }
    for (const Basket& b : baskets_in_group_) last_basket_ms_[b.customer] = t;
    events_ += group_.size();
    watermark_ = t;
    group_.clear();
    group_ids_.clear();
    return Status::OK();
  }

  void Score(const Basket& basket, ProviderTally* tally) {
    bool hit_all = false;
    bool hit_new = false;
    for (const Recommendation& rec : list_) {
      auto it = item_index_.find(rec.item_id);
      if (it == item_index_.end()) continue;
      if (!std::binary_search(basket.items.begin(), basket.items.end(), it->second)) continue;
      hit_all = true;
      if (!owned_.contains(PairKey(basket.customer, it->second))) hit_new = true;
    }
    ProviderReport& r = tally->report;
    ++r.baskets_scored;
    r.hits_all += hit_all;
    r.hits_new += hit_new;
    tally->list_items += list_.size();
  }

  // Sends list_ to recs_out_ when the provider describes its lists.
  Status WriteList(uint32_t customer, ProviderTally* tally) {
    v1::RecommendationList list;
    if (!tally->provider->DescribeList(customer, &list)) return Status::OK();
    if (tally->versions.size() <= customer) tally->versions.resize(customer_ids_.size(), 0);
    list.set_customer_id(customer_ids_[customer]);
    list.set_version(++tally->versions[customer]);
    list.set_as_of_ms(watermark_);
    for (const Recommendation& r : list_) {
      v1::RecommendedItem* item = list.add_items();
      item->set_item_id(r.item_id);
      item->set_score(r.score);
      item->set_strategy(r.strategy);
      item->set_reason(r.reason);
    }
    return recs_out_(list);
  }

  const EvaluationOptions& options_;
  const ListSink& recs_out_;
  const Clock* clock_;
  std::vector<ProviderTally> tallies_;

  std::unordered_map<std::string, uint32_t> customer_index_;
  std::vector<std::string> customer_ids_;
  std::unordered_map<std::string, uint32_t> item_index_;
  std::vector<int64_t> last_basket_ms_;  // by customer; INT64_MIN: no basket yet
  std::unordered_set<uint64_t> owned_;   // (customer, item) bought before the current group

  std::vector<PurchaseEvent> group_;  // events of time group_time_, in input order
  std::vector<EventIds> group_ids_;
  int64_t group_time_ = 0;
  std::vector<size_t> order_;
  std::vector<Basket> baskets_in_group_;
  std::vector<const Basket*> scored_;
  std::vector<Recommendation> list_;

  uint64_t events_ = 0;
  uint64_t baskets_ = 0;
  uint64_t baskets_scored_ = 0;
  int64_t first_time_ms_ = 0;
  int64_t watermark_ = 0;  // the newest event time applied
};

}  // namespace

const char* EvaluationModeName(EvaluationMode mode) {
  return mode == EvaluationMode::kNextPurchase ? "next-purchase" : "cross-sell";
}

StatusOr<EvaluationMode> ParseEvaluationMode(std::string_view text) {
  if (text == "cross-sell") return EvaluationMode::kCrossSell;
  if (text == "next-purchase") return EvaluationMode::kNextPurchase;
  return Status::InvalidArgument("mode '" + std::string(text) +
                                 "': expected cross-sell or next-purchase");
}

Status ValidateEvaluationOptions(const EvaluationOptions& options) {
  if (options.k < 1 || options.k > kMaxK) {
    return Status::InvalidArgument("k " + std::to_string(options.k) + " out of range [1, " +
                                   std::to_string(kMaxK) + "]");
  }
  if (options.popularity_window_ms <= 0) {
    return Status::InvalidArgument("popularity_window_ms " +
                                   std::to_string(options.popularity_window_ms) +
                                   " must be positive");
  }
  if (options.format != "csv" && options.format != "json") {
    return Status::InvalidArgument("format '" + options.format + "': expected csv or json");
  }
  return Status::OK();
}

RecommenderOptions RecommenderOptionsForMode(const RecommenderOptions& base,
                                             const EvaluationOptions& options) {
  RecommenderOptions out = base;
  out.list_length = options.k;
  out.exclude_owned = options.mode == EvaluationMode::kCrossSell;
  // Cross-sell means new items only: no owned item comes back, due or not.
  if (out.exclude_owned) out.reoffer_due_exempt = false;
  // Next-purchase predicts the whole next basket, in which re-buys dominate: the re-offer
  // strategy leads and co-occurrence fills the list with new items.
  if (options.mode == EvaluationMode::kNextPurchase) {
    out.weights = "reoffer=1,cooccurrence=0.3,als=0.1,popularity=0.02";
    out.segment_weights = "";
  }
  return out;
}

std::unique_ptr<ListProvider> NewWindowPopularityProvider(const EvaluationOptions& options,
                                                          bool exclude_owned) {
  return std::make_unique<WindowPopularityProvider>(options, exclude_owned);
}

std::unique_ptr<ListProvider> NewOwnMostBoughtProvider(const EvaluationOptions& options) {
  return std::make_unique<OwnMostBoughtProvider>(options);
}

std::unique_ptr<ListProvider> NewCooccurrenceProvider(const EvaluationOptions& options) {
  return std::make_unique<CooccurrenceProvider>(options);
}

std::vector<std::unique_ptr<ListProvider>> NewBaselineProviders(const EvaluationOptions& options) {
  std::vector<std::unique_ptr<ListProvider>> out;
  out.push_back(NewWindowPopularityProvider(options, /*exclude_owned=*/false));
  out.push_back(NewWindowPopularityProvider(options, /*exclude_owned=*/true));
  out.push_back(NewOwnMostBoughtProvider(options));
  out.push_back(NewCooccurrenceProvider(options));
  return out;
}

std::unique_ptr<ListProvider> NewStreamrecListProvider(const StreamrecListProviderOptions& options,
                                                       Recommender* recommender,
                                                       Segmenter* segmenter) {
  return std::make_unique<StreamrecListProvider>(options, recommender, segmenter);
}

StatusOr<EvaluationReport> RunEvaluation(const EvaluationOptions& options,
                                         const std::string& events_path,
                                         std::span<ListProvider* const> providers,
                                         const ListSink& recs_out, std::FILE* progress) {
  STREAMREC_RETURN_IF_ERROR(ValidateEvaluationOptions(options));
  for (ListProvider* p : providers) {
    if (p == nullptr) return Status::InvalidArgument("null list provider");
  }
  const Clock* clock = options.clock != nullptr ? options.clock : SystemClock();
  const int64_t start_us = clock->NowMicros();

  auto reader_or = LineReader::Open(events_path);
  if (!reader_or.ok()) return reader_or.status();
  std::unique_ptr<LineReader> reader = std::move(reader_or).value();

  std::string line;
  std::unique_ptr<Decoder> decoder;
  if (options.format == "csv") {
    if (!reader->Next(&line)) {
      STREAMREC_RETURN_IF_ERROR(reader->status());
      return Status::InvalidArgument("input '" + events_path + "' is empty (no CSV header)");
    }
    auto d = NewCsvDecoder(options.decoder, line);
    if (!d.ok()) {
      return Status::InvalidArgument("input '" + events_path + "': " + d.status().message());
    }
    decoder = std::move(d).value();
  } else {
    decoder = NewJsonDecoder(options.decoder);
  }

  EvaluationReport report;
  report.mode = options.mode;
  report.k = options.k;
  Evaluator evaluator(options, providers, recs_out, clock);
  ProgressBar bar(progress, clock, "events");
  int invalid_shown = 0;
  PurchaseEvent event;
  while (true) {
    if (options.max_records > 0 && report.records >= options.max_records) {
      report.stopped = true;
      break;
    }
    if (options.stop != nullptr && options.stop->load(std::memory_order_relaxed)) {
      report.stopped = true;
      break;
    }
    if (!reader->Next(&line)) {
      STREAMREC_RETURN_IF_ERROR(reader->status());
      break;
    }
    if (line.empty()) continue;
    ++report.records;
    Status s = decoder->Decode(line, &event);
    if (!s.ok()) {
      ++report.invalid;
      if (progress != nullptr && invalid_shown < kInvalidExamplesShown) {
        std::fprintf(progress, "\rskipped record %llu: %s\n",
                     static_cast<unsigned long long>(report.records),
                     InvalidRecordForLog(s, options.log_ids).c_str());
        ++invalid_shown;
      }
      continue;
    }
    STREAMREC_RETURN_IF_ERROR(evaluator.Add(std::move(event), report.records));
    if ((report.records & 0xfff) == 0) {
      double size = static_cast<double>(reader->file_size());
      bar.Update(evaluator.events(), size > 0 ? reader->file_position() / size : -1.0);
    }
  }
  STREAMREC_RETURN_IF_ERROR(evaluator.Finish());
  bar.Finish(evaluator.events());
  evaluator.Fill(&report);
  report.wall_seconds = (clock->NowMicros() - start_us) / 1e6;
  return report;
}

std::string EvaluationReportToJson(const EvaluationReport& r) {
  JsonWriter w;
  w.BeginObject();
  w.Key("mode").String(EvaluationModeName(r.mode));
  w.Key("k").Int(r.k);
  w.Key("records").Uint(r.records);
  w.Key("events").Uint(r.events);
  w.Key("invalid").Uint(r.invalid);
  w.Key("customers").Uint(r.customers);
  w.Key("items").Uint(r.items);
  w.Key("baskets").Uint(r.baskets);
  w.Key("baskets_scored").Uint(r.baskets_scored);
  w.Key("first_time").String(r.events > 0 ? FormatIso8601(r.first_time_ms) : "");
  w.Key("last_time").String(r.events > 0 ? FormatIso8601(r.last_time_ms) : "");
  w.Key("wall_seconds").Double(std::round(r.wall_seconds * 1000) / 1000);
  w.Key("stopped").Bool(r.stopped);
  w.Key("providers").BeginArray();
  for (const ProviderReport& p : r.providers) {
    w.BeginObject();
    w.Key("name").String(p.name);
    w.Key("hr_all").Double(p.hr_all);
    w.Key("hr_new").Double(p.hr_new);
    w.Key("baskets_scored").Uint(p.baskets_scored);
    w.Key("hits_all").Uint(p.hits_all);
    w.Key("hits_new").Uint(p.hits_new);
    w.Key("mean_list_length").Double(p.mean_list_length);
    w.Key("seconds").Double(std::round(p.seconds * 1000) / 1000);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return w.Release();
}

}  // namespace streamrec
