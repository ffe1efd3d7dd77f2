// KMeansSegmenter: segments customers with K-Means on their clustering vectors.
//
//   full fit   (FitSegmentModel): scan customers -> uniform sample -> fit the feature transform ->
//              k-means++ / Lloyd (n_init, fixed seed; k fixed or chosen by silhouette) -> match
//              the new centres to the previous model's (Hungarian) so cluster ids stay stable ->
//              name each cluster from its RFM quintile scores.
//   online     (AssignBatch): each micro-batch's changed customers are transformed with the
//              model's parameters, assigned to the nearest centre, and move it (Sculley's
//              mini-batch step, optional forgetting, re-seeding of dying centres).
//   sweep      (AssignBatch, segments.rescore_per_batch): each batch also takes the next stored
//              customers after a cursor (key order, wrapping) into the mini-batch step and
//              re-labels them with the centres after it, so the centres follow the whole
//              population (not only the customers who buy) and a customer who does not buy still
//              follows centre moves and background re-fits. Changed states go out through
//              AppendWrites and TakeRelabels; the cursor is stored with the online state.
//
// The fitted part of a model (transform, ids, names, actions, version) is an immutable
// SegmentModelVersion behind a std::shared_ptr<const ...>, swapped atomically; the online centres
// belong to the consumer thread. Both are persisted in the store's model column ("current", plus
// one key per version) in the same write set as the micro-batch, so a restart continues with the
// exact model, online centres included.
#ifndef STREAMREC_KMEANS_SEGMENTER_H_
#define STREAMREC_KMEANS_SEGMENTER_H_

#include <cstdint>
#include <functional>
#include <set>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "streamrec/config.h"
#include "streamrec/feature_vector.h"
#include "streamrec/kmeans.h"
#include "streamrec/logger.h"
#include "streamrec/pseudonym.h"
#include "streamrec/segment_naming.h"
#include "streamrec/segmenter.h"
#include "streamrec/shared_fit_samples.h"
#include "streamrec/state_store.h"
#include "streamrec/status.h"
#include "streamrec/v1/model.pb.h"

namespace streamrec {

// Keys of the model column family.
inline constexpr char kCurrentModelKey[] = "current";
// "version/<20-digit version>": every fitted version, as written at its fit.
std::string ModelVersionKey(uint64_t version);

// Segment of a customer seen before the first model exists.
inline constexpr char kUnscoredSegment[] = "Unscored";

// One fitted model version. Immutable once built; shared between threads.
struct SegmentModelVersion {
  uint64_t version = 0;
  FeatureSpec spec;
  FeatureTransform transform;
  RfmQuintiles rfm;
  int k = 0;
  /// Centres as fitted (k x d, transformed space).
  std::vector<float> centres;
  /// Stable id, name and action of each centre row.
  std::vector<int32_t> ids;
  std::vector<std::string> names;
  std::vector<std::string> actions;
  /// The full proto (fit statistics, online state at the fit).
  v1::SegmentModel proto;

  // The row of cluster id `id`, or -1.
  int RowOf(int32_t id) const;
  // Builds a version from a stored proto; Corruption on inconsistency.
  [[nodiscard]] static StatusOr<std::shared_ptr<const SegmentModelVersion>> FromProto(
      const v1::SegmentModel& proto);
};

// Parameters of a full fit (from SegmentsConfig). The defaults are SegmentsConfig's, so the
// documented configuration defaults are the only ones.
struct SegmentFitOptions {
  FeatureSpec spec = FeatureSpec::Default();
  /// Transform of each column of `spec` (same length); empty = DefaultTransformKinds(spec).
  std::vector<FeatureTransformKind> transforms;
  /// Clusters; 0 = choose over [k_min, k_max] by silhouette.
  int k = SegmentsConfig().k;
  int k_min = SegmentsConfig().k_min;
  int k_max = SegmentsConfig().k_max;
  int n_init = SegmentsConfig().n_init;
  uint64_t seed = SegmentsConfig().seed;
  int max_iterations = SegmentsConfig().max_iterations;
  /// Train on a uniform sample of at most this many customers.
  int64_t sample_size = SegmentsConfig().refit_sample_size;
  /// Silhouette sample.
  int64_t silhouette_sample_size = SegmentsConfig().silhouette_sample_size;
  int threads = SegmentsConfig().threads;
  SegmentRuleTable rules = SegmentRuleTable::Default();

