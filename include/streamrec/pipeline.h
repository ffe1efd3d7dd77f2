// Pipeline: the micro-batch core shared by every source (Kafka, file replay, evaluation).
//   decode -> group by customer -> MultiGet states -> update features and item statistics ->
//   assign segments -> recommend for changed customers -> one atomic write of states, item
//   statistics, the source position and outbox records.
// It knows nothing of Kafka or RocksDB: the store, segmenter and recommender are injected.
#ifndef STREAMREC_PIPELINE_H_
#define STREAMREC_PIPELINE_H_

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "streamrec/catalog.h"
#include "streamrec/changelog.h"
#include "streamrec/decoder.h"
#include "streamrec/features.h"
#include "streamrec/recommender.h"
#include "streamrec/segmenter.h"
#include "streamrec/state_store.h"
#include "streamrec/status.h"
#include "streamrec/v1/events.pb.h"
#include "streamrec/v1/state.pb.h"

namespace streamrec {

struct PipelineOptions {
  // Name of the source whose positions this pipeline stores (e.g. "file:events.csv" or a topic).
  std::string source_name = "file";
  FeatureOptions features;
  RecommenderOptions recommend;
  // Write every invalid record to the outbox as a dead letter (topic kind "dead-letters"), in
  // the same atomic batch as the position that skips it: a poison record is never lost and
  // never blocks its partition.
  bool dead_letters = false;
  // A purchase of an item on the customer's published list converts when the list was
  // published at most this many event-time days before it (BatchResult::attribution).
  double attribution_window_days = 7;
  // Decoded states of this many recently changed customers are kept in memory in front of the
  // store (0 = none): a customer who buys again is not read and decoded again. Write-through:
  // every batch still writes its states with its position, so the cache changes nothing of the
  // exactly-once contract; it saves the MultiGet and the decode.
  size_t state_cache_customers = 100000;
  // How error messages that may reach a log name customers (log.pseudonymize_customer_ids).
  CustomerIdsInLogs log_ids;
  // Also queue in the outbox, as changelog records (topic kind "changelog", produced to
  // kafka.changelog_topic), every customer state a batch writes and, after them, the position
  // of the batch's partition: a partition's state can then be restored from the changelog
  // (streamrec/changelog.h) on another instance.
  // With it, the partition's statistics of every item the batch touched go to the changelog
  // too (key kChangelogItemPrefix + item id), so a restore brings them back with the partition.
  bool changelog = false;
  // Also queue the batch's item statistics of its partition as records of topic kind
  // "item-stats" (key = item id, produced to partition p of kafka.item_stats_topic): the other
  // instances sum them with their own (ApplyRemoteItemStats), so popularity reflects every
  // partition.
  bool share_item_stats = false;
  // > 0: also queue, as records of topic kind "fit-sample" (key = customer id, produced to
  // partition p of kafka.sample_topic), the state of every customer the batch writes whose id
  // hashes below this share (UniformHash(id, kSegmentFitSampleSalt): the customers a fit's own
  // bounded sample prefers), for the instance that fits the segment model for all.
  double sample_share = 0;
  // Keep each owned partition's co-occurrence apart too (a shard of the recommender's index),
  // so that its rows can go to the other instances (TakeCooccurrenceRows, produced to
  // kafka.cooccurrence_topic), and count the recommender's index over the owned partitions'
  // customers only: the other partitions' rows come from their owners
  // (ApplyRemoteCooccurrence). Needs SetOwnedPartitions (kafka.item_stats_topic).
  bool share_cooccurrence = false;
  // The strongest neighbours a shared row keeps (0 = all).
  size_t cooccurrence_neighbours = 100;
  // Stamped on every position the pipeline writes (SourcePosition.writer_id): StoreId.
  uint64_t writer_id = 0;
};

// "bad quantity 'abc'" -> "bad quantity": the stable part of a decoder error, for counting
// invalid records by reason (a metric label, a dead-letter header): it names the field, never
// the value.
std::string InvalidReason(const Status& status);

// An invalid record's decoder error as a log line shows it. A decoder error may quote the
// record or a field's value (a customer id among them), so with pseudonymised customer ids
// (log_ids) only its reason is shown: "bad quantity (values withheld from the log)". Otherwise
// the whole message. The dead-letter topic keeps the whole message either way.
std::string InvalidRecordForLog(const Status& status, const CustomerIdsInLogs& log_ids);

// One raw record of a source partition. The views must stay valid during ProcessBatch.
struct SourceRecord {
  uint64_t offset = 0;
  std::string_view key;
  std::string_view payload;
  int64_t timestamp_ms = 0;  // when the record reached the source (Kafka timestamp); 0 = unknown
};

struct InvalidRecord {
  uint64_t offset = 0;
  Status status;
};

// Purchases of customers that had a published list, and those of an item on it (within the
// attribution window): per (group, segment) of the list, for live uplift.
struct Attribution {
  uint64_t purchases = 0;
  uint64_t conversions = 0;
};

// Wall-clock seconds of a micro-batch's stages.
struct StageSeconds {
  double decode = 0;     // decode records, dead letters
  double state = 0;      // group by customer, load states, apply features and item statistics
  double model = 0;      // segment assignment, the recommender's index and model
  double recommend = 0;  // lists of the batch's customers and the stale-list sweep
  double commit = 0;     // the atomic write
};

// An outbox record as a batch committed it: its place (OutboxKey(partition, sequence)) and the
// record itself, decoded.
struct OutboxEntry {
  uint32_t partition = 0;
  uint64_t sequence = 0;
  v1::OutboxRecord record;
};

struct BatchResult {
  uint64_t records = 0;           // records consumed (valid + invalid)
  uint64_t events = 0;            // valid events applied (not counting skipped_restored)
  uint64_t customers_changed = 0;
  uint64_t new_customers = 0;
  uint64_t lists_published = 0;   // lists that differed from the last published, sent to outbox
  uint64_t lists_refreshed = 0;   // quiet customers' stale lists recomputed (published or not)
  uint64_t lists_unchanged = 0;   // lists recomputed equal to the published one (not sent)
  uint64_t segment_changes = 0;
  // Segment moves, (from, to) segment names -> customers; "none" for a first assignment.
  std::map<std::pair<std::string, std::string>, uint64_t> transitions;
  // (group "treatment"|"control", segment at the purchase) -> purchases and conversions.
  std::map<std::pair<std::string, std::string>, Attribution> attribution;
  StageSeconds stages;
  uint64_t cache_hits = 0;        // batch customers found in the state cache
  uint64_t cache_misses = 0;      // read from the store (MultiGet)
  // Events a customer's state restored from the changelog already reflected (not applied again).
  uint64_t skipped_restored = 0;
  int64_t watermark_ms = 0;       // max event time applied so far in the partition
  // Other partitions whose outbox got records in this batch (SegmentChanges of stored customers
  // the segmenter relabelled): their publishers have something to send too.
  std::vector<uint32_t> other_outbox_partitions;
  std::vector<InvalidRecord> invalid;
  // Every outbox record the batch committed (its own partition's and the others'), in sequence
  // order within a partition: a publisher can send them without reading them back from the
  // store. Empty when the batch failed.
  std::vector<OutboxEntry> outbox;
};

class Pipeline {
 public:
  // None of the pointers are owned; all must outlive the pipeline. `catalog` may be null.
  Pipeline(PipelineOptions options, StateStore* store, const Catalog* catalog,
           Segmenter* segmenter, Recommender* recommender);

