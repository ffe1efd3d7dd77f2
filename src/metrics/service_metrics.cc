#include "metrics/service_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

#include <algorithm>

namespace streamrec {

namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Histogram;

// Latencies from 0.5 ms to 10 s.
const Histogram::BucketBoundaries& LatencyBuckets() {
  static const Histogram::BucketBoundaries kBuckets = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return kBuckets;
}

// Purchase to published: Kafka round trips included, 5 ms to 2 min.
const Histogram::BucketBoundaries& PublishBuckets() {
  static const Histogram::BucketBoundaries kBuckets = {
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120};
  return kBuckets;
}

// Model fits: 10 ms to an hour.
const Histogram::BucketBoundaries& FitBuckets() {
  static const Histogram::BucketBoundaries kBuckets = {0.01, 0.1, 0.5, 1,   5,    10,  30,
                                                       60,   120, 300, 600, 1800, 3600};
  return kBuckets;
}

const Histogram::BucketBoundaries& RecordBuckets() {
  static const Histogram::BucketBoundaries kBuckets = {1,    10,   50,   100,  250,
                                                       500,  1000, 2500, 5000, 10000, 50000};
  return kBuckets;
}

// Adds `total - *last` to `counter` (totals only grow; a smaller one is ignored).
void Advance(prometheus::Counter* counter, uint64_t total, uint64_t* last) {
  if (total > *last) counter->Increment(static_cast<double>(total - *last));
  *last = std::max(*last, total);
}

}  // namespace

