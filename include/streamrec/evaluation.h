// Prequential (test-then-train) evaluation of recommendation lists on a purchases file, and the
// four baselines every recommender is measured against.
//
// Protocol. Events are read in time order and grouped by event time. A basket is all lines of
// one customer with one timestamp (several invoice lines may share it). For each distinct time t:
//   1. every provider is told AdvanceTo(t): it has observed every event strictly before t and
//      none at or after t (lines of other customers at the same t are NOT visible);
//   2. every basket at t of a returning customer (one with at least one basket before t) is
//      scored against the provider's list for that customer (at most k items);
//   3. the events at t are observed by every provider.
// hr_all = share of scored baskets with at least one of the basket's items in the list.
// hr_new = share of scored baskets with at least one item in the list that the customer had
//          never bought before the basket (same denominator: every scored basket).
// "Bought before" is the customer's full history, unbounded (not CustomerState's bounded table).
//
// Baselines (the definitions that reproduce the reference figures of ../shared/data/README.md
// on the UCI Online Retail file within 0.01; docs/evaluation.md has the measured table):
//   popularity-30d        the k items with the most purchase lines in the trailing window
//                         [t - 30 days, t) of event time; ties by item id.
//   popularity-30d-new    the same ranking, items the customer already bought skipped.
//   own-most-bought       the customer's own items by purchase lines (not quantity), ties by
//                         the most recent purchase, then item id.
//   cooccurrence-cosine   item-item cosine over customer-item sets:
//                         cos(i, j) = |buyers(i) ∩ buyers(j)| / sqrt(|buyers(i)| |buyers(j)|);
//                         a candidate j the customer does not own scores the sum of cos(i, j)
//                         over the items i the customer owns; top k, ties by item id.
// Lists hold only items with a positive score, so they can be shorter than k (a customer with
// few items, few co-buyers). Purchase lines are counted as they come, duplicates included. Baseline
// lists include items a catalogue marks not recommendable (postage, adjustments) unless
// EvaluationOptions::baselines_skip_non_recommendable: the reference figures were made that way
// (skipping them moves own-most-bought from 0.682 to 0.667, against a reference of 0.678).
//
// Thread-compatible: one evaluation per set of providers at a time.
#ifndef STREAMREC_EVALUATION_H_
#define STREAMREC_EVALUATION_H_

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "streamrec/catalog.h"
#include "streamrec/clock.h"
#include "streamrec/decoder.h"
#include "streamrec/features.h"
#include "streamrec/pseudonym.h"
#include "streamrec/recommender.h"
#include "streamrec/segmenter.h"
#include "streamrec/status.h"
#include "streamrec/v1/events.pb.h"