  // Loads the global item statistics from the store. REQUIRES: called once before ProcessBatch.
  Status Open();

  // The stored position of `partition` (a zero position when none is stored).
  StatusOr<v1::SourcePosition> Position(uint32_t partition);

  // Applies `records` of `partition`, decoded by `decoder`, as one atomic micro-batch. Records
  // must follow each other in offset order; offsets below the stored position are skipped
  // (already applied), so re-delivery after a crash is harmless. On error nothing of the batch
  // is stored and nothing of it stays in memory: item statistics, the segment model and the
  // recommender's model and index are reloaded from the store, so the same records can be
  // applied again (after a failed write: once the store takes writes again).
  Status ProcessBatch(uint32_t partition, const std::vector<SourceRecord>& records,
                      Decoder* decoder, BatchResult* result);

  // Drops the cached position of `partition`, so the next use reads the store (a partition
  // assigned again may have been processed elsewhere meanwhile).
  // Its cached states go too.
  void ForgetPosition(uint32_t partition);
  // After these partitions' state was replaced in the store (restores from the changelog):
  // forgets their cached positions and states, and marks the recommender's index of customers
  // stale. It is rebuilt (a scan of the stored customers) by the next SetOwnedPartitions,
  // EnsureRecommenderIndex, ProcessBatch or TakeCooccurrenceRows, so a rebalance that restores
  // partitions and changes the owned set scans the store once, not twice.
  Status PartitionsReplaced(const std::vector<uint32_t>& partitions);
  // Rebuilds the recommender's index if PartitionsReplaced left it stale.
  [[nodiscard]] Status EnsureRecommenderIndex();
  // Scans of the store that rebuilt the recommender's index (Open, rebalances, failed writes).
  uint64_t recommender_index_rebuilds() const { return index_rebuilds_; }