ServiceMetrics::ServiceMetrics(prometheus::Registry& registry, std::string input_topic,
                               std::string version)
    : input_topic_(std::move(input_topic)) {
  auto& consumed = BuildCounter()
                       .Name("streamrec_events_consumed_total")
                       .Help("Records consumed from the input topic (valid and invalid)")
                       .Register(registry);
  events_consumed_ = &consumed.Add({{"topic", input_topic_}});
  events_applied_ = &BuildCounter()
                         .Name("streamrec_events_applied_total")
                         .Help("Valid purchase events applied to the state")
                         .Register(registry)
                         .Add({});
  invalid_family_ = &BuildCounter()
                         .Name("streamrec_invalid_events_total")
                         .Help("Records that failed to decode or validate, by reason")
                         .Register(registry);
  dead_letters_ = &BuildCounter()
                       .Name("streamrec_dead_letters_total")
                       .Help("Dead letters written to the outbox (invalid records kept with "
                             "their error)")
                       .Register(registry)
                       .Add({});
  batch_records_ = &BuildHistogram()
                        .Name("streamrec_batch_records")
                        .Help("Records per micro-batch")
                        .Register(registry)
                        .Add({}, RecordBuckets());
  batch_seconds_ = &BuildHistogram()
                        .Name("streamrec_batch_duration_seconds")
                        .Help("Wall-clock time to apply one micro-batch")
                        .Register(registry)
                        .Add({}, LatencyBuckets());
  auto& stages = BuildHistogram()
                     .Name("streamrec_stage_duration_seconds")
                     .Help("Wall-clock time of a micro-batch stage: decode, state (load and "
                           "features), model (segments, recommender model), recommend (lists), "
                           "commit (the atomic write)")
                     .Register(registry);
  stage_decode_ = &stages.Add({{"stage", "decode"}}, LatencyBuckets());
  stage_state_ = &stages.Add({{"stage", "state"}}, LatencyBuckets());
  stage_model_ = &stages.Add({{"stage", "model"}}, LatencyBuckets());
  stage_recommend_ = &stages.Add({{"stage", "recommend"}}, LatencyBuckets());
  stage_commit_ = &stages.Add({{"stage", "commit"}}, LatencyBuckets());
  event_time_lag_ = &BuildGauge()
                         .Name("streamrec_event_time_lag_seconds")
                         .Help("Wall clock minus the newest event time applied")
                         .Register(registry)
                         .Add({});
  // A purchase's way to the output, from its Kafka timestamp, cut at three points to tell
  // where a list's latency goes: Kafka in (producer, broker, fetch), the batch (waiting for it
  // to close, its work, the write), Kafka out (purchase_to_publish minus purchase_to_commit).
  auto purchase_latency = [&](const char* name, const char* help) {
    return &BuildHistogram().Name(name).Help(help).Register(registry).Add({}, PublishBuckets());
  };
  purchase_to_publish_ = purchase_latency(
      "streamrec_purchase_to_publish_seconds",
      "From a purchase reaching Kafka (message timestamp) to the delivery acknowledgement of the "
      "list it changed");
  purchase_to_consume_ = purchase_latency(
      "streamrec_purchase_to_consume_seconds",
      "From a purchase reaching Kafka (message timestamp) to the service's consumer handing it "
      "over");
  purchase_to_commit_ = purchase_latency(
      "streamrec_purchase_to_commit_seconds",
      "From a purchase reaching Kafka (message timestamp) to the write of the list it changed "
      "(state, list and outbox) being done");
  lag_family_ = &BuildGauge()
                     .Name("streamrec_consumer_lag_messages")
                     .Help("Messages behind the partition's end (librdkafka statistics)")
                     .Register(registry);
  restore_remaining_family_ = &BuildGauge()
                                   .Name("streamrec_changelog_restore_remaining_records")
                                   .Help("Changelog records still to read by a running restore, "
                                         "by partition")
                                   .Register(registry);
  restored_records_ = &BuildCounter()
                           .Name("streamrec_changelog_restored_records_total")
                           .Help("Changelog records read by restores of partitions")
                           .Register(registry)
                           .Add({});
  standby_records_ = &BuildCounter()
                          .Name("streamrec_standby_records_total")
                          .Help("Changelog records applied to standby copies of partitions other "
                                "instances own")
                          .Register(registry)
                          .Add({});
  standby_partitions_ = &BuildGauge()
                             .Name("streamrec_standby_partitions")
                             .Help("Partitions whose changelog this instance tails (standby copies)")
                             .Register(registry)
                             .Add({});
  standby_lag_ = &BuildGauge()
                      .Name("streamrec_standby_lag_records")
                      .Help("Changelog records the standby copies are behind, summed over "
                            "partitions: what a failover would read from Kafka")
                      .Register(registry)
                      .Add({});
  item_stats_records_ = &BuildCounter()
                            .Name("streamrec_item_stats_remote_records_total")
                            .Help("Item statistics of partitions other instances own, read from "
                                  "kafka.item_stats_topic and summed into this instance's")
                            .Register(registry)
                            .Add({});
  item_stats_lag_ = &BuildGauge()
                        .Name("streamrec_item_stats_lag_records")
                        .Help("Records of kafka.item_stats_topic this instance has not read yet: "
                              "how far behind its view of the other partitions' item statistics is")
                        .Register(registry)
                        .Add({});
  item_stats_purchases_ = &BuildGauge()
                             .Name("streamrec_item_stats_purchases")
                             .Help("Purchase lines the item statistics in use count: every "
                                   "partition's with kafka.item_stats_topic (the same on every "
                                   "instance once caught up), else those processed here")
                             .Register(registry)
                             .Add({});
  fit_samples_remote_ = &BuildGauge()
                            .Name("streamrec_fit_samples_remote")
                            .Help("Customers of partitions other instances own held from "
                                  "kafka.sample_topic: what the segment fits made here add to "
                                  "this instance's own customers")
                            .Register(registry)
                            .Add({});
  fit_samples_lag_ = &BuildGauge()
                         .Name("streamrec_fit_samples_lag_records")
                         .Help("Records of kafka.sample_topic this instance has not read yet")
                         .Register(registry)
                         .Add({});
  cooccurrence_published_ = &BuildCounter()
                                .Name("streamrec_cooccurrence_rows_published_total")
                                .Help("Co-occurrence rows of this instance's partitions "
                                      "published to kafka.cooccurrence_topic (acknowledged)")
                                .Register(registry)
                                .Add({});
  cooccurrence_remote_rows_ = &BuildGauge()
                                  .Name("streamrec_cooccurrence_remote_rows")
                                  .Help("Co-occurrence rows of partitions other instances own, "
                                        "read from kafka.cooccurrence_topic and added to this "
                                        "instance's customers'")
                                  .Register(registry)
                                  .Add({});
  cooccurrence_lag_ = &BuildGauge()
                          .Name("streamrec_cooccurrence_lag_records")
                          .Help("Records of kafka.cooccurrence_topic this instance has not read "
                                "yet")
                          .Register(registry)
                          .Add({});
  prefetch_messages_ = &BuildGauge()
                            .Name("streamrec_consumer_prefetch_messages")
                            .Help("Input records fetched ahead of processing, queued in "
                                  "librdkafka (bounded by kafka.max_prefetch_mb)")
                            .Register(registry)
                            .Add({});
  prefetch_bytes_ = &BuildGauge()
                         .Name("streamrec_consumer_prefetch_bytes")
                         .Help("Payload bytes of the input records fetched ahead of processing "
                               "(bounded by kafka.max_prefetch_mb)")
                         .Register(registry)
                         .Add({});
  assigned_ = &BuildGauge()
                   .Name("streamrec_assigned_partitions")
                   .Help("Input partitions assigned to this instance")
                   .Register(registry)
                   .Add({});
  rebalances_ = &BuildCounter()
                     .Name("streamrec_rebalances_total")
                     .Help("Consumer group rebalances (assignments and revocations)")
                     .Register(registry)
                     .Add({});
  consumer_errors_ = &BuildCounter()
                          .Name("streamrec_consumer_errors_total")
                          .Help("Transport and broker errors seen by the consumer")
                          .Register(registry)
                          .Add({});
  pauses_ = &BuildCounter()
                 .Name("streamrec_backpressure_pauses_total")
                 .Help("Times the input was paused because too many output records were "
                       "unacknowledged")
                 .Register(registry)
                 .Add({});
  storage_errors_ = &BuildCounter()
                         .Name("streamrec_storage_errors_total")
                         .Help("State store writes that failed (disk error, disk full); each "
                               "pauses the input until the store takes writes again")
                         .Register(registry)
                         .Add({});
  storage_retries_ = &BuildCounter()
                          .Name("streamrec_storage_retries_total")
                          .Help("Attempts to resume writing that found the state store still "
                                "failing (one a second while it fails)")
                          .Register(registry)
                          .Add({});
  storage_writable_ = &BuildGauge()
                           .Name("streamrec_storage_writable")
                           .Help("1 while the state store takes writes; 0 while a write error "
                                 "keeps the input paused")
                           .Register(registry)
                           .Add({});
  storage_writable_->Set(1);

  outbox_pending_ = &BuildGauge()
                         .Name("streamrec_outbox_pending_records")
                         .Help("Output records in the outbox not yet acknowledged by Kafka")
                         .Register(registry)
                         .Add({});
  auto& delivered = BuildCounter()
                        .Name("streamrec_output_records_total")
                        .Help("Output records acknowledged by Kafka, by kind")
                        .Register(registry);
  delivered_list_ = &delivered.Add({{"kind", "list"}});
  delivered_change_ = &delivered.Add({{"kind", "segment-change"}});
  delivered_dead_letter_ = &delivered.Add({{"kind", "dead-letter"}});
  delivered_changelog_ = &delivered.Add({{"kind", "changelog"}});
  delivered_item_stats_ = &delivered.Add({{"kind", "item-stats"}});
  delivered_fit_sample_ = &delivered.Add({{"kind", "fit-sample"}});
  delivery_errors_ = &BuildCounter()
                          .Name("streamrec_output_delivery_errors_total")
                          .Help("Failed deliveries (each is produced again)")
                          .Register(registry)
                          .Add({});
  lists_published_ = &BuildCounter()
                          .Name("streamrec_lists_published_total")
                          .Help("Recommendation lists that changed, written to the outbox")
                          .Register(registry)
                          .Add({});
  lists_unchanged_ = &BuildCounter()
                          .Name("streamrec_lists_unchanged_total")
                          .Help("Lists recomputed equal to the published one (not sent again)")
                          .Register(registry)
                          .Add({});
  auto& cache = BuildCounter()
                    .Name("streamrec_state_cache_lookups_total")
                    .Help("Batch customers looked up in the in-memory state cache, by result "
                          "(miss: read from RocksDB)")
                    .Register(registry);
  cache_hits_ = &cache.Add({{"result", "hit"}});
  cache_misses_ = &cache.Add({{"result", "miss"}});
  lists_stale_refreshed_ = &BuildCounter()
                                .Name("streamrec_lists_stale_refreshed_total")
                                .Help("Quiet customers' lists recomputed by the background "
                                      "sweep (too old, or computed under an older model)")
                                .Register(registry)
                                .Add({});

  const std::pair<const char*, const char*> store_gauges[] = {
      {"sst_bytes", "SST files on disk"},
      {"live_data_bytes", "Estimated live data"},
      {"pending_compaction_bytes", "Estimated bytes compaction still has to rewrite"},
      {"block_cache_usage_bytes", "Block cache in use"},
      {"memtable_bytes", "Memtables (all column families)"},
      {"estimated_keys", "Estimated keys (all column families)"},
      {"flush_written_bytes", "Bytes written by memtable flushes since the store opened"},
      {"compaction_written_bytes", "Bytes written by compactions since the store opened"},
      {"compaction_read_bytes", "Bytes read by compactions since the store opened"},
      {"compaction_cpu_micros", "CPU microseconds compactions spent merging since the store opened"},
  };
  for (const auto& [name, help] : store_gauges) {
    store_[name] = &BuildGauge()
                        .Name(std::string("streamrec_rocksdb_") + name)
                        .Help(std::string("RocksDB state store: ") + help)
                        .Register(registry)
                        .Add({});
  }

  segment_version_ = &BuildGauge()
                          .Name("streamrec_segment_model_version")
                          .Help("Version of the segment model in use (0 = none fitted yet)")
                          .Register(registry)
                          .Add({});
  auto& refits = BuildCounter()
                     .Name("streamrec_segment_refits_total")
                     .Help("Full K-Means re-fits, by result")
                     .Register(registry);
  segment_refits_ok_ = &refits.Add({{"result", "ok"}});
  segment_refits_failed_ = &refits.Add({{"result", "failed"}});
  segment_refit_seconds_ = &BuildHistogram()
                                .Name("streamrec_segment_refit_duration_seconds")
                                .Help("Wall-clock time of a full segment re-fit")
                                .Register(registry)
                                .Add({}, FitBuckets());
  segment_refit_objective_ = &BuildGauge()
                                  .Name("streamrec_segment_refit_objective")
                                  .Help("Mean squared distance to the centre per customer at "
                                        "the last full re-fit")
                                  .Register(registry)
                                  .Add({});
  segment_online_objective_ = &BuildGauge()
                                   .Name("streamrec_segment_online_objective")
                                   .Help("Smoothed mean squared distance of the online "
                                         "mini-batch steps")
                                   .Register(registry)
                                   .Add({});
  segment_last_refit_ = &BuildGauge()
                             .Name("streamrec_segment_last_refit_timestamp_seconds")
                             .Help("Wall clock (Unix seconds) of the last re-fit installed")
                             .Register(registry)
                             .Add({});
  shared_model_fitter_ = &BuildGauge()
                              .Name("streamrec_segment_model_fitter")
                              .Help("1 when this instance fits the segment model for all "
                                    "instances (it owns input partition 0; kafka.model_topic)")
                              .Register(registry)
                              .Add({});
  auto& shared_models = BuildCounter()
                            .Name("streamrec_segment_models_shared_total")
                            .Help("Segment model versions published to kafka.model_topic by this "
                                  "instance, or adopted from it")
                            .Register(registry);
  shared_published_ = &shared_models.Add({{"direction", "published"}});
  shared_adopted_ = &shared_models.Add({{"direction", "adopted"}});
  transitions_family_ = &BuildCounter()
                             .Name("streamrec_segment_transitions_total")
                             .Help("Customers moving between segments (from \"none\" when "
                                   "first scored)")
                             .Register(registry);

  als_version_ = &BuildGauge()
                      .Name("streamrec_als_model_version")
                      .Help("Version of the ALS model in use (0 = none)")
                      .Register(registry)
                      .Add({});
  auto& als_refits = BuildCounter()
                         .Name("streamrec_als_refits_total")
                         .Help("ALS re-fits, by result")
                         .Register(registry);
  als_refits_ok_ = &als_refits.Add({{"result", "ok"}});
  als_refits_failed_ = &als_refits.Add({{"result", "failed"}});
  als_refit_seconds_ = &BuildHistogram()
                            .Name("streamrec_als_refit_duration_seconds")
                            .Help("Wall-clock time of an ALS fit")
                            .Register(registry)
                            .Add({}, FitBuckets());

  purchases_family_ = &BuildCounter()
                           .Name("streamrec_purchases_total")
                           .Help("Purchase lines of customers with a published list, by group "
                                 "and segment")
                           .Register(registry);
  conversions_family_ = &BuildCounter()
                             .Name("streamrec_conversions_total")
                             .Help("Purchase lines of an item on the customer's list, within "
                                   "the attribution window, by group and segment")
                             .Register(registry);
  ready_ = &BuildGauge()
                .Name("streamrec_ready")
                .Help("1 when the assigned partitions are restored and the model is loaded")
                .Register(registry)
                .Add({});
  BuildGauge()
      .Name("streamrec_build_info")
      .Help("Always 1; the labels say which build runs")
      .Register(registry)
      .Add({{"version", version}})
      .Set(1);
  segment_customers_family_ = &BuildGauge()
                                   .Name("streamrec_segment_customers")
                                   .Help("Customers per segment (background scan of the store)")
                                   .Register(registry);
  segment_revenue_family_ = &BuildGauge()
                                 .Name("streamrec_segment_revenue")
                                 .Help("Total spend of the segment's customers, in the feed's "
                                       "currency (background scan of the store)")
                                 .Register(registry);
  http_family_ = &BuildCounter()
                      .Name("streamrec_http_requests_total")
                      .Help("Query API requests, by route pattern and status code")
                      .Register(registry);
}

