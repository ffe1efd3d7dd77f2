// Recommender: builds the ranked list of one customer. Per micro-batch the pipeline calls
// ObserveChange for every changed customer (state before and after the batch's events, segment
// already assigned) and ObserveRelabel for customers a re-fit moved, then BeginBatch once, then
// Recommend for each changed customer. The engine is the blended recommender
// (blended_recommender.h); a popularity-only recommender remains as a baseline.
#ifndef STREAMREC_RECOMMENDER_H_
#define STREAMREC_RECOMMENDER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "streamrec/catalog.h"
#include "streamrec/features.h"
#include "streamrec/recommend_index.h"
#include "streamrec/shared_fit_samples.h"
#include "streamrec/status.h"
#include "streamrec/strategy.h"

namespace streamrec {

class StateStore;
class WriteSet;

struct Recommendation {
  std::string item_id;
  double score = 0;
  std::string strategy;  // e.g. "popularity"
  std::string reason;    // a human sentence with numbers
};

struct RecommenderOptions {
  // Items per list.
  int list_length = 10;
  // Half-life of item popularity, days of event time (= strategies.popularity_half_life_days).
  double popularity_half_life_days = 14.0;
  // Do not offer items the customer already bought ...
  bool exclude_owned = true;
  // ... except owned items the re-offer strategy finds due again.
  bool reoffer_due_exempt = true;
  // Share of customers (0..1) in the control group, by a hash of the customer id.
  double control_share = 0.05;
  // Strategy weights for every segment, "name=weight,...", over kStrategyNames; strategies
  // left out weigh 0.
  std::string weights = "cooccurrence=1,als=0.3,similar=0.1,popularity=0.05,upsell=0.3,reoffer=0.3";
  // Per-segment overrides, "Segment:name=weight,...;Segment:...": a segment named here uses
  // its own weights (strategies left out weigh 0), every other segment `weights`.
  std::string segment_weights =
      "Unscored:cooccurrence=1,popularity=0.3;New:cooccurrence=1,popularity=0.3,similar=0.1;"
      "Champions:cooccurrence=1,als=0.3,similar=0.1,upsell=0.5,reoffer=0.3,popularity=0.05;"
      "Can't Lose:cooccurrence=1,als=0.3,upsell=0.3,reoffer=1,popularity=0.05";
  // Candidates each strategy proposes before the blend.
  int candidates_per_strategy = 60;
  // Threads that build the lists of one micro-batch (each with its own strategy instances;
  // the lists do not depend on it). 1 = the consumer thread alone.
  int threads = 2;
  // Rules. Price cap: an item may cost at most this many times the customer's average price per
  // purchase line (0 = no cap).
  double price_cap_ratio = 0;
  // Offer an item with a channel list only to customers whose main channel is in it.
  bool channel_eligibility = true;
  // Items never offered, comma-separated ids.
  std::string exclude_items;
  // At most this many items of one service type / category per list (0 = no limit).
  int max_per_category = 0;
  // Basket coverage (0..1): a list is read as "will the customer buy any of these?", so an owned
  // item that was bought in the same recent baskets as items already listed adds less. Each pick
  // multiplies an owned item's score by (1 - c) + c * (share of the recent baskets holding it
  // that no listed item covers). 0 = plain score order; items the customer never bought are
  // unaffected (so cross-sell lists do not change).
  double basket_coverage = 0.5;
  // Share of customers (by id hash) in the exemplar panel behind per-segment popularity and
  // similar customers.
  double exemplar_share = 0.05;
  // At most this many exemplars (0 = no cap), those of the share whose ids hash lowest.
  int64_t max_exemplars = 5000;
  // Freshness: a list older than this many days of event time is refreshed in the background
  // even when its customer is quiet (0 = never), at most refresh_per_batch lists per micro-batch.
  double refresh_after_days = 7.0;
  int refresh_per_batch = 10;
  // The strategies' own tunables.
  StrategyOptions strategies;
  // ALS (strategy "als", als.h): the model is re-fitted on every stored customer after each
  // segmenter re-fit and, when > 0, every this many events (recommend.als_refit_every_events):
  // inside the triggering batch, or on a background thread in the service (AlsRefitOptions).
  int64_t als_refit_every_events = 0;
  // Latent factors, iterations, L2 penalty, confidence ("linear": c = 1 + alpha r, "log":
  // c = 1 + alpha ln(1 + r), r = purchase lines) and threads of the ALS fit. More factors: finer
  // tastes, f^2 slower per purchase. A low alpha (2) keeps a customer's many one-off purchases
  // from being drowned by a few heavily re-bought items (measured in docs/evaluation.md).
  int als_factors = 32;
  int als_iterations = 15;
  // Iterations of a re-fit that starts from the model in use (its item factors, then a user
  // step): a re-fit is a small change from that model, so a few sweeps reach what a cold fit
  // needs als_iterations for (measured in docs/benchmarks.md). 0 = every re-fit starts cold.
  int als_warm_iterations = 3;
  // A fit reads at most this many customers, those whose ids hash lowest (0 = all): the model
  // keeps only item factors, and each customer is folded in at list time, so a sample bounds
  // the cost of a re-fit without changing whose lists it serves.
  int64_t als_max_customers = 200000;
  double als_regularization = 0.05;
  std::string als_confidence = "linear";
  double als_alpha = 2.0;
  int als_threads = 2;
  // Nice value (0..19) of a background ALS re-fit's threads (see segments.refit_nice).
  int als_refit_nice = 10;
};

// Counters of a recommender's model re-fits since it was created.
struct ModelRefitStats {
  uint64_t installed = 0;  // fits installed (synchronous or background)
  uint64_t started = 0;    // background fits started
  uint64_t coalesced = 0;  // triggers that came while a background fit ran
  uint64_t failed = 0;     // background fits that failed (the model in use was kept)
  bool running = false;    // a background fit is running
  bool pending = false;    // a trigger is remembered for after it
  double last_seconds = 0; // wall-clock duration of the last fit installed
  uint64_t last_customers = 0;  // customers the last fit installed was fitted on
};

class Recommender {
 public:
  virtual ~Recommender() = default;
  // Whether the recommender keeps an index of customers (ObserveChange/ObserveRelabel). The
  // pipeline then hands it every stored customer at Open (before = nullptr) and keeps the
  // states before each batch.
  virtual bool ObservesCustomers() const { return false; }
  // A customer changed in this micro-batch (`before` = nullptr: new customer).
  virtual void ObserveChange(const CustomerState* before, const CustomerState& after) {
    (void)before;
    (void)after;
  }
  // A re-fit moved the customer to another segment without a purchase.
  virtual void ObserveRelabel(const CustomerState& state) { (void)state; }
  // Forget every observed customer and every remote co-occurrence row (before a rebuild).
  virtual void ResetObserved() {}
  // Another partition's co-occurrence row (kafka.cooccurrence_topic): added to what the
  // observed customers give, replacing that partition's previous row of the item
  // (RecommendIndex::SetRemoteRow). Only for partitions whose customers are not observed here.
  virtual void SetRemoteCooccurrence(uint32_t partition, const CooccurrenceRow& row) {
    (void)partition;
    (void)row;
  }
  // Sums of buyers and co-occurrence counts over every item (RecommendIndex::
  // CooccurrenceTotals); zeros for a recommender without an index.
  virtual std::pair<uint64_t, uint64_t> cooccurrence_totals() const { return {0, 0}; }
  // A model fitted on every stored customer (the blended recommender's ALS). Loads the model
  // RefitModel stored (none stored: no model yet), its version, and whether a re-fit was due
  // and not yet installed (a background fit cut short by a stop or a crash: the next UpdateModel
  // starts it again). Called by Pipeline::Open and after a failed write, so the model in memory
  // is always the stored one.
  [[nodiscard]] virtual Status LoadModel(StateStore* store) {
    (void)store;
    return Status::OK();
  }
  // Re-fits that model now on every customer — the stored ones, with `batch` (the micro-batch's
  // new states, not yet written) in place of their stored versions — and appends the encoded
  // model to `writes`, which the caller commits atomically with the batch. Used from the next
  // BeginBatch on. `store` may be null: `batch` is then every customer (evaluation). A
  // background fit in flight is stopped and dropped (this fit is newer).
  [[nodiscard]] virtual Status RefitModel(StateStore* store, std::span<const CustomerState> batch,
                                          WriteSet* writes) {
    (void)store;
    (void)batch;
    (void)writes;
    return Status::OK();
  }
  // The pipeline's model step, once per micro-batch before BeginBatch, with the batch's new
  // states and whether a re-fit is due (a segment re-fit, recommend.als_refit_every_events).
  // Synchronous re-fits (the default): RefitModel when due. Background re-fits (the service):
  // first a fit finished since the last batch is installed and appended to `writes`, so it
  // commits with this batch and is used by its lists; then, when due, a fit starts on a
  // background thread from a snapshot of `store` with `batch` in place of the stored states —
  // or, if one is still running, the trigger is remembered and one more fit starts at the first
  // batch after it finished (any number of triggers during a fit make one).
  [[nodiscard]] virtual Status UpdateModel(StateStore* store, std::span<const CustomerState> batch,
                                           bool refit_due, WriteSet* writes) {
    return refit_due ? RefitModel(store, batch, writes) : Status::OK();
  }
  // Between micro-batches (the service, when no batch came for a while): what UpdateModel does
  // without a batch — installs a background fit that finished and appends it to `writes` (the
  // caller writes them at once), and starts the fit a remembered trigger asks for, on a snapshot
  // of `store`. So a fit that ends after the last record of a quiet stream is used, stored and
  // published without waiting for the next purchase. Returns whether a model was installed.
  [[nodiscard]] virtual bool UpdateModelIdle(StateStore* store, WriteSet* writes) {
    (void)store;
    (void)writes;
    return false;
  }
  // Fits of the model (ALS) train on the owned partitions' stored customers plus the other
  // partitions' samples (set before the first batch).
  virtual void SetSharedSamples(SharedFitSamples shared) { (void)shared; }
  // Version of the model in use: 0 before the first fit, +1 at every fit installed; stored with
  // the model. A list remembers the version it was computed under, and the pipeline's freshness
  // sweep recomputes lists computed under an older one.
  virtual uint64_t model_version() const { return 0; }
  // Blocks until no background re-fit is running, or `timeout_ms` passed; returns whether none
  // is running. A remembered trigger is not waited for: it starts at the next UpdateModel.
  // Tests and tools; a recommender without background re-fits returns true at once.
  virtual bool WaitForBackgroundRefit(int64_t timeout_ms) {
    (void)timeout_ms;
    return true;
  }
  // Counters of the re-fits so far. REQUIRES: the consumer thread.
  virtual ModelRefitStats refit_stats() const { return {}; }