  static StatusOr<SegmentFitOptions> FromConfig(const SegmentsConfig& config);
};

// The salt of UniformHash(customer id, salt) (recommend_index.h) that orders customers for a
// fit's bounded sample (SegmentFitInput::max_rows) and picks those of the shared sample
// (kafka.sample_topic).
inline constexpr char kSegmentFitSampleSalt[] = "segment-fit";

// The customers a fit sees: raw vectors (original units) and RFM figures, in input order.
struct SegmentFitInput {
  /// Event time the vectors are taken at.
  int64_t now_ms = 0;
  int64_t n = 0;
  /// n x spec.dim(), original units.
  std::vector<float> raw;
  std::vector<double> recency_days, frequency, monetary;
  /// Customers offered to Add (n of them are held; more when sampling).
  int64_t population = 0;
  /// > 0: hold at most this many customers, those whose ids hash lowest, so a fit's memory
  /// does not grow with the population (at most twice this is held until Finish). The sample
  /// depends only on who the customers are, not on the order they come in.
  int64_t max_rows = 0;

  // Appends one customer. REQUIRES: now_ms set.
  void Add(const FeatureSpec& spec, const CustomerState& state);
  // For a scan that has the id before the state: true when Add would drop this customer by its
  // id hash (the sample's threshold has passed it); the customer is then counted in the
  // population as Add counts it, and its state need not be decoded. False: pass it to Add.
  bool Skips(std::string_view customer_id);
  // Cuts a sample down to max_rows. Call once after the last Add.
  void Finish();

 private:
  void KeepBelow(double threshold, size_t d);
  std::vector<double> hash_;  // per held row, when sampling
  double threshold_ = 1.0;
  size_t dim_ = 0;
};

// The outcome of a full fit over a set of customers.
struct SegmentFitReport {
  std::shared_ptr<const SegmentModelVersion> model;
  /// Scores per k tried (k: auto), else one entry.
  std::vector<KScore> k_scores;
  /// Customers scanned and trained on.
  int64_t customers = 0;
  int64_t trained = 0;
  /// Event time the vectors were taken at (newest last purchase).
  int64_t now_ms = 0;
  /// Cluster ids born and dying relative to the previous model (also in the model proto's
  /// births/deaths, and counted in its births_total/deaths_total).
  std::vector<int32_t> births, deaths;
  /// Sum of squared distances of every customer to the previous model's current (online)
  /// centres, in this fit's transform: comparable with the new objective. 0 when there was no
  /// comparable previous model (none, or other features).
  double previous_objective = 0;
  /// Customers whose cluster or segment changed in the reassignment, and how many were scored.
  uint64_t moved = 0;
  uint64_t reassigned = 0;
};

// Fits a new model version on `input` (trains on a uniform sample above options.sample_size,
// then assigns all), with cluster ids stable relative to `previous` (may be null), whose current
// centres are `previous_centres` (k_prev x d in the previous transform's space; empty = its fit
// centres). `version` is the new version number. `rows_out` (optional) receives each input
// customer's centre row.
[[nodiscard]] StatusOr<SegmentFitReport> FitSegmentModel(
    const SegmentFitOptions& options, const SegmentFitInput& input,
    const SegmentModelVersion* previous, const std::vector<float>& previous_centres,
    uint64_t version, std::vector<int32_t>* rows_out = nullptr);

struct KMeansSegmenterOptions {
  SegmentsConfig config;
  /// true: triggered re-fits run on a background thread and the result is swapped in at a later
  /// batch (the service); false: they run synchronously inside AssignBatch, which keeps a file
  /// replay reproducible byte for byte.
  bool background_refit = false;
  /// Where re-fits report clusters born and dying (Info). Null: timestamped lines on stderr.
  std::shared_ptr<Logger> logger;
  /// How error messages that may reach a log name customers (log.pseudonymize_customer_ids).
  CustomerIdsInLogs log_ids;
  /// Called on a background re-fit's thread as it starts, after its priority is lowered
  /// (config.refit_nice): tests observe the thread a fit runs on. Null: nothing.
  std::function<void()> on_refit_start;
};

class KMeansSegmenter : public Segmenter {
 public:
  // Loads the stored model from `store` (may be null: nothing is persisted, the cold-start fit
  // uses the customers seen by AssignBatch). The store must outlive the segmenter.
  [[nodiscard]] static StatusOr<std::unique_ptr<KMeansSegmenter>> Create(
      KMeansSegmenterOptions options, StateStore* store);
  ~KMeansSegmenter() override;