prometheus::Counter& ServiceMetrics::LabelledCounter(
    prometheus::Family<prometheus::Counter>& family,
    std::map<std::vector<std::string>, prometheus::Counter*>* cache,
    const std::vector<std::string>& names, const std::vector<std::string>& values) {
  auto it = cache->find(values);
  if (it != cache->end()) return *it->second;
  std::map<std::string, std::string> labels;
  for (size_t i = 0; i < names.size(); ++i) labels[names[i]] = values[i];
  prometheus::Counter& counter = family.Add(labels);
  cache->emplace(values, &counter);
  return counter;
}

void ServiceMetrics::RecordBatch(const BatchResult& r, uint64_t records, double seconds) {
  events_consumed_->Increment(static_cast<double>(r.records));
  events_applied_->Increment(static_cast<double>(r.events));
  for (const InvalidRecord& bad : r.invalid) {
    LabelledCounter(*invalid_family_, &invalid_, {"reason"}, {InvalidReason(bad.status)})
        .Increment();
  }
  dead_letters_->Increment(static_cast<double>(r.invalid.size()));
  batch_records_->Observe(static_cast<double>(records));
  batch_seconds_->Observe(seconds);
  stage_decode_->Observe(r.stages.decode);
  stage_state_->Observe(r.stages.state);
  stage_model_->Observe(r.stages.model);
  stage_recommend_->Observe(r.stages.recommend);
  stage_commit_->Observe(r.stages.commit);
  lists_published_->Increment(static_cast<double>(r.lists_published));
  lists_unchanged_->Increment(static_cast<double>(r.lists_unchanged));
  lists_stale_refreshed_->Increment(static_cast<double>(r.lists_refreshed));
  cache_hits_->Increment(static_cast<double>(r.cache_hits));
  cache_misses_->Increment(static_cast<double>(r.cache_misses));
  for (const auto& [move, n] : r.transitions) {
    if (move.first == move.second) continue;  // another cluster of the same name: no move
    LabelledCounter(*transitions_family_, &transitions_, {"from", "to"}, {move.first, move.second})
        .Increment(static_cast<double>(n));
  }
  for (const auto& [key, a] : r.attribution) {
    const std::vector<std::string> values = {key.first, key.second};
    LabelledCounter(*purchases_family_, &purchases_, {"group", "segment"}, values)
        .Increment(static_cast<double>(a.purchases));
    // Created with the purchases, so a conversion rate has both series from the start.
    LabelledCounter(*conversions_family_, &conversions_, {"group", "segment"}, values)
        .Increment(static_cast<double>(a.conversions));
  }
}

