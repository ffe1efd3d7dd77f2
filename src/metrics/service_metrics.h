// ServiceMetrics: the Prometheus series of the Kafka service (names and labels: README,
// "Metrics"). The registry is passed in; this class only keeps references to the metrics it
// adds (Family::Add costs ~110 ns, a Histogram observation ~18 ns).
// Threads: everything but SetSegmentProfiles and CountHttpRequest is called from the service
// thread; those two may be called from any thread.
#ifndef STREAMREC_METRICS_SERVICE_METRICS_H_
#define STREAMREC_METRICS_SERVICE_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "streamrec/pipeline.h"
#include "streamrec/recommender.h"
#include "streamrec/replay.h"
#include "streamrec/segmenter.h"
#include "streamrec/v1/state.pb.h"

namespace streamrec {

// Sums that the service keeps as totals; the metrics add what changed since the last call.
struct ServiceTotals {
  uint64_t rebalances = 0;
  uint64_t consumer_errors = 0;
  uint64_t pauses = 0;
  uint64_t delivery_errors = 0;
  uint64_t storage_errors = 0;   // store writes that failed (each stops the input)
  uint64_t storage_retries = 0;  // attempts to resume that found the store still failing
};

class ServiceMetrics {
 public:
  ServiceMetrics(prometheus::Registry& registry, std::string input_topic, std::string version);

  ServiceMetrics(const ServiceMetrics&) = delete;
  ServiceMetrics& operator=(const ServiceMetrics&) = delete;

  // One micro-batch of `records` records that took `seconds`.
  void RecordBatch(const BatchResult& result, uint64_t records, double seconds);
  // An output record Kafka acknowledged at wall-clock `now_ms`.
  void RecordDelivered(const v1::OutboxRecord& record, int64_t now_ms);
  // An input record the consumer handed over, with its Kafka timestamp.
  void RecordConsumed(int64_t source_time_ms, int64_t now_ms);
  // A list a purchase changed, once its batch's write is done.
  void RecordCommitted(int64_t source_time_ms, int64_t now_ms);
  // Consumer lag of `partition` (librdkafka statistics); Forget when it is revoked.
  void SetConsumerLag(int32_t partition, int64_t lag);
  void ForgetConsumerLag(int32_t partition);
  // A restore of `partition` from the changelog: `read` of `total` records so far. `read`
  // grows from 0 within one restore; the remaining count is exported per partition while it
  // runs, and removed with done=true.
  void SetRestoreProgress(int32_t partition, uint64_t read, uint64_t total, bool done);
  // Standby replicas (kafka.standby_replicas): changelog records applied to the copies so far
  // (a running total), partitions tailed, and records the copies are behind the changelog.
  void SetStandby(uint64_t records, uint32_t partitions, uint64_t lag);
  // Item statistics: purchase lines they count (every partition with kafka.item_stats_topic);
  // other partitions' item records summed in so far (a running total) and records of that
  // topic not read yet (0 without it).
  void SetItemStats(uint64_t purchases, uint64_t remote_records, uint64_t lag);
  // kafka.sample_topic: samples of other partitions held, records not read yet.
  void SetFitSamples(uint64_t remote, uint64_t lag);
  // kafka.cooccurrence_topic: rows published (cumulative), other partitions' rows in use,
  // records not read yet.
  void SetCooccurrence(uint64_t published, uint64_t remote_rows, uint64_t lag);
  // Records fetched ahead of processing in librdkafka's queue, and their payload bytes.
  void SetConsumerPrefetch(uint64_t messages, uint64_t bytes) {
    prefetch_messages_->Set(static_cast<double>(messages));
    prefetch_bytes_->Set(static_cast<double>(bytes));
  }

  void SetTotals(const ServiceTotals& totals);
  void SetAssignedPartitions(size_t n) { assigned_->Set(static_cast<double>(n)); }
  void SetOutboxPending(uint64_t n) { outbox_pending_->Set(static_cast<double>(n)); }
  void SetEventTimeLag(double seconds) { event_time_lag_->Set(seconds); }
  void SetReady(bool ready) { ready_->Set(ready ? 1 : 0); }
  void SetStorageWritable(bool writable) { storage_writable_->Set(writable ? 1 : 0); }
  void SetStoreProperties(const std::map<std::string, uint64_t>& properties);
  void SetSegmenterStats(const SegmenterStats& stats);
  void SetAlsStats(uint64_t version, const ModelRefitStats& stats);
  // kafka.model_topic: whether this instance fits the shared segment model, and the versions it
  // published and adopted so far (running totals).
  void SetSharedModel(bool fitter, uint64_t published, uint64_t adopted);
  // Segment sizes and revenue from a scan; segments no longer present are dropped.
  void SetSegmentProfiles(const std::vector<SegmentProfile>& profiles);
  // A query API request answered with `code`; `route` is the pattern (bounded).
  void CountHttpRequest(const std::string& route, int code);

 private:
  prometheus::Counter& LabelledCounter(prometheus::Family<prometheus::Counter>& family,
                                       std::map<std::vector<std::string>, prometheus::Counter*>* cache,
                                       const std::vector<std::string>& names,
                                       const std::vector<std::string>& values);