  // The item statistics the recommender reads: for every item, the sum (MergeItemStats, in
  // partition order) of its statistics over the partitions that count — every partition in the
  // store, or, once SetOwnedPartitions was called, the owned partitions from the store and every
  // other partition from what ApplyRemoteItemStats received.
  const ItemStatsTable& item_stats() const { return items_; }
  // Purchase lines and (customer, item) buyers item_stats() counts, summed over items: with
  // global item statistics every instance of a group converges to the same totals, those of
  // the whole stream.
  uint64_t item_purchases() const { return item_purchases_; }
  uint64_t item_buyers() const { return item_buyers_; }
  // The statistics partition `partition` stores for `item_id` (nullptr: none).
  const ItemStats* PartitionItemStats(uint32_t partition, std::string_view item_id) const;

  // Scale-out (several instances, kafka.item_stats_topic): the partitions this instance owns.
  // Their item statistics come from the store; every other partition's from the latest
  // ApplyRemoteItemStats. Until the first call, every partition in the store counts (one
  // instance, a file replay).
  // With share_cooccurrence, a change of the owned set rebuilds the recommender's index (a scan
  // of the stored customers); so does a stale index (PartitionsReplaced) in any case.
  [[nodiscard]] Status SetOwnedPartitions(const std::set<uint32_t>& partitions);
  // Another instance's statistics of one item in `partition` (the latest it committed,
  // cumulative: receiving a record twice, or an older one after a newer, changes nothing that
  // the next record does not mend). Records of owned partitions are kept but not used while
  // the partition is owned: its own store is newer.
  void ApplyRemoteItemStats(uint32_t partition, const ItemStats& stats);

  // Shared co-occurrence (share_cooccurrence). A partition's row of one item as the
  // co-occurrence topic has it: `encoded` an encoded v1::CooccurrenceRow, null for a tombstone
  // (no customer of the partition holds the item). Rows of partitions not owned here go into
  // the recommender's index (replacing that partition's previous row of the item); those of
  // owned partitions are kept to publish only what differs from them. A row that does not
  // decode is refused, naming the partition and item. `decoded`, when given, is `*encoded`
  // already decoded (the exchange's feed thread checks every row it reads): not decoded again.
  Status ApplyRemoteCooccurrence(uint32_t partition, std::string_view item_id,
                                 const std::string_view* encoded,
                                 const CooccurrenceRow* decoded = nullptr);
  struct CooccurrenceUpdate {
    uint32_t partition = 0;
    std::string item_id;
    std::optional<std::string> encoded;  // nullopt: a tombstone
  };
  // The owned partitions' rows that changed since the last call and differ from what the topic
  // has (as far as ApplyRemoteCooccurrence and earlier calls said), for the caller to produce;
  // taken as published. After a rebuild (a rebalance, a restore) every row is compared again,
  // so what a previous owner left unpublished goes out now.
  std::vector<CooccurrenceUpdate> TakeCooccurrenceRows();
  // A row TakeCooccurrenceRows handed out did not reach the topic: the next call hands it out
  // again (its current content).
  void CooccurrenceRowNotPublished(uint32_t partition, const std::string& item_id);
  // Remote rows in use.
  uint64_t cooccurrence_remote_rows() const { return cooccurrence_remote_rows_; }
  const PipelineOptions& options() const { return options_; }

 private:
  // Hands every stored customer to the recommender's index (after Open and a failed write).
  Status RebuildRecommenderIndex();
  bool index_stale_ = false;  // PartitionsReplaced since the last rebuild
  uint64_t index_rebuilds_ = 0;
  // share_cooccurrence: the shard of an owned partition (made on first use).
  RecommendIndex& CooccurrenceShard(uint32_t partition);
  Status LoadItems();
  // Whether partition p's item statistics come from the store (else from remote_items_).
  bool UsesLocalItems(uint32_t partition) const {
    return !owned_.has_value() || owned_->count(partition) > 0;
  }
  // items_[item_id] = the sum over the partitions that count (erased when none has the item).
  void MergeItem(const std::string& item_id);
  void MergeAllItems();
  // Queues `record` for the outbox at (partition, sequence); WriteOutbox writes the batch's.
  void PutOutbox(uint32_t partition, uint64_t sequence, v1::OutboxRecord record, WriteSet* writes);
  // Puts the queued records in the outbox and keeps them for BatchResult::outbox. Within each
  // partition the batch's sequences are kept, but the changelog records take the first ones and
  // the rest follow in the order queued (IsChangelogRecord: the changelog goes first).
  void WriteOutbox(WriteSet* writes);
  // Records `list`, just computed for `state`; when it differs from the published one, bumps
  // the list version and queues the list in the outbox. Returns whether it was published.
  // The published list also goes to the "lists" column (the query API reads it), and its items
  // into the state (conversion attribution). `source_time_ms` is the newest source timestamp of
  // the customer's records in the batch (0 for a background refresh).
  bool PublishList(uint32_t partition, int64_t watermark, int64_t source_time_ms,
                   const std::vector<Recommendation>& list, CustomerState* state,
                   WriteSet* writes, uint64_t* outbox_seq);
  // The stale-list sweep: visits stored customers of `partition` from the position's cursor and
  // refreshes those whose list is older than recommend.refresh_after_days or was computed under
  // an older segment model or an older recommender model (ALS), at most
  // recommend.refresh_per_batch per call. `skip` holds the customer keys the batch writes itself.
  Status RefreshStaleLists(uint32_t partition, int64_t watermark,
                           const std::unordered_set<std::string_view>& skip,
                           v1::SourcePosition* position, WriteSet* writes, uint64_t* outbox_seq,
                           BatchResult* result);