void ServiceMetrics::RecordConsumed(int64_t source_time_ms, int64_t now_ms) {
  if (source_time_ms > 0 && now_ms >= source_time_ms) {
    purchase_to_consume_->Observe((now_ms - source_time_ms) / 1000.0);
  }
}

void ServiceMetrics::RecordCommitted(int64_t source_time_ms, int64_t now_ms) {
  if (source_time_ms > 0 && now_ms >= source_time_ms) {
    purchase_to_commit_->Observe((now_ms - source_time_ms) / 1000.0);
  }
}

void ServiceMetrics::RecordDelivered(const v1::OutboxRecord& record, int64_t now_ms) {
  switch (record.payload_case()) {
    case v1::OutboxRecord::kList:
      delivered_list_->Increment();
      if (record.source_time_ms() > 0 && now_ms >= record.source_time_ms()) {
        purchase_to_publish_->Observe((now_ms - record.source_time_ms()) / 1000.0);
      }
      break;
    case v1::OutboxRecord::kSegmentChange:
      delivered_change_->Increment();
      break;
    case v1::OutboxRecord::kDeadLetter:
      delivered_dead_letter_->Increment();
      break;
    case v1::OutboxRecord::kChangelogState:
    case v1::OutboxRecord::kChangelogList:
    case v1::OutboxRecord::kChangelogPosition:
    case v1::OutboxRecord::kChangelogItem:
      delivered_changelog_->Increment();
      break;
    case v1::OutboxRecord::kSharedItemStats:
      delivered_item_stats_->Increment();
      break;
    case v1::OutboxRecord::kFitSample:
      delivered_fit_sample_->Increment();
      break;
    default:
      break;
  }
}

