// Service: the Kafka deployment of the pipeline. Purchases in from a consumer group,
// recommendations, segment changes and dead letters out through the outbox and an idempotent
// producer, with the correctness contract of DESIGN.md:
//   - state effects exactly once: positions live in RocksDB in the batch they produced; on every
//     assignment the consumer seeks to them (Kafka commits are for lag monitoring only);
//   - output at least once, never lost: outbox records are deleted only on a successful
//     delivery report, and re-published after a restart.
// librdkafka stays behind this header.
#ifndef STREAMREC_SERVICE_H_
#define STREAMREC_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "streamrec/clock.h"
#include "streamrec/config.h"
#include "streamrec/logger.h"
#include "streamrec/status.h"
#include "streamrec/v1/state.pb.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace streamrec {

struct ServiceOptions {
  Config config;                       // kafka.brokers and state.dir must be set
  const Clock* clock = SystemClock();  // batch deadlines and rates only
  std::shared_ptr<Logger> logger = NewStderrLogger();
  // Where the service's metrics go. Null: a registry of its own. Either way, config.metrics.listen
  // (when set) exposes it on /metrics, and config.http.listen (when set) serves the query API.
  std::shared_ptr<prometheus::Registry> registry;
  // Called (on the service thread) for every output record whose delivery Kafka acknowledged.
  std::function<void(const v1::OutboxRecord&)> on_delivered;
  // Called (on the service thread) as purchases pass the points on their way to the output, with
  // the purchase's Kafka timestamp and the wall clock then (both ms since the epoch):
  // "consumed" for every input record the consumer hands over, "processing" for every input
  // record when its batch closes and its work begins, "committed" for every list a purchase
  // changed once its batch's write is done. With on_delivered, where the latency goes
  // (`streamrec bench` reports it as latency_breakdown_ms).
  std::function<void(const char* point, int64_t source_time_ms, int64_t now_ms)> on_trace;
  // Test hook, called at "batch" (before batch n is applied) and "commit" (after batch n is
  // committed to the store, before anything of it is produced).
  std::function<void(const std::string& point, uint64_t n)> fault_hook;
  // Stop cleanly (as if `stop` were set) once the service is idle and every partition assigned
  // to it has been applied up to its end (the high watermark, asked of the broker): a backfill
  // or catch-up run that ends by itself (`streamrec run --stop-at-end`).
  bool stop_at_end = false;
};

// The consumer's view of its input, from librdkafka's statistics (every
// kafka.statistics_interval_ms; all zero when they are off).
struct ConsumerQueueStats {
  uint64_t reports = 0;            // statistics reports read so far
  uint64_t lag = 0;                // messages behind the ends, summed over assigned partitions
  uint64_t prefetch_messages = 0;  // records fetched and queued in librdkafka, not yet consumed
  uint64_t prefetch_bytes = 0;     // their payload bytes (what kafka.max_prefetch_mb bounds)
  // The highest figures of any report so far.
  uint64_t peak_lag = 0;
  uint64_t peak_prefetch_messages = 0;
  uint64_t peak_prefetch_bytes = 0;
};