namespace streamrec {

enum class EvaluationMode {
  kCrossSell,     // "cross-sell": streamrec lists leave out items the customer owns
  kNextPurchase,  // "next-purchase": streamrec lists may re-offer owned items
};

// "cross-sell" or "next-purchase".
const char* EvaluationModeName(EvaluationMode mode);
// Parses "cross-sell" / "next-purchase"; InvalidArgument naming the value otherwise.
StatusOr<EvaluationMode> ParseEvaluationMode(std::string_view text);

struct EvaluationOptions {
  // List length: the first k items of every list are scored (longer lists are cut). 1..1000.
  int k = 10;
  // What the streamrec lists may contain (see RecommenderOptionsForMode). The baselines are the
  // same in both modes.
  EvaluationMode mode = EvaluationMode::kCrossSell;
  // Catalogue (not owned; may be null). Used by the baselines only when
  // baselines_skip_non_recommendable is set.
  const Catalog* catalog = nullptr;
  // Input record format: "csv" (header row first) or "json" (one object per line).
  std::string format = "csv";
  // Field names, time format and validation of the input records. Records that fail to decode
  // are skipped and counted, as in a replay.
  DecoderOptions decoder;
  // Trailing window of the popularity baselines, milliseconds of event time. Default 30 days.
  int64_t popularity_window_ms = 30LL * 86400 * 1000;
  // Leave catalogue items marked not recommendable out of the baseline lists. Default false:
  // the reference figures count them.
  bool baselines_skip_non_recommendable = false;
  // Stop after this many input records (0 = the whole file); the basket group being read when
  // the limit is reached is scored with the lines read so far. For tests on a slice.
  uint64_t max_records = 0;
  // Set to stop early (the report then has stopped = true). May be null.
  const std::atomic<bool>* stop = nullptr;
  // Wall clock for the progress bar and timings. Null: SystemClock().
  const Clock* clock = nullptr;
  // How the skipped records shown on the progress stream name customers (log.*).
  CustomerIdsInLogs log_ids;
};

// InvalidArgument naming the option and the value when options are out of range.
Status ValidateEvaluationOptions(const EvaluationOptions& options);

// The recommender options streamrec is evaluated with: `base` with list_length = k and
// exclude_owned = (mode == cross-sell); in cross-sell mode due re-offers are not exempt either.
RecommenderOptions RecommenderOptionsForMode(const RecommenderOptions& base,
                                             const EvaluationOptions& options);

// Dense numbers the harness gives customers and items: 0, 1, 2, ... in order of first
// appearance in the input. Stable for one run.
struct EventIds {
  uint32_t customer = 0;
  uint32_t item = 0;
  // The customer had never bought this item before this event (the first line of the item in
  // the customer's history; a second line of it in the same basket is not new).
  bool new_item_for_customer = false;
};

// A source of top-k lists under evaluation. The harness calls, for each distinct event time t
// in increasing order: AdvanceTo(t), then Recommend for the customers scored at t, then Observe
// for each event at t. A customer passed to Recommend has been observed before.
class ListProvider {
 public:
  virtual ~ListProvider() = default;
  // Name shown in reports, e.g. "popularity-30d".
  virtual std::string name() const = 0;
  // Everything strictly before `now_ms` has been observed, nothing at or after it.
  virtual void AdvanceTo(int64_t now_ms) = 0;
  // Appends the customer's current list, best first, to *out (cleared first). Only the first
  // k items are scored.
  virtual void Recommend(uint32_t customer, std::vector<Recommendation>* out) = 0;
  // One valid event, in time order.
  virtual void Observe(const PurchaseEvent& event, const EventIds& ids) = 0;
  // For the recs-out file: fills segment, cluster, group and model_version of the list last
  // returned for `customer` and returns true; false (the default) when this provider's lists
  // are not written out (the baselines).
  virtual bool DescribeList(uint32_t customer, v1::RecommendationList* list) { return false; }
};

// The four baselines described at the top of this file, each with options.k items per list.
std::unique_ptr<ListProvider> NewWindowPopularityProvider(const EvaluationOptions& options,
                                                          bool exclude_owned);
std::unique_ptr<ListProvider> NewOwnMostBoughtProvider(const EvaluationOptions& options);
std::unique_ptr<ListProvider> NewCooccurrenceProvider(const EvaluationOptions& options);
// All four, in the order of the reference table: popularity-30d, popularity-30d-new,
// own-most-bought, cooccurrence-cosine.
std::vector<std::unique_ptr<ListProvider>> NewBaselineProviders(const EvaluationOptions& options);

struct StreamrecListProviderOptions {
  // Name in reports.
  std::string name = "streamrec";
  // Feature maintenance (per-customer item table bound, half-lives), as in the pipeline.
  FeatureOptions features;
  // Catalogue (not owned; may be null): service types for the features; what the recommender
  // may offer is the recommender's own business.
  const Catalog* catalog = nullptr;
  // Share of customers in the control group, for the "group" field of the recs-out lines only:
  // control customers are scored like everyone else.
  double control_share = 0.05;
  // Models fitted on every customer (ALS) are re-fitted, as in the pipeline, after each
  // segmenter re-fit and every this many events (0 = only after segmenter re-fits).
  int64_t refit_every_events = 0;
  // Which list a basket is scored against (`evaluate --lists`):
  //   kFresh:      recomputed just before the basket (what the method can do at best);
  //   kOnPurchase: the list computed in the micro-batch of the customer's previous purchase and
  //                never refreshed since (no freshness sweep);
  //   kPublished:  kOnPurchase, plus the freshness sweep: a list older than
  //                `refresh_after_days` of event time is recomputed (without the sweep's rate
  //                limit, and without the refresh of every list after a model re-fit).
  enum class Lists { kFresh, kOnPurchase, kPublished };
  Lists lists = Lists::kFresh;
  double refresh_after_days = 7.0;
};

// streamrec as a ListProvider: keeps a CustomerState per customer (ApplyEvent) and the global
// ItemStatsTable (ApplyItemEvent) exactly as the pipeline does, assigns segments with
// `segmenter` (may be null: no segments) for the customers changed since the last time, and
// asks `recommender` for lists: BeginBatch(item stats, newest observed event time) once per
// time with changes, then Recommend(state). Neither pointer is owned; both must outlive the
// provider. Build the recommender with RecommenderOptionsForMode.
std::unique_ptr<ListProvider> NewStreamrecListProvider(const StreamrecListProviderOptions& options,
                                                       Recommender* recommender,
                                                       Segmenter* segmenter);

struct ProviderReport {
  std::string name;
  uint64_t baskets_scored = 0;
  uint64_t hits_all = 0;        // baskets with at least one item in the list
  uint64_t hits_new = 0;        // baskets with at least one never-bought-before item in the list
  double hr_all = 0;            // hits_all / baskets_scored (0 when nothing was scored)
  double hr_new = 0;            // hits_new / baskets_scored
  double mean_list_length = 0;  // items per scored list, after the cut at k
  double seconds = 0;           // wall time spent inside this provider
};

struct EvaluationReport {
  EvaluationMode mode = EvaluationMode::kCrossSell;
  int k = 10;
  uint64_t records = 0;  // input records read (valid + invalid)
  uint64_t events = 0;   // valid events
  uint64_t invalid = 0;  // records skipped because they did not decode
  uint64_t customers = 0;
  uint64_t items = 0;
  uint64_t baskets = 0;         // (customer, time) baskets
  uint64_t baskets_scored = 0;  // baskets of returning customers
  int64_t first_time_ms = 0;
  int64_t last_time_ms = 0;
  double wall_seconds = 0;
  bool stopped = false;                   // stopped by request or by max_records
  std::vector<ProviderReport> providers;  // in the order given to RunEvaluation
};

// Receives every list scored of the providers whose DescribeList returns true, with
// customer_id, version (1, 2, ... per customer and provider), as_of_ms (the newest event time
// the list reflects), the envelope from DescribeList and the first k items.
using ListSink = std::function<Status(const v1::RecommendationList& list)>;

// Runs the protocol above over `events_path` (plain or gzip) with `providers` (not owned, not
// null). `recs_out` may be empty. `progress` (may be null) gets a progress bar and the first
// invalid records. Errors: InvalidArgument for bad options, a missing column or events out of
// time order (the message names the record and both times); IOError for unreadable files; the
// first error of `recs_out`.
StatusOr<EvaluationReport> RunEvaluation(const EvaluationOptions& options,
                                         const std::string& events_path,
                                         std::span<ListProvider* const> providers,
                                         const ListSink& recs_out, std::FILE* progress);

// {"mode":"cross-sell","k":10,"events":N,...,"providers":[{"name":"…","hr_all":X,...}]}
std::string EvaluationReportToJson(const EvaluationReport& report);

}  // namespace streamrec

#endif  // STREAMREC_EVALUATION_H_