void ServiceMetrics::SetConsumerLag(int32_t partition, int64_t lag) {
  auto it = lag_.find(partition);
  if (it == lag_.end()) {
    it = lag_.emplace(partition, &lag_family_->Add({{"topic", input_topic_},
                                                    {"partition", std::to_string(partition)}}))
             .first;
  }
  it->second->Set(static_cast<double>(lag));
}

void ServiceMetrics::ForgetConsumerLag(int32_t partition) {
  auto it = lag_.find(partition);
  if (it == lag_.end()) return;
  lag_family_->Remove(it->second);
  lag_.erase(it);
}

void ServiceMetrics::SetItemStats(uint64_t purchases, uint64_t remote_records, uint64_t lag) {
  item_stats_purchases_->Set(static_cast<double>(purchases));
  if (remote_records > item_stats_counted_) {
    item_stats_records_->Increment(static_cast<double>(remote_records - item_stats_counted_));
    item_stats_counted_ = remote_records;
  }
  item_stats_lag_->Set(static_cast<double>(lag));
}

void ServiceMetrics::SetFitSamples(uint64_t remote, uint64_t lag) {
  fit_samples_remote_->Set(static_cast<double>(remote));
  fit_samples_lag_->Set(static_cast<double>(lag));
}

void ServiceMetrics::SetCooccurrence(uint64_t published, uint64_t remote_rows, uint64_t lag) {
  if (published > cooccurrence_counted_) {
    cooccurrence_published_->Increment(static_cast<double>(published - cooccurrence_counted_));
    cooccurrence_counted_ = published;
  }
  cooccurrence_remote_rows_->Set(static_cast<double>(remote_rows));
  cooccurrence_lag_->Set(static_cast<double>(lag));
}

