#include "streamrec/blended_recommender.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "background_thread.h"
#include "strategy_util.h"
#include "streamrec/als.h"
#include "streamrec/state_store.h"

namespace streamrec {

namespace {

std::string_view TrimView(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> SplitView(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(sep, start);
    if (end == std::string_view::npos) end = s.size();
    std::string_view part = TrimView(s.substr(start, end - start));
    if (!part.empty()) out.push_back(part);
    start = end + 1;
  }
  return out;
}

bool KnownStrategy(std::string_view name) {
  for (const char* n : kStrategyNames) {
    if (name == n) return true;
  }
  return false;
}

AlsOptions AlsOptionsFrom(const RecommenderOptions& o) {
  AlsOptions a;
  a.factors = o.als_factors;
  a.iterations = o.als_iterations;
  a.regularization = o.als_regularization;
  a.confidence = o.als_confidence == "log" ? AlsConfidence::kLog : AlsConfidence::kLinear;
  a.alpha = o.als_alpha;
  a.threads = o.als_threads;
  return a;
}

std::string KnownStrategies() {
  std::string out;
  for (const char* n : kStrategyNames) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

}  // namespace

Status ParseStrategyWeights(std::string_view key, std::string_view text, StrategyWeights* out) {
  out->clear();
  for (std::string_view part : SplitView(text, ',')) {
    size_t eq = part.find('=');
    auto bad = [&](const std::string& why) {
      return Status::InvalidArgument("configuration key '" + std::string(key) + "': bad weight '" +
                                     std::string(part) + "' (" + why + ")");
    };
    if (eq == std::string_view::npos) return bad("expected strategy=weight");
    std::string name(TrimView(part.substr(0, eq)));
    std::string number(TrimView(part.substr(eq + 1)));
    if (!KnownStrategy(name)) return bad("unknown strategy; known: " + KnownStrategies());
    char* end = nullptr;
    double w = std::strtod(number.c_str(), &end);
    if (number.empty() || end != number.c_str() + number.size() || !std::isfinite(w) || w < 0) {
      return bad("weight must be a number >= 0");
    }
    if (out->count(name) > 0) return bad("strategy named twice");
    (*out)[name] = w;
  }
  return Status::OK();
}

Status ParseSegmentWeights(std::string_view key, std::string_view text,
                           std::map<std::string, StrategyWeights>* out) {
  out->clear();
  for (std::string_view part : SplitView(text, ';')) {
    size_t colon = part.find(':');
    if (colon == std::string_view::npos || TrimView(part.substr(0, colon)).empty()) {
      return Status::InvalidArgument("configuration key '" + std::string(key) + "': bad entry '" +
                                     std::string(part) +
                                     "' (expected Segment:strategy=weight,...)");
    }
    std::string segment(TrimView(part.substr(0, colon)));
    if (out->count(segment) > 0) {
      return Status::InvalidArgument("configuration key '" + std::string(key) + "': segment '" +
                                     segment + "' named twice");
    }
    STREAMREC_RETURN_IF_ERROR(ParseStrategyWeights(key, part.substr(colon + 1), &(*out)[segment]));
  }
  return Status::OK();
}

StatusOr<std::unique_ptr<Strategy>> NewStrategyByName(std::string_view name,
                                                      const RecommenderOptions& options,
                                                      const Catalog* catalog) {
  StrategyOptions s = options.strategies;
  s.popularity_half_life_days = options.popularity_half_life_days;
  if (name == "cooccurrence") return NewCooccurrenceStrategy(s);
  if (name == "similar") return NewSimilarCustomersStrategy(s);
  if (name == "popularity") return NewPopularityStrategy(s);
  if (name == "upsell") return NewUpsellStrategy(s, catalog);
  if (name == "reoffer") return NewReofferStrategy(s);
  if (name == "als") return NewAlsStrategy(s);
  return Status::InvalidArgument("unknown strategy '" + std::string(name) +
                                 "'; known: " + KnownStrategies());
}

namespace {

// Keys of the ALS model in the model column family: the encoded model, its version (decimal;
// absent in stores written before versions: 0), and a marker present while a re-fit was
// triggered and its model is not yet installed (a background fit in flight).
constexpr const char* kAlsModelKey = "als";
constexpr const char* kAlsVersionKey = "als_version";
constexpr const char* kAlsRefitDueKey = "als_refit_due";
// The salt of UniformHash(customer id, salt) that orders customers for the ALS fit's sample.
constexpr char kAlsSampleSalt[] = "als";

// rank[i] = position of ids[i] in ascending order.
std::vector<uint32_t> RankById(const std::vector<std::string>& ids) {
  std::vector<uint32_t> order(ids.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return ids[a] < ids[b]; });
  std::vector<uint32_t> rank(ids.size());
  for (uint32_t r = 0; r < order.size(); ++r) rank[order[r]] = r;
  return rank;
}

// Whether a model fitted with `a` can warm-start a fit with `b`: the same objective.
bool SameFit(const AlsOptions& a, const AlsOptions& b) {
  return a.factors == b.factors && a.regularization == b.regularization &&
         a.confidence == b.confidence && a.alpha == b.alpha && a.epsilon == b.epsilon;
}

// A fitted ALS model with its encoding; no model when no customer holds an item.
struct AlsFitResult {
  std::shared_ptr<const AlsModel> model;
  std::string encoded;
  uint32_t customers = 0;
  double seconds = 0;  // wall-clock duration of the fit
};

// Fits ALS on every customer of `store` (may be null) with `batch`'s states in place of their
// stored ones. The one fit of both re-fit modes: the same store and batch give the same model,
// bit for bit, on the consumer thread or on a background one. options.cancel also stops the
// store scan.
// `warm` (may be null): the model in use; when it was fitted with the same options the fit
// starts from it and runs `warm_iterations` sweeps instead of options.iterations (none when 0).
// `max_customers` > 0 fits on the customers whose ids hash lowest, at most that many: the
// model keeps only item factors (customers are folded in at list time), and a few hundred
// thousand customers pin those down as well as all of them would, at a bounded cost.
// `shared` (may be null): with several instances, the stored customers of the owned partitions
// and the other partitions' samples instead of every stored customer.
StatusOr<AlsFitResult> FitAlsOnCustomers(StateStore* store, std::span<const CustomerState> batch,
                                         AlsOptions options, const AlsModel* warm,
                                         int warm_iterations, int64_t max_customers_option,
                                         const CustomerIdsInLogs& log_ids,
                                         const SharedFitSamples* shared) {
  const uint64_t max_customers = static_cast<uint64_t>(std::max<int64_t>(max_customers_option, 0));
  const auto start = std::chrono::steady_clock::now();
  // Customers by id (the batch's states win over the stored ones), items interned as seen.
  std::unordered_set<std::string_view> in_batch;
  for (const CustomerState& c : batch) in_batch.insert(c.customer_id());
  std::vector<std::string> customers;
  std::vector<double> customer_hash;  // only when sampling
  std::vector<std::string> items;
  std::unordered_map<std::string, uint32_t> item_slot;
  std::vector<AlsTriplet> cells;
  // Keeps the customers hashing below `threshold` (cells are in customer order).
  double threshold = 1.0;
  auto keep_below = [&](double t) {
    threshold = t;
    std::vector<uint32_t> renumber(customers.size(), UINT32_MAX);
    uint32_t kept = 0;
    for (uint32_t u = 0; u < customers.size(); ++u) {
      if (customer_hash[u] >= t) continue;
      renumber[u] = kept;
      customers[kept] = std::move(customers[u]);
      customer_hash[kept] = customer_hash[u];
      ++kept;
    }
    customers.resize(kept);
    customer_hash.resize(kept);
    size_t out = 0;
    for (const AlsTriplet& cell : cells) {
      if (renumber[cell.user] == UINT32_MAX) continue;
      cells[out] = cell;
      cells[out++].user = renumber[cell.user];
    }
    cells.resize(out);
  };
  auto add = [&](const CustomerState& c) {
    if (max_customers > 0) {
      const double h = UniformHash(c.customer_id(), kAlsSampleSalt);
      if (h >= threshold) return;
      customer_hash.push_back(h);
    }
    const uint32_t u = static_cast<uint32_t>(customers.size());
    customers.push_back(c.customer_id());
    for (const auto& e : c.items()) {
      if (e.count() == 0) continue;
      auto [it, inserted] = item_slot.try_emplace(e.item_id(), items.size());
      if (inserted) items.push_back(e.item_id());
      cells.push_back({u, it->second, static_cast<double>(e.count())});
    }
    // Memory stays bounded during the scan: at most twice the cap is held.
    if (max_customers > 0 && customers.size() > 2 * max_customers) keep_below(threshold / 2);
  };
  auto cancelled = [&] { return options.cancel != nullptr && options.cancel->load(); };
  if (store != nullptr) {
    const SharedFitSamples none;  // one instance: every stored customer
    const auto fits = (shared != nullptr ? shared : &none)->StoredKeyFilter();
    // Decided on the key, before decoding: at 10M customers and a 200k cap, the sample's
    // threshold soon leaves ~98 % of the stored states undecoded.
    auto wanted = [&](std::string_view key) {
      const std::string_view id = CustomerIdOfKey(key);
      if (in_batch.count(id) != 0 || !fits(key)) return false;
      return max_customers == 0 || UniformHash(id, kAlsSampleSalt) < threshold;
    };
    STREAMREC_RETURN_IF_ERROR(ScanCustomers(store, log_ids, wanted, [&](std::string_view,
                                                                        CustomerState& state) {
      add(state);
      return (customers.size() & 1023) != 0 || !cancelled();
    }));
    if (cancelled()) return Status::Aborted("ALS fit: cancelled while reading the customers");
  }
  if (shared != nullptr && shared->samples) {
    shared->samples([&](const CustomerState& state) {
      if (in_batch.count(state.customer_id()) == 0) add(state);
    });
  }
  for (const CustomerState& c : batch) {
    if (!c.customer_id().empty()) add(c);  // (evaluation: slots of unseen customers are empty)
  }
  if (max_customers > 0 && customers.size() > max_customers) {
    // Exactly the max_customers lowest hashes: the sample depends on the set of customers only.
    keep_below(BottomKThreshold(customer_hash, max_customers));
  }
  if (max_customers > 0) {
    // Items only customers outside the sample hold are left out of the model.
    std::vector<uint32_t> slot(items.size(), UINT32_MAX);
    std::vector<std::string> used;
    for (AlsTriplet& cell : cells) {
      if (slot[cell.item] == UINT32_MAX) {
        slot[cell.item] = static_cast<uint32_t>(used.size());
        used.push_back(std::move(items[cell.item]));
      }
      cell.item = slot[cell.item];
    }
    items = std::move(used);
  }
  AlsFitResult result;
  if (items.empty()) return result;
  // Canonical order (customers and items by id), so the fit depends only on the states, not
  // on partitions or on where micro-batches were cut.
  std::vector<uint32_t> user_rank = RankById(customers);
  std::vector<uint32_t> item_rank = RankById(items);
  for (AlsTriplet& t : cells) {
    t.user = user_rank[t.user];
    t.item = item_rank[t.item];
  }
  std::sort(items.begin(), items.end());
  result.customers = static_cast<uint32_t>(customers.size());
  auto matrix =
      AlsMatrixFromTriplets(static_cast<uint32_t>(customers.size()), std::move(items), cells);
  if (!matrix.ok()) return matrix.status();
  if (warm != nullptr && warm_iterations > 0 && SameFit(warm->options(), options)) {
    options.iterations = warm_iterations;
  } else {
    warm = nullptr;
  }
  auto model = AlsFit(*matrix, options, nullptr, warm);
  if (!model.ok()) return model.status();
  result.encoded = model->Encode();
  result.model = std::make_shared<const AlsModel>(std::move(model).value());
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

// Makes a fresh set of the recommender's strategies, in the same order (for more lanes).
using StrategyFactory = std::function<StatusOr<std::vector<std::unique_ptr<Strategy>>>()>;

class BlendedRecommenderImpl final : public Recommender {
 public:
  BlendedRecommenderImpl(const RecommenderOptions& options, const Catalog* catalog,
                         std::vector<std::unique_ptr<Strategy>> strategies,
                         StrategyWeights default_weights,
                         std::map<std::string, StrategyWeights> segment_weights,
                         AlsRefitOptions refit, StrategyFactory strategy_factory)
      : options_(options),
        refit_(std::move(refit)),
        catalog_(catalog),
        index_(RecommendIndexOptions{options.exemplar_share,
                                     static_cast<uint64_t>(std::max<int64_t>(
                                         options.max_exemplars, 0))}),
        strategies_(std::move(strategies)),
        strategy_factory_(std::move(strategy_factory)) {
    lane0_.strategies_ptr = &strategies_;
    for (std::string_view id : SplitView(options.exclude_items, ',')) {
      excluded_.insert(std::string(id));
    }
    default_weights_ = ToVector(default_weights);
    for (auto& [segment, w] : segment_weights) segment_weights_[segment] = ToVector(w);
    if (!refit_.logger) refit_.logger = NewStderrLogger();
  }

  ~BlendedRecommenderImpl() override { StopBackgroundFit(); }

  bool ObservesCustomers() const override { return true; }
  void ObserveChange(const CustomerState* before, const CustomerState& after) override {
    index_.ObserveChange(before, after);
  }
  void ObserveRelabel(const CustomerState& state) override { index_.ObserveRelabel(state); }
  void ResetObserved() override { index_.Clear(); }
  void SetRemoteCooccurrence(uint32_t partition, const CooccurrenceRow& row) override {
    index_.SetRemoteRow(partition, row);
  }
  std::pair<uint64_t, uint64_t> cooccurrence_totals() const override {
    return index_.CooccurrenceTotals();
  }

  Status LoadModel(StateStore* store) override {
    als_.reset();
    als_version_ = 0;
    std::string value;
    Status s = store->Get(Column::kModel, kAlsModelKey, &value);
    if (s.ok()) {
      auto model = AlsModel::Decode(value);
      if (!model.ok()) return Status::Corruption("stored ALS model: " + model.status().message());
      als_ = std::make_shared<const AlsModel>(std::move(model).value());
      s = store->Get(Column::kModel, kAlsVersionKey, &value);
      if (s.ok()) {
        char* end = nullptr;
        als_version_ = std::strtoull(value.c_str(), &end, 10);
        if (value.empty() || end != value.c_str() + value.size()) {
          return Status::Corruption("stored ALS model version '" + value + "'");
        }
      } else if (!s.IsNotFound()) {
        return s;
      }
    } else if (!s.IsNotFound()) {
      return s;
    }
    s = store->Get(Column::kModel, kAlsRefitDueKey, &value);
    if (!s.ok() && !s.IsNotFound()) return s;
    refit_due_stored_ = s.ok();
    // A stored trigger whose model never made it to the store: fit again.
    refit_pending_ = refit_pending_ || refit_due_stored_;
    return Status::OK();
  }

  Status RefitModel(StateStore* store, std::span<const CustomerState> batch,
                    WriteSet* writes) override {
    StopBackgroundFit();  // this fit is newer than one in flight
    refit_pending_ = false;
    if (!UsesAls() || !refitter_) return Status::OK();
    auto fit = FitAlsOnCustomers(store, batch, als_options_, als_.get(),
                                 options_.als_warm_iterations, options_.als_max_customers,
                                 refit_.log_ids, SharedOrNull());
    if (!fit.ok()) return fit.status();
    if (fit->model) {
      Install(std::move(fit).value(), writes);
    } else if (refit_due_stored_) {
      writes->Delete(Column::kModel, kAlsRefitDueKey);  // nothing to fit: the trigger is done
      refit_due_stored_ = false;
    }
    return Status::OK();
  }

  Status UpdateModel(StateStore* store, std::span<const CustomerState> batch, bool refit_due,
                     WriteSet* writes) override {
    if (!refit_.background) {
      return refit_due || refit_pending_ ? RefitModel(store, batch, writes) : Status::OK();
    }
    if (!UsesAls()) return Status::OK();
    InstallFinishedFit(writes);
    if (!refitter_) return Status::OK();  // the refitter's versions come through AdoptOffered
    if (refit_due || refit_pending_) StartBackgroundFit(store, batch, refit_due, writes);
    return Status::OK();
  }

  bool UpdateModelIdle(StateStore* store, WriteSet* writes) override {
    // Only a background fit can finish between batches: UpdateModel with no batch and no new
    // trigger installs it and starts a pending one (its background branch never fails).
    if (!refit_.background) return false;
    const uint64_t before = als_version_;
    if (!UpdateModel(store, {}, /*refit_due=*/false, writes).ok()) return false;
    return als_version_ != before;
  }

  uint64_t model_version() const override { return als_version_; }

  void SetSharedSamples(SharedFitSamples shared) override { shared_ = std::move(shared); }
  const SharedFitSamples* SharedOrNull() const {
    return shared_.samples || shared_.owned ? &shared_ : nullptr;
  }

  void SetModelRefitter(bool refitter) override {
    if (refitter == refitter_) return;
    refitter_ = refitter;
    if (!refitter) {
      StopBackgroundFit();  // its result would be dropped anyway
      refit_pending_ = false;
    }
  }

  void set_on_model_fitted(
      std::function<void(uint64_t version, const std::string& encoded)> on_fitted) override {
    on_fitted_ = std::move(on_fitted);
  }

  Status OfferModel(uint64_t version, std::string encoded) override {
    auto model = AlsModel::Decode(encoded);
    if (!model.ok()) {
      return Status::InvalidArgument("ALS model v" + std::to_string(version) +
                                     " does not decode: " + model.status().message());
    }
    std::lock_guard<std::mutex> lock(offered_mu_);
    if (offered_ && offered_->version > version) return Status::OK();
    offered_ = Offered{version, std::make_shared<const AlsModel>(std::move(model).value()),
                       std::move(encoded), ++offers_};
    return Status::OK();
  }

  bool AdoptOffered(WriteSet* writes) override {
    std::optional<Offered> offered;
    {
      std::lock_guard<std::mutex> lock(offered_mu_);
      if (!offered_ || offered_->seq == adopted_seq_) return false;
      // A follower also takes another fit of the version it has (two owners of partition 0 in
      // turn may each have fitted it); the refitter only a newer one.
      const bool newer = offered_->version > als_version_ ||
                         (!refitter_ && offered_->version == als_version_);
      if (!newer) return false;
      offered = offered_;
      adopted_seq_ = offered_->seq;
    }
    als_ = std::move(offered->model);
    als_version_ = offered->version;
    writes->Put(Column::kModel, kAlsModelKey, std::move(offered->encoded));
    writes->Put(Column::kModel, kAlsVersionKey, std::to_string(als_version_));
    if (refit_due_stored_ && !refitter_) {
      writes->Delete(Column::kModel, kAlsRefitDueKey);
      refit_due_stored_ = false;
    }
    ++adopted_;
    return true;
  }

  uint64_t models_adopted() const override { return adopted_; }

  bool WaitForBackgroundRefit(int64_t timeout_ms) override {
    std::unique_lock<std::mutex> lock(fit_mu_);
    return fit_done_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                              [&] { return !fit_running_; });
  }

  ModelRefitStats refit_stats() const override {
    ModelRefitStats stats = refit_stats_;
    std::lock_guard<std::mutex> lock(fit_mu_);
    stats.running = fit_running_;
    stats.pending = refit_pending_;
    return stats;
  }

  void BeginBatch(const ItemStatsTable& items, int64_t now_ms) override {
    env_.index = &index_;
    env_.als = als_.get();
    env_.stats = &items;
    env_.catalog = catalog_;
    env_.skip_owned = options_.exclude_owned;
    env_.now_ms = now_ms;
    IndexCatalog(index_, catalog_, &catalog_items_);
    env_.catalog_items = catalog_items_;
    IndexStats(index_, &items, &item_stats_);
    env_.item_stats = item_stats_;
    for (auto& s : strategies_) s->BeginBatch(env_);
    for (auto& lane : lanes_) lane->begun = false;  // the others begin when first used
    lane0_.begun = true;
  }

  void Recommend(const CustomerState& customer, std::vector<Recommendation>* out) override {
    RecommendIn(&lane0_, customer, out);
  }

  void RecommendMany(std::span<const CustomerState* const> customers,
                     std::vector<std::vector<Recommendation>>* out) override {
    out->resize(customers.size());
    // A lane is worth its thread and its strategies' BeginBatch from a few dozen lists on.
    constexpr size_t kMinPerLane = 32;
    size_t lanes = std::min<size_t>(static_cast<size_t>(std::max(options_.threads, 1)),
                                    customers.size() / kMinPerLane);
    if (lanes > 1 && !EnsureLanes(lanes - 1)) lanes = 1;
    if (lanes <= 1) {
      for (size_t i = 0; i < customers.size(); ++i) RecommendIn(&lane0_, *customers[i], &(*out)[i]);
      return;
    }
    // Contiguous chunks; lane 0 runs on the calling thread.
    auto run = [&](size_t lane, Lane* l) {
      if (!l->begun) {
        for (auto& st : l->strategies) st->BeginBatch(env_);
        l->begun = true;
      }
      const size_t begin = customers.size() * lane / lanes;
      const size_t end = customers.size() * (lane + 1) / lanes;
      for (size_t i = begin; i < end; ++i) RecommendIn(l, *customers[i], &(*out)[i]);
    };
    std::vector<std::thread> threads;
    threads.reserve(lanes - 1);
    for (size_t lane = 1; lane < lanes; ++lane) {
      threads.emplace_back(run, lane, lanes_[lane - 1].get());
    }
    run(0, &lane0_);
    for (std::thread& t : threads) t.join();
  }

 private:
  struct Blended {
    uint32_t item;
    double score;
    double best_part;
    size_t strategy;
    Candidate candidate;
    bool due;
  };

  // What one list computation writes: its own strategy instances (they keep scratch space and
  // what Explain reads between Score and Explain) and the blend's buffers. Lane 0 uses
  // strategies_; the others get instances of their own from the factory.
  struct Lane {
    std::vector<std::unique_ptr<Strategy>>* strategies_ptr = nullptr;
    std::vector<std::unique_ptr<Strategy>> strategies;
    bool begun = false;  // BeginBatch called on its strategies for this batch
    CustomerView view;
    std::vector<Candidate> candidates;
    std::vector<Blended> blend;
    std::vector<Blended*> kept;
    // Position in blend of each dense item id of the list being blended (kNoSlot: none).
    std::vector<uint32_t> slot;
    std::unordered_map<std::string, int> per_category;
    std::vector<uint64_t> baskets;  // basket coverage: the recent baskets of the pool's items
  };

  // Makes sure `extra` lanes besides lane 0 exist; false when the strategies cannot be made
  // again (injected ones without a factory, or a factory error).
  bool EnsureLanes(size_t extra) {
    while (lanes_.size() < extra) {
      if (!strategy_factory_) return false;
      auto made = strategy_factory_();
      if (!made.ok() || made->size() != strategies_.size()) return false;
      auto lane = std::make_unique<Lane>();
      lane->strategies = std::move(made).value();
      lane->strategies_ptr = &lane->strategies;
      lanes_.push_back(std::move(lane));
    }
    return true;
  }

  void RecommendIn(Lane* lane, const CustomerState& customer, std::vector<Recommendation>* out) {
    out->clear();
    if (env_.index == nullptr) return;  // BeginBatch not called yet
    std::vector<std::unique_ptr<Strategy>>& strategies = *lane->strategies_ptr;
    CustomerView& view = lane->view;
    std::vector<Candidate>& candidates = lane->candidates;
    std::vector<Blended>& blend = lane->blend;
    std::vector<uint32_t>& slot_of = lane->slot;
    PrepareCustomerView(env_, customer, &view);
    const std::vector<double>& weights = WeightsFor(customer.segment());

    // Blend.
    for (const Blended& b : blend) slot_of[b.item] = kNoSlot;  // the previous list's entries
    blend.clear();
    if (slot_of.size() < index_.item_count()) slot_of.resize(index_.item_count(), kNoSlot);
    for (size_t s = 0; s < strategies.size(); ++s) {
      const double w = weights[s];
      if (w <= 0) continue;
      candidates.clear();
      strategies[s]->Score(env_, view, options_.candidates_per_strategy, &candidates);
      double best = 0;
      for (const Candidate& c : candidates) best = std::max(best, c.score);
      if (best <= 0) continue;
      for (Candidate& c : candidates) {
        if (c.score <= 0 || c.item == kNoItem) continue;
        const double part = w * c.score / best;
        uint32_t& slot = slot_of[c.item];
        if (slot == kNoSlot) {
          slot = static_cast<uint32_t>(blend.size());
          blend.push_back(Blended{c.item, 0, 0, s, {}, false});
        }
        Blended& b = blend[slot];
        b.score += part;
        b.due = b.due || c.due;
        if (part > b.best_part ||
            (part == b.best_part && std::string_view(strategies[s]->name()) <
                                        strategies[b.strategy]->name())) {
          b.best_part = part;
          b.strategy = s;
          b.candidate = std::move(c);
        }
      }
    }

    // Rules.
    std::vector<Blended*>& kept = lane->kept;
    kept.clear();
    for (Blended& b : blend) {
      if (Allowed(b, view)) kept.push_back(&b);
    }
    auto better = [&](const Blended* a, const Blended* b) {
      if (a->score != b->score) return a->score > b->score;
      return index_.item_id(a->item) < index_.item_id(b->item);
    };
    // Only the list's length is needed in order (with basket coverage, the pool it picks from),
    // unless the category cap may skip some.
    const size_t length = static_cast<size_t>(options_.list_length);
    const double coverage = options_.basket_coverage;
    const bool cover = coverage > 0 && customer.purchase_count() > 1;
    const size_t pool = std::min(kept.size(), cover ? kCoveragePool * length : length);
    if (options_.max_per_category > 0 || kept.size() <= pool) {
      std::sort(kept.begin(), kept.end(), better);
    } else {
      std::partial_sort(kept.begin(), kept.begin() + static_cast<ptrdiff_t>(pool), kept.end(),
                        better);
    }
    // The recent baskets of each owned item in the pool (0: not owned, or unknown).
    std::vector<uint64_t>& baskets = lane->baskets;
    baskets.assign(cover ? pool : 0, 0);
    for (size_t i = 0; i < baskets.size(); ++i) {
      if (!view.Owns(kept[i]->item)) continue;
      const v1::ItemCount* e = FindItem(customer, index_.item_id(kept[i]->item));
      if (e != nullptr) baskets[i] = RecentBaskets(customer, *e);
    }
    uint64_t covered = 0;  // the recent baskets that a listed item was bought in
    std::unordered_map<std::string, int>& per_category = lane->per_category;
    per_category.clear();
    for (size_t i = 0; i < kept.size(); ++i) {
      if (out->size() >= length) break;
      double score = kept[i]->score;
      if (i < baskets.size()) {
        // Bring the pool's best remaining item, its score scaled by what it adds, to i (the
        // rest keep their order, so ties go as without coverage). The scaled scores of the
        // picks never rise: `covered` only grows.
        size_t best = i;
        double best_score = -1;
        for (size_t j = i; j < baskets.size(); ++j) {
          const double s = kept[j]->score * CoverageFactor(baskets[j], covered, coverage);
          if (s > best_score) {
            best_score = s;
            best = j;
          }
        }
        std::rotate(kept.begin() + i, kept.begin() + best, kept.begin() + best + 1);
        std::rotate(baskets.begin() + i, baskets.begin() + best, baskets.begin() + best + 1);
        score = best_score;
      }
      Blended* b = kept[i];
      const std::string& id = index_.item_id(b->item);
      if (options_.max_per_category > 0 && catalog_ != nullptr) {
        const CatalogItem* item = env_.CatalogItemOf(b->item);
        if (item != nullptr && !item->service_type.empty() &&
            ++per_category[item->service_type] > options_.max_per_category) {
          continue;
        }
      }
      if (i < baskets.size()) covered |= baskets[i];
      Recommendation r;
      r.item_id = id;
      r.score = score;
      r.strategy = strategies[b->strategy]->name();
      r.reason = strategies[b->strategy]->Explain(env_, view, b->candidate);
      out->push_back(std::move(r));
    }
  }

  // What an owned item bought in the recent baskets `held` still adds to a list that already
  // covers `covered`: (1 - c) + c * (share of `held` not covered); 1 when `held` is unknown.
  static double CoverageFactor(uint64_t held, uint64_t covered, double c) {
    if (held == 0) return 1.0;
    const double fresh = static_cast<double>(std::popcount(held & ~covered)) /
                         static_cast<double>(std::popcount(held));
    return (1.0 - c) + c * fresh;
  }

  std::vector<double> ToVector(const StrategyWeights& w) const {
    std::vector<double> out(strategies_.size(), 0.0);
    for (size_t s = 0; s < strategies_.size(); ++s) {
      auto it = w.find(strategies_[s]->name());
      if (it != w.end()) out[s] = it->second;
    }
    return out;
  }

  const std::vector<double>& WeightsFor(const std::string& segment) const {
    auto it = segment_weights_.find(segment);
    return it != segment_weights_.end() ? it->second : default_weights_;
  }

  bool Allowed(const Blended& b, const CustomerView& view) const {
    const std::string& id = index_.item_id(b.item);
    if (!excluded_.empty() && excluded_.count(id) > 0) return false;
    const CatalogItem* item = env_.CatalogItemOf(b.item);
    if (item != nullptr) {
      if (!item->recommendable) return false;
      if (!item->ActiveAt(env_.now_ms)) return false;
      if (options_.channel_eligibility && !item->channels.empty() &&
          !view.main_channel.empty() &&
          std::find(item->channels.begin(), item->channels.end(), view.main_channel) ==
              item->channels.end()) {
        return false;
      }
    }
    // view.Owns is "the item table holds the id" (FindItem) for every candidate: strategies
    // propose only items Find knows, and Find maps the customer's copy of the id to that item.
    if (options_.exclude_owned && view.Owns(b.item) && !(options_.reoffer_due_exempt && b.due)) {
      return false;
    }
    if (options_.price_cap_ratio > 0 && view.avg_line_price > 0) {
      double price = ItemPrice(env_, id);
      if (price > options_.price_cap_ratio * view.avg_line_price) return false;
    }
    return true;
  }

  // Makes `fit` the model in use, as the next version, and appends it to `writes`. The stored
  // trigger marker goes when no trigger is left (consumer thread).
  void Install(AlsFitResult fit, WriteSet* writes) {
    als_ = std::move(fit.model);
    ++als_version_;
    ++refit_stats_.installed;
    refit_stats_.last_seconds = fit.seconds;
    refit_stats_.last_customers = fit.customers;
    if (on_fitted_) on_fitted_(als_version_, fit.encoded);
    writes->Put(Column::kModel, kAlsModelKey, std::move(fit.encoded));
    writes->Put(Column::kModel, kAlsVersionKey, std::to_string(als_version_));
    if (refit_due_stored_ && !refit_pending_) {
      writes->Delete(Column::kModel, kAlsRefitDueKey);
      refit_due_stored_ = false;
    }
  }

  // Installs a background fit that finished since the last batch; a failed one is logged and
  // the model in use kept (consumer thread).
  void InstallFinishedFit(WriteSet* writes) {
    std::optional<FinishedFit> done;
    {
      std::lock_guard<std::mutex> lock(fit_mu_);
      done.swap(fit_finished_);
    }
    if (!done) return;
    if (!refitter_) return;  // fitted before this instance stopped fitting for all: dropped
    if (!done->status.ok()) {
      ++refit_stats_.failed;
      refit_.logger->Error("ALS background re-fit failed: " + done->status.ToString() +
                           "; keeping model v" + std::to_string(als_version_) +
                           " until the next trigger");
      return;
    }
    if (!done->fit.model) {  // nobody holds an item yet: nothing to install
      if (refit_due_stored_ && !refit_pending_) {
        writes->Delete(Column::kModel, kAlsRefitDueKey);
        refit_due_stored_ = false;
      }
      return;
    }
    const uint32_t customers = done->fit.customers;
    const uint32_t items = done->fit.model->items();
    Install(std::move(done->fit), writes);
    refit_.logger->Info("ALS model v" + std::to_string(als_version_) +
                        " installed from a background re-fit (" + std::to_string(customers) +
                        " customers, " + std::to_string(items) + " items)");
  }

  // Starts a background fit on a snapshot of `store` with `batch` in place of the stored
  // states, or remembers the trigger while a fit is running or waits to be installed
  // (consumer thread); `new_trigger` is false when only a remembered one is left. The trigger is
  // stored with the batch, so a fit cut short by a stop or a crash is started again after a
  // restart (LoadModel).
  void StartBackgroundFit(StateStore* store, std::span<const CustomerState> batch, bool new_trigger,
                          WriteSet* writes) {
    if (!refit_due_stored_) {
      writes->Put(Column::kModel, kAlsRefitDueKey, "");
      refit_due_stored_ = true;
    }
    {
      std::lock_guard<std::mutex> lock(fit_mu_);
      if (fit_running_ || fit_finished_) {
        refit_pending_ = true;
        if (new_trigger) ++refit_stats_.coalesced;
        return;
      }
      fit_running_ = true;
    }
    refit_pending_ = false;
    if (fit_thread_.joinable()) fit_thread_.join();  // finished: returns at once
    std::unique_ptr<StateStore> snapshot = store != nullptr ? store->Snapshot() : nullptr;
    std::vector<CustomerState> states(batch.begin(), batch.end());
    ++refit_stats_.started;
    fit_thread_ = std::thread(
        [this, snapshot = std::move(snapshot), states = std::move(states), warm = als_]() mutable {
          RunBackgroundFit(std::move(snapshot), std::move(states), std::move(warm));
        });
  }

  // The background thread: fits, and hands the result to the consumer thread.
  // `warm`: the model in use when the fit started (the consumer thread may replace als_).
  void RunBackgroundFit(std::unique_ptr<StateStore> snapshot, std::vector<CustomerState> batch,
                        std::shared_ptr<const AlsModel> warm) {
    StartBackgroundThread("sr-als-fit", options_.als_refit_nice);
    if (refit_.on_fit_start) refit_.on_fit_start(fit_cancel_);
    AlsOptions options = als_options_;
    options.cancel = &fit_cancel_;
    FinishedFit done;
    if (fit_cancel_.load()) {
      done.status = Status::Aborted("ALS fit: cancelled before it started");
    } else {
      auto fit = FitAlsOnCustomers(snapshot.get(), batch, options, warm.get(),
                                   options_.als_warm_iterations, options_.als_max_customers,
                                   refit_.log_ids, SharedOrNull());
      if (fit.ok()) {
        done.fit = std::move(fit).value();
      } else {
        done.status = fit.status();
      }
    }
    snapshot.reset();  // releases the store snapshot as soon as it is read
    {
      std::lock_guard<std::mutex> lock(fit_mu_);
      fit_finished_ = std::move(done);
      fit_running_ = false;
    }
    fit_done_.notify_all();
  }

  // Stops a background fit in flight and forgets its result (RefitModel, destructor).
  void StopBackgroundFit() {
    if (!fit_thread_.joinable()) return;
    fit_cancel_.store(true);
    fit_cancel_.notify_all();
    fit_thread_.join();
    fit_cancel_.store(false);
    std::lock_guard<std::mutex> lock(fit_mu_);
    fit_finished_.reset();
  }

  // Whether a strategy "als" is in the blend (a model is fitted only then).
  bool UsesAls() const {
    for (const auto& s : strategies_) {
      if (std::string_view(s->name()) == "als") return true;
    }
    return false;
  }

  RecommenderOptions options_;
  AlsRefitOptions refit_;
  // One model for several instances: whether this instance fits (consumer thread), the versions
  // it fitted go to on_fitted_, and the newest version offered from elsewhere.
  bool refitter_ = true;
  std::function<void(uint64_t, const std::string&)> on_fitted_;
  struct Offered {
    uint64_t version = 0;
    std::shared_ptr<const AlsModel> model;
    std::string encoded;
    uint64_t seq = 0;  // which offer
  };
  std::mutex offered_mu_;
  std::optional<Offered> offered_;  // guarded by offered_mu_
  uint64_t offers_ = 0;             // guarded by offered_mu_
  uint64_t adopted_seq_ = 0;        // guarded by offered_mu_
  uint64_t adopted_ = 0;
  AlsOptions als_options_ = AlsOptionsFrom(options_);
  // The model in use and its version (consumer thread).
  std::shared_ptr<const AlsModel> als_;
  uint64_t als_version_ = 0;
  // Re-fit bookkeeping (consumer thread): a trigger waits for the fit in flight; the store
  // holds the trigger marker (as of the last write set built).
  bool refit_pending_ = false;
  bool refit_due_stored_ = false;
  ModelRefitStats refit_stats_;
  // The background fit.
  struct FinishedFit {
    Status status;
    AlsFitResult fit;
  };
  std::thread fit_thread_;
  std::atomic<bool> fit_cancel_{false};
  mutable std::mutex fit_mu_;
  std::condition_variable fit_done_;         // signalled when fit_running_ turns false
  bool fit_running_ = false;                 // guarded by fit_mu_
  std::optional<FinishedFit> fit_finished_;  // guarded by fit_mu_
  const Catalog* catalog_;
  RecommendIndex index_;
  SharedFitSamples shared_;  // kafka.sample_topic (set before the first batch)
  std::vector<std::unique_ptr<Strategy>> strategies_;
  std::vector<double> default_weights_;
  std::unordered_map<std::string, std::vector<double>> segment_weights_;
  std::unordered_set<std::string> excluded_;
  StrategyEnv env_;
  std::vector<const CatalogItem*> catalog_items_;  // env_.catalog_items
  std::vector<const ItemStats*> item_stats_;       // env_.item_stats
  static constexpr uint32_t kNoSlot = 0xffffffffu;
  // Basket coverage picks from the best this-many-times-the-list's-length items.
  static constexpr size_t kCoveragePool = 4;
  // Lists: lane 0 (strategies_) on the consumer thread, more lanes for RecommendMany.
  StrategyFactory strategy_factory_;
  Lane lane0_;  // its strategies are strategies_ (set in the constructor)
  std::vector<std::unique_ptr<Lane>> lanes_;
};

Status ValidateRecommenderOptions(const RecommenderOptions& o) {
  if (o.als_refit_every_events < 0) {
    return Status::InvalidArgument(
        "configuration key 'recommend.als_refit_every_events': must be >= 0 (got " +
        std::to_string(o.als_refit_every_events) + ")");
  }
  if (Status s = ValidateAlsOptions(AlsOptionsFrom(o)); !s.ok()) {
    return Status::InvalidArgument("configuration keys 'recommend.als_*': " + s.message());
  }
  if (o.list_length < 1) {
    return Status::InvalidArgument("configuration key 'recommend.list_length': must be >= 1");
  }
  if (o.candidates_per_strategy < 1) {
    return Status::InvalidArgument(
        "configuration key 'recommend.candidates_per_strategy': must be >= 1");
  }
  return Status::OK();
}

StatusOr<std::unique_ptr<Recommender>> NewBlended(const RecommenderOptions& options,
                                                  const Catalog* catalog,
                                                  std::vector<std::unique_ptr<Strategy>> strategies,
                                                  AlsRefitOptions refit, StrategyFactory factory) {
  STREAMREC_RETURN_IF_ERROR(ValidateRecommenderOptions(options));
  StrategyWeights weights;
  STREAMREC_RETURN_IF_ERROR(ParseStrategyWeights("recommend.weights", options.weights, &weights));
  std::map<std::string, StrategyWeights> segment_weights;
  STREAMREC_RETURN_IF_ERROR(
      ParseSegmentWeights("recommend.segment_weights", options.segment_weights, &segment_weights));
  return std::unique_ptr<Recommender>(
      new BlendedRecommenderImpl(options, catalog, std::move(strategies), std::move(weights),
                                 std::move(segment_weights), std::move(refit), std::move(factory)));
}

}  // namespace

StatusOr<std::unique_ptr<Recommender>> NewBlendedRecommender(
    const RecommenderOptions& options, const Catalog* catalog,
    std::vector<std::unique_ptr<Strategy>> strategies, AlsRefitOptions refit) {
  // Injected strategies cannot be made again: their lists are built on one thread.
  return NewBlended(options, catalog, std::move(strategies), std::move(refit), nullptr);
}

StatusOr<std::unique_ptr<Recommender>> NewBlendedRecommender(const RecommenderOptions& options,
                                                             const Catalog* catalog,
                                                             AlsRefitOptions refit) {
  StrategyFactory factory = [options, catalog]()
      -> StatusOr<std::vector<std::unique_ptr<Strategy>>> {
    std::vector<std::unique_ptr<Strategy>> strategies;
    for (const char* name : kStrategyNames) {
      auto s = NewStrategyByName(name, options, catalog);
      if (!s.ok()) return s.status();
      strategies.push_back(std::move(*s));
    }
    return strategies;
  };
  auto strategies = factory();
  if (!strategies.ok()) return strategies.status();
  return NewBlended(options, catalog, std::move(strategies).value(), std::move(refit),
                    std::move(factory));
}

}  // namespace streamrec