  PipelineOptions options_;
  StateStore* store_;
  const Catalog* catalog_;
  Segmenter* segmenter_;
  Recommender* recommender_;
  // The segment model version the last batch ended with (at Open: the stored one). A batch that
  // finds another one triggers the model fits that follow segment re-fits (ALS).
  uint64_t segment_version_seen_ = 0;
  ItemStatsTable items_;  // merged (item_stats())
  // Per partition, item -> statistics: from the store (kItems, PartitionKey(p, item)), and
  // from other instances (ApplyRemoteItemStats).
  using PartitionItems = std::map<uint32_t, std::unordered_map<std::string, ItemStats>>;
  PartitionItems local_items_;
  PartitionItems remote_items_;
  std::optional<std::set<uint32_t>> owned_;
  // share_cooccurrence: the owned partitions' shards (their customers' co-occurrence alone),
  // and per partition, item -> the encoded row the topic has (read, or handed out to publish).
  std::map<uint32_t, RecommendIndex> cooccurrence_shards_;
  std::map<uint32_t, std::unordered_map<std::string, std::string>> cooccurrence_rows_;
  std::set<std::pair<uint32_t, std::string>> cooccurrence_retry_;   // compare again
  std::set<std::pair<uint32_t, std::string>> cooccurrence_failed_;  // publish again
  // Rows of owned partitions handed out since the last rebuild.
  std::set<std::pair<uint32_t, std::string>> handed_out_;
  uint64_t cooccurrence_remote_rows_ = 0;
  uint64_t item_purchases_ = 0, item_buyers_ = 0;  // summed over items_
  std::map<uint32_t, v1::SourcePosition> positions_;  // cache of stored positions
  // The state cache: key -> (state, position in lru_); lru_ front = most recently written.
  // A batch takes its customers out and puts them back after its write succeeded; a cached
  // customer written by anything else (the segmenter's relabels, the stale-list sweep) takes
  // the written state.
  struct CachedState {
    CustomerState state;
    std::list<std::string>::iterator lru;
  };
  std::unordered_map<std::string, CachedState> cache_;
  std::list<std::string> lru_;
  void CachePut(const std::string& key, CustomerState state);
  std::vector<std::vector<Recommendation>> lists_;    // scratch: the lists of RecommendMany
  std::vector<OutboxEntry> outbox_;                   // scratch: the batch's outbox records
};

// The "lists" column's key of a customer: the same as its state's.
inline std::string ListKey(uint32_t partition, std::string_view customer_id) {
  return PartitionKey(partition, customer_id);
}

// JSON form of a list, one line, in the shape of `streamrec replay --recs-out`:
// {"customer_id":"…","version":N,"as_of":"<ISO-8601>","segment":"…","cluster":N,
//  "group":"treatment"|"control","items":[{"item_id":"…","score":X,"strategy":"…","reason":"…"}]}
std::string RecommendationListToJson(const v1::RecommendationList& list);
// {"customer_id":"…","from_cluster":N,"from_segment":"…","to_cluster":N,"to_segment":"…",
//  "model_version":N,"event_time":"<ISO-8601>"}
std::string SegmentChangeToJson(const v1::SegmentChange& change);

// Publishes the outbox records of `partition` in sequence order with `publish`, then calls
// `sync` (may be null; e.g. flush a file) and deletes the chunk of records published. Returns
// the number published. At-least-once: a crash between publish and delete publishes those
// records again on the next drain.
// `cursor` (may be null) is the first sequence number that may still be pending: the scan
// starts there and the cursor is advanced past what was drained. Start it at 0.
StatusOr<uint64_t> DrainOutbox(StateStore* store, uint32_t partition,
                               const std::function<Status(const v1::OutboxRecord&)>& publish,
                               const std::function<Status()>& sync = nullptr,
                               uint64_t* cursor = nullptr);

// The sequence number of an outbox key made by OutboxKey.
uint64_t OutboxSequence(std::string_view key);

}  // namespace streamrec

#endif  // STREAMREC_PIPELINE_H_