void ServiceMetrics::SetStandby(uint64_t records, uint32_t partitions, uint64_t lag) {
  if (records > standby_counted_) {
    standby_records_->Increment(static_cast<double>(records - standby_counted_));
    standby_counted_ = records;
  }
  standby_partitions_->Set(partitions);
  standby_lag_->Set(static_cast<double>(lag));
}

void ServiceMetrics::SetRestoreProgress(int32_t partition, uint64_t read, uint64_t total,
                                        bool done) {
  if (read < restore_read_) restore_read_ = 0;  // a new restore
  restored_records_->Increment(static_cast<double>(read - restore_read_));
  restore_read_ = done ? 0 : read;
  auto it = restore_remaining_.find(partition);
  if (done) {
    if (it != restore_remaining_.end()) {
      restore_remaining_family_->Remove(it->second);
      restore_remaining_.erase(it);
    }
    return;
  }
  if (it == restore_remaining_.end()) {
    it = restore_remaining_
             .emplace(partition, &restore_remaining_family_->Add(
                                     {{"partition", std::to_string(partition)}}))
             .first;
  }
  it->second->Set(static_cast<double>(total > read ? total - read : 0));
}

void ServiceMetrics::SetTotals(const ServiceTotals& t) {
  Advance(rebalances_, t.rebalances, &totals_.rebalances);
  Advance(consumer_errors_, t.consumer_errors, &totals_.consumer_errors);
  Advance(pauses_, t.pauses, &totals_.pauses);
  Advance(delivery_errors_, t.delivery_errors, &totals_.delivery_errors);
  Advance(storage_errors_, t.storage_errors, &totals_.storage_errors);
  Advance(storage_retries_, t.storage_retries, &totals_.storage_retries);
}