  // --- One model for several instances (kafka.model_topic, docs/scale-out.md) ---
  // Whether this instance fits the model (the default) or only adopts the versions another
  // instance fits. A follower never fits (triggers are ignored, a background fit that finishes
  // after the switch is dropped) and does not store triggers. Consumer thread.
  virtual void SetModelRefitter(bool refitter) { (void)refitter; }
  // Called on the consumer thread with every version fitted and installed here, and its encoding
  // as stored (what OfferModel takes), so that it can be published.
  virtual void set_on_model_fitted(
      std::function<void(uint64_t version, const std::string& encoded)> on_fitted) {
    (void)on_fitted;
  }
  // A version fitted elsewhere (any thread): kept when it decodes and is the newest offered.
  // InvalidArgument when it does not decode (the message says why).
  [[nodiscard]] virtual Status OfferModel(uint64_t version, std::string encoded) {
    (void)version;
    (void)encoded;
    return Status::OK();
  }
  // Consumer thread: makes the newest version offered the model in use when it is newer than
  // the one in use (or the same version fitted elsewhere, on a follower) and appends it to
  // `writes`. Returns whether it did.
  virtual bool AdoptOffered(WriteSet* writes) {
    (void)writes;
    return false;
  }
  // Versions adopted from OfferModel so far.
  virtual uint64_t models_adopted() const { return 0; }
  // Called once per micro-batch with the statistics after the batch, at event time `now_ms`.
  virtual void BeginBatch(const ItemStatsTable& items, int64_t now_ms) = 0;
  // Appends the customer's list to *out (cleared first). Reads only what BeginBatch saw and
  // the customer's own state.
  virtual void Recommend(const CustomerState& customer, std::vector<Recommendation>* out) = 0;
  // The lists of several customers: (*out)[i] is what Recommend(*customers[i]) gives, whatever
  // the order or the thread that computes it (out is resized). A recommender may spread the
  // customers over threads (recommend.threads); the default calls Recommend one by one.
  virtual void RecommendMany(std::span<const CustomerState* const> customers,
                             std::vector<std::vector<Recommendation>>* out) {
    out->resize(customers.size());
    for (size_t i = 0; i < customers.size(); ++i) Recommend(*customers[i], &(*out)[i]);
  }
};

// Placeholder until the recommendation engine: the most popular recommendable items (decayed
// purchase counts), owned items removed.
std::unique_ptr<Recommender> NewPopularityRecommender(const RecommenderOptions& options,
                                                      const Catalog* catalog);

// Deterministic control-group split: UniformHash(customer id, "control") (recommend_index.h),
// compared with `control_share`. The same id always lands in the same group.
bool InControlGroup(std::string_view customer_id, double control_share);

// A stable hash of a list's content (item ids and strategies, in order), used to publish a list
// only when it differs from the last one published.
uint64_t ListContentHash(const std::vector<Recommendation>& items);

}  // namespace streamrec

#endif  // STREAMREC_RECOMMENDER_H_