// A consistent snapshot of the service's counters (thread-safe to read while it runs).
struct ServiceStats {
  uint64_t records = 0;            // records consumed and applied (valid + invalid)
  uint64_t events = 0;             // valid events applied
  uint64_t invalid = 0;            // dead letters written
  std::map<std::string, uint64_t> invalid_by_reason;  // e.g. "bad quantity" -> 3
  uint64_t batches = 0;
  uint64_t lists_published = 0;    // lists written to the outbox
  uint64_t outbox_written = 0;     // all outbox records written (lists, segment changes,
                                   // dead letters) by this run
  uint64_t applied = 0;            // records applied to the state over all runs, summed over
                                   // the partitions this instance has had (stored positions)
  uint64_t delivered = 0;          // output records acknowledged by Kafka
  uint64_t outbox_read_back = 0;   // output records the publisher read back from the store (not
                                   // handed over in memory: after a restart, or a full queue)
  uint64_t delivery_errors = 0;    // failed deliveries (retried)
  uint64_t in_flight = 0;          // produced, not yet acknowledged
  uint64_t consumer_errors = 0;    // transport/broker errors seen by the consumer
  uint64_t rebalances = 0;
  uint64_t restored_partitions = 0;  // partitions restored from the changelog by this run
  uint64_t restored_records = 0;     // changelog records those restores read from Kafka
  uint64_t restored_from_standby = 0;  // records those restores took from standby copies
  // Lists those restores found after the changelog's progress mark (their writer may have died
  // before they reached the output topic), published again.
  uint64_t republished_lists = 0;
  // With kafka.item_stats_topic: the restored partitions' item statistics, published again
  // (one record per item of each restored partition).
  uint64_t republished_item_stats = 0;
  // Standby replicas (kafka.standby_replicas): records applied to the copies, partitions
  // tailed, records the copies are behind, and whether every tailed copy reached the end.
  uint64_t standby_records = 0;
  uint32_t standby_partitions = 0;
  uint64_t standby_lag = 0;
  bool standby_caught_up = false;
  // The K-Means segment model: its version, fits made here, versions adopted from the model
  // topic (kafka.model_topic) and published to it, and whether this instance fits for all.
  uint64_t segment_model_version = 0;
  uint64_t segment_refits = 0;
  uint64_t segment_models_adopted = 0;
  uint64_t segment_models_published = 0;
  bool segment_refitter = false;
  // Whether a background segment re-fit / ALS re-fit is running (at the last stats update): the
  // bench splits ingestion into the time with and without one.
  bool segment_refit_running = false;
  bool als_refit_running = false;
  uint64_t als_refits = 0;  // ALS fits installed by this run (synchronous or background)
  // The recommender's ALS model: its version, and with kafka.model_topic the versions adopted
  // from the topic and published to it (it is fitted where the segment model is).
  uint64_t als_model_version = 0;
  uint64_t als_models_adopted = 0;
  uint64_t als_models_published = 0;
  // Customers the last ALS fit installed here was fitted on (with kafka.sample_topic, on the
  // fitting instance: its own partitions' plus the other partitions' samples).
  uint64_t als_fit_customers = 0;
  // Global item statistics (kafka.item_stats_topic): other partitions' item records read and
  // summed into this instance's statistics, records refused, and records not yet read.
  uint64_t item_stats_remote_records = 0;
  uint64_t item_stats_refused = 0;
  uint64_t item_stats_lag = 0;
  // Purchase lines and (customer, item) buyers the item statistics in use count (over every
  // partition with kafka.item_stats_topic, else over those processed here).
  uint64_t item_stats_purchases = 0;
  uint64_t item_stats_buyers = 0;
  // Global co-occurrence (kafka.cooccurrence_topic): rows read and published, rows refused,
  // other partitions' rows in use, records not read yet; and the digest of what the
  // co-occurrence strategy sees (RecommendIndex::CooccurrenceTotals, refreshed every second):
  // with the rows uncut, every instance of a group converges to one instance's totals.
  uint64_t cooccurrence_rows_read = 0;
  uint64_t cooccurrence_rows_published = 0;
  uint64_t cooccurrence_rows_refused = 0;
  uint64_t cooccurrence_remote_rows = 0;
  uint64_t cooccurrence_lag = 0;
  uint64_t cooccurrence_buyers = 0;
  uint64_t cooccurrence_pairs = 0;
  // Customers of the partitions assigned here (their stored positions' counts).
  uint64_t customers = 0;
  // Samples for the shared fits (kafka.sample_topic): customers of partitions other instances
  // own held here, records refused; and the customers the current segment model was fitted on
  // (SegmentModel.fit_points: this instance's own, plus those samples on the one that fits).
  uint64_t fit_samples_remote = 0;
  uint64_t fit_samples_refused = 0;
  uint64_t segment_fit_customers = 0;
  uint64_t pauses = 0;             // times partitions were paused for backpressure
  uint64_t storage_errors = 0;     // store writes that failed (each pauses the input)
  uint64_t storage_retries = 0;    // resume attempts that found the store still failing
  bool storage_writable = true;    // false while a store write error keeps the input paused
  ConsumerQueueStats queue;        // lag and prefetch, as of the last statistics report
  std::vector<int32_t> assigned;   // partitions currently assigned
  int64_t watermark_ms = 0;
  bool running = false;
  bool ready = false;              // partitions assigned and restored, model loaded, store
                                   // writable (/readyz)
  int metrics_port = 0;            // bound port of /metrics (0 = none)
  int http_port = 0;               // bound port of the query API (0 = none)
};

class Service {
 public:
  static StatusOr<std::unique_ptr<Service>> Create(ServiceOptions options);
  virtual ~Service() = default;

  // Runs the poll loop until `stop` is set, then stops cleanly: finishes the batch, publishes
  // and flushes what the outbox holds (bounded wait), commits, closes the consumer.
  virtual Status Run(const std::atomic<bool>& stop) = 0;

  // Test only: stops the loop without finishing, flushing, committing or closing (a crash as
  // seen by Kafka and the store). Call from another thread; Run returns Aborted.
  virtual void SimulateCrash() = 0;

  virtual ServiceStats stats() const = 0;

  // Blocks until `done(stats())` holds or `timeout_ms` passes (stats are re-checked whenever
  // the service updates them). Returns whether `done` held. For tests and drivers.
  virtual bool WaitFor(const std::function<bool(const ServiceStats&)>& done, int timeout_ms) = 0;
};

}  // namespace streamrec

#endif  // STREAMREC_SERVICE_H_