void ServiceMetrics::SetStoreProperties(const std::map<std::string, uint64_t>& properties) {
  for (const auto& [name, value] : properties) {
    auto it = store_.find(name);
    if (it != store_.end()) it->second->Set(static_cast<double>(value));
  }
}

void ServiceMetrics::SetSegmenterStats(const SegmenterStats& s) {
  segment_version_->Set(static_cast<double>(s.model_version));
  if (s.refits > segmenter_.refits) {
    segment_refit_seconds_->Observe(s.last_refit_seconds);  // the latest of the new ones
  }
  Advance(segment_refits_ok_, s.refits, &segmenter_.refits);
  Advance(segment_refits_failed_, s.refit_failures, &segmenter_.refit_failures);
  segment_refit_objective_->Set(s.refit_objective);
  segment_online_objective_->Set(s.online_objective);
  if (s.last_refit_unix_ms > 0) segment_last_refit_->Set(s.last_refit_unix_ms / 1000.0);
}

void ServiceMetrics::SetSharedModel(bool fitter, uint64_t published, uint64_t adopted) {
  shared_model_fitter_->Set(fitter ? 1 : 0);
  Advance(shared_published_, published, &shared_published_total_);
  Advance(shared_adopted_, adopted, &shared_adopted_total_);
}

void ServiceMetrics::SetAlsStats(uint64_t version, const ModelRefitStats& s) {
  als_version_->Set(static_cast<double>(version));
  if (s.installed > als_.installed) als_refit_seconds_->Observe(s.last_seconds);
  Advance(als_refits_ok_, s.installed, &als_.installed);
  Advance(als_refits_failed_, s.failed, &als_.failed);
}

void ServiceMetrics::SetSegmentProfiles(const std::vector<SegmentProfile>& profiles) {
  std::lock_guard<std::mutex> lock(segments_mu_);
  std::map<std::string, std::pair<double, double>> now;  // segment -> customers, revenue
  for (const SegmentProfile& p : profiles) {
    auto& [customers, revenue] = now[p.segment.empty() ? "none" : p.segment];
    customers += static_cast<double>(p.customers);
    revenue += p.revenue;
  }
  for (auto it = segments_.begin(); it != segments_.end();) {
    if (now.count(it->first) == 0) {
      segment_customers_family_->Remove(it->second.first);
      segment_revenue_family_->Remove(it->second.second);
      it = segments_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [segment, figures] : now) {
    auto it = segments_.find(segment);
    if (it == segments_.end()) {
      it = segments_
               .emplace(segment, std::make_pair(&segment_customers_family_->Add({{"segment", segment}}),
                                                &segment_revenue_family_->Add({{"segment", segment}})))
               .first;
    }
    it->second.first->Set(figures.first);
    it->second.second->Set(figures.second);
  }
}

void ServiceMetrics::CountHttpRequest(const std::string& route, int code) {
  std::lock_guard<std::mutex> lock(http_mu_);
  LabelledCounter(*http_family_, &http_, {"route", "code"}, {route, std::to_string(code)})
      .Increment();
}

}  // namespace streamrec