  const std::string input_topic_;

  prometheus::Counter* events_consumed_;
  prometheus::Counter* events_applied_;
  prometheus::Family<prometheus::Counter>* invalid_family_;
  std::map<std::vector<std::string>, prometheus::Counter*> invalid_;
  prometheus::Counter* dead_letters_;
  prometheus::Histogram* batch_records_;
  prometheus::Histogram* batch_seconds_;
  prometheus::Histogram* stage_decode_;
  prometheus::Histogram* stage_state_;
  prometheus::Histogram* stage_model_;
  prometheus::Histogram* stage_recommend_;
  prometheus::Histogram* stage_commit_;
  prometheus::Gauge* event_time_lag_;
  prometheus::Histogram* purchase_to_publish_;
  prometheus::Histogram* purchase_to_consume_;
  prometheus::Histogram* purchase_to_commit_;
  prometheus::Family<prometheus::Gauge>* lag_family_;
  prometheus::Family<prometheus::Gauge>* restore_remaining_family_;
  std::map<int32_t, prometheus::Gauge*> restore_remaining_;
  prometheus::Counter* restored_records_;
  uint64_t restore_read_ = 0;  // records of the running restore already counted
  prometheus::Counter* standby_records_;
  uint64_t standby_counted_ = 0;
  prometheus::Gauge* standby_partitions_;
  prometheus::Gauge* standby_lag_;
  prometheus::Counter* item_stats_records_;
  uint64_t item_stats_counted_ = 0;
  prometheus::Gauge* item_stats_lag_;
  prometheus::Gauge* item_stats_purchases_;
  std::map<int32_t, prometheus::Gauge*> lag_;
  prometheus::Gauge* prefetch_messages_;
  prometheus::Gauge* prefetch_bytes_;
  prometheus::Gauge* assigned_;
  prometheus::Counter* rebalances_;
  prometheus::Counter* consumer_errors_;
  prometheus::Counter* pauses_;
  prometheus::Counter* storage_errors_;
  prometheus::Counter* storage_retries_;
  prometheus::Gauge* storage_writable_;

  prometheus::Gauge* outbox_pending_;
  prometheus::Counter* delivered_list_;
  prometheus::Counter* delivered_change_;
  prometheus::Counter* delivered_dead_letter_;
  prometheus::Counter* delivered_changelog_;
  prometheus::Counter* delivered_item_stats_;
  prometheus::Counter* delivered_fit_sample_;
  prometheus::Gauge* fit_samples_remote_;
  prometheus::Gauge* fit_samples_lag_;
  prometheus::Counter* cooccurrence_published_;
  uint64_t cooccurrence_counted_ = 0;
  prometheus::Gauge* cooccurrence_remote_rows_;
  prometheus::Gauge* cooccurrence_lag_;
  prometheus::Counter* delivery_errors_;
  prometheus::Counter* lists_published_;
  prometheus::Counter* lists_unchanged_;
  prometheus::Counter* lists_stale_refreshed_;
  prometheus::Counter* cache_hits_;
  prometheus::Counter* cache_misses_;

  std::map<std::string, prometheus::Gauge*> store_;  // property -> gauge

  prometheus::Gauge* segment_version_;
  prometheus::Counter* segment_refits_ok_;
  prometheus::Counter* segment_refits_failed_;
  prometheus::Histogram* segment_refit_seconds_;
  prometheus::Gauge* segment_refit_objective_;
  prometheus::Gauge* segment_online_objective_;
  prometheus::Gauge* segment_last_refit_;
  prometheus::Gauge* shared_model_fitter_;
  prometheus::Counter* shared_published_;
  prometheus::Counter* shared_adopted_;
  uint64_t shared_published_total_ = 0, shared_adopted_total_ = 0;
  prometheus::Family<prometheus::Counter>* transitions_family_;
  std::map<std::vector<std::string>, prometheus::Counter*> transitions_;

  prometheus::Gauge* als_version_;
  prometheus::Counter* als_refits_ok_;
  prometheus::Counter* als_refits_failed_;
  prometheus::Histogram* als_refit_seconds_;

  prometheus::Family<prometheus::Counter>* purchases_family_;
  prometheus::Family<prometheus::Counter>* conversions_family_;
  std::map<std::vector<std::string>, prometheus::Counter*> purchases_;
  std::map<std::vector<std::string>, prometheus::Counter*> conversions_;

  prometheus::Gauge* ready_;

  std::mutex segments_mu_;  // guards the segment gauges
  prometheus::Family<prometheus::Gauge>* segment_customers_family_;
  prometheus::Family<prometheus::Gauge>* segment_revenue_family_;
  std::map<std::string, std::pair<prometheus::Gauge*, prometheus::Gauge*>> segments_;

  std::mutex http_mu_;  // guards http_
  prometheus::Family<prometheus::Counter>* http_family_;
  std::map<std::vector<std::string>, prometheus::Counter*> http_;

  ServiceTotals totals_;
  SegmenterStats segmenter_;
  ModelRefitStats als_;
};

}  // namespace streamrec

#endif  // STREAMREC_METRICS_SERVICE_METRICS_H_
