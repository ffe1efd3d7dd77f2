// Segmenter: puts customers into segments. The consumer thread hands it each micro-batch's
// changed customers; it writes cluster, segment and model version into their states.
// (The K-Means engine replaces the placeholder RFM rule segmenter.)
#ifndef STREAMREC_SEGMENTER_H_
#define STREAMREC_SEGMENTER_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "streamrec/features.h"
#include "streamrec/status.h"
#include "streamrec/v1/events.pb.h"

namespace streamrec {

class WriteSet;
class StateStore;
struct Config;

// A stored customer outside the micro-batch whose cluster or segment the segmenter changed (a
// re-fit's reassignment, the rescore sweep). Its new state is among AppendWrites' puts.
struct SegmentRelabel {
  /// Store key of the customer (PartitionKey: the partition prefix, then the id).
  std::string key;
  /// from/to cluster and segment, model version, event time of the relabelling.
  v1::SegmentChange change;
};

struct SegmentInfo {
  int32_t cluster = -1;
  std::string name;
  std::string description;  // how a customer gets here / what to do with them
};

// Health of a segmenter's model, for the metrics and the query API.
struct SegmenterStats {
  uint64_t model_version = 0;
  uint64_t refits = 0;               // fits installed, the first one included
  uint64_t refit_failures = 0;       // fits that failed (the model in use was kept)
  double last_refit_seconds = 0;     // wall-clock duration of the last fit installed
  int64_t last_refit_unix_ms = 0;    // wall clock when it was installed; 0 = none yet
  double refit_objective = 0;        // mean squared distance per point at the last full fit
  double online_objective = 0;       // smoothed mean squared distance of the online steps
  bool refit_running = false;        // a background fit is running
  bool refit_requested = false;      // RequestRefit was called and no fit has started since
};

class Segmenter {
 public:
  virtual ~Segmenter() = default;
  // Assigns every state in `changed` at event time `now_ms`, setting cluster, segment and
  // model_version. May update an online model. Called from one thread at a time.
  virtual void AssignBatch(std::span<CustomerState* const> changed, int64_t now_ms) = 0;
  // Adds the segmenter's own writes (e.g. its updated model) to the micro-batch's write set,
  // so they commit atomically with the states AssignBatch produced. Called once after each
  // AssignBatch, before the write. Default: nothing.
  virtual void AppendWrites(WriteSet* writes) { (void)writes; }
  // Moves the stored customers of the last AssignBatch whose cluster or segment changed into
  // `out` (replacing its contents): the caller emits a SegmentChange for each, in the same write
  // as AppendWrites' puts. Only real moves are listed; a customer scored for the first time is
  // not. Default: none.
  virtual void TakeRelabels(std::vector<SegmentRelabel>* out) { out->clear(); }
  virtual uint64_t model_version() const = 0;
  // The segments this segmenter can assign, in cluster order.
  virtual std::vector<SegmentInfo> Segments() const = 0;
  // Call from the thread that calls AssignBatch.
  virtual SegmenterStats stats() const {
    SegmenterStats s;
    s.model_version = model_version();
    return s;
  }
  // Asks for a full re-fit at the next AssignBatch (any thread). Returns false when this
  // segmenter has no model to re-fit.
  virtual bool RequestRefit() { return false; }
  // Forgets every in-memory effect since the last write that reached the store (a micro-batch
  // whose write failed): returns to the stored model. Call from the thread that calls
  // AssignBatch. Default: nothing to forget.
  virtual Status Reload() { return Status::OK(); }
};

// Placeholder until the K-Means engine: a fixed rule on baskets and spend.
//   0 New            one basket
//   1 Promising      2-3 baskets
//   2 Loyal          4+ baskets
//   3 Champions      10+ baskets and spend in the top tier (>= champion_spend)
std::unique_ptr<Segmenter> NewRfmRuleSegmenter(double champion_spend = 1000.0);

// The configured segmenter (segments.method): the K-Means engine (kmeans_segmenter.h), which
// loads its stored model from `store` (may be null: nothing persisted) and runs triggered
// re-fits in the background when `background_refit` (else synchronously, for reproducible
// replays), or the rule segmenter above.
[[nodiscard]] StatusOr<std::unique_ptr<Segmenter>> NewSegmenter(const Config& config,
                                                                StateStore* store,
                                                                bool background_refit = false);

}  // namespace streamrec

#endif  // STREAMREC_SEGMENTER_H_