  void AssignBatch(std::span<CustomerState* const> changed, int64_t now_ms) override;
  void AppendWrites(WriteSet* writes) override;
  void TakeRelabels(std::vector<SegmentRelabel>* out) override;
  uint64_t model_version() const override;
  std::vector<SegmentInfo> Segments() const override;
  SegmenterStats stats() const override;
  bool RequestRefit() override;
  Status Reload() override;

  // The current fitted version (null before the first fit). Thread-safe.
  std::shared_ptr<const SegmentModelVersion> model() const;
  // The current model with the online centres, as stored. REQUIRES: the consumer thread.
  v1::SegmentModel CurrentProto() const;

  // Full re-fit now, on every customer of the store (REQUIRES a store, and no concurrent
  // AssignBatch): fits, swaps the model in, reassigns every customer and writes their states
  // with a SegmentChange outbox record for each customer whose cluster or segment changed.
  [[nodiscard]] StatusOr<SegmentFitReport> Refit(StateStore* store);

  // --- One model for several instances (kafka.model_topic, docs/scale-out.md) ---
  // Whether this segmenter fits models (default true). A follower (false) never fits, not even
  // the first model: it adopts the versions offered to it, and its online mini-batch steps stay
  // local until the next version arrives. A background fit that ends after the segmenter became
  // a follower is dropped. Thread-safe.
  void SetRefitter(bool refitter);
  bool refitter() const;
  // The other instances' customers (kafka.sample_topic): `samples(add)` calls `add` with the
  // sampled state of every customer of a partition this instance does not own, and every full
  // fit adds them to the customers of the input partitions it owns (`owned()`, asked once per
  // fit; those of partitions it processed before and lost are left out: their samples stand
  // for them).
  // Samples are trained on, not relabelled or stored. Both are called on the fitting thread.
  // Set before the first batch.
  void SetSharedSamples(SharedFitSamples shared);
  // Called on the consumer thread with every version this segmenter fits (not those it adopts),
  // to be published for the other instances.
  void set_on_fitted(std::function<void(const v1::SegmentModel& fitted)> on_fitted);
  // Offers a version fitted elsewhere (the fitted proto, as published). Refused (InvalidArgument,
  // naming the difference) when it does not decode or uses other features than this
  // segmenter's configuration; kept when newer than anything offered before. Thread-safe.
  Status OfferModel(const v1::SegmentModel& fitted);
  // Installs the newest version offered when it is newer than the current one, or — on a
  // follower — another fit of the current version (consumer thread; AssignBatch does it too). True when one was installed: AppendWrites then has it to store.
  // Stored customers move to it through the rescore sweep, as after a background re-fit.
  bool AdoptOffered();
  // Versions adopted so far (not counted in refits()).
  uint64_t adopted() const;
  // Between batches (consumer thread, a quiet stream): installs a background re-fit that has
  // finished, and starts the one a remembered trigger (RequestRefit, a trigger that came while a
  // fit ran) asks for, with the event time of the last batch. Without it both wait for the next
  // purchase, which on a quiet stream may be hours away. True when a version was installed:
  // AppendWrites then has it to store. Only with background re-fits and a store; a fit is
  // started only after a batch has been seen since this segmenter was created.
  bool UpdateModelIdle();

  // Waits for a background re-fit in flight (tests).
  void WaitForBackgroundRefit();
  // Re-fits started so far (cold start included).
  uint64_t refits() const;

  struct Impl;

 private:
  explicit KMeansSegmenter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The segment transition matrix of a model proto: customer moves (from cluster id, to cluster id)
// summed over its stored days, i.e. the newest segments.transition_window_days days of event
// time. Counted when the online step or a re-fit's reassignment changes a scored customer's
// cluster; customers scored for the first time are not moves.
std::map<std::pair<int32_t, int32_t>, uint64_t> SumTransitions(const v1::SegmentModel& proto);

// Reads the stored current model; NotFound when there is none.
[[nodiscard]] StatusOr<v1::SegmentModel> LoadStoredModel(StateStore* store);

}  // namespace streamrec

#endif  // STREAMREC_KMEANS_SEGMENTER_H_
