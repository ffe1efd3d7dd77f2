// The changelog: what another instance needs to take a partition's state over.
//
// With PipelineOptions::changelog the pipeline queues every customer state a batch writes in
// the outbox of the customer's input partition, then the partition's position; the publisher
// produces them, in that order, to the same partition number of kafka.changelog_topic (key =
// customer id, or kChangelogPositionKey for the position). ChangelogLoader rebuilds a store's
// partition from such records, read in order from the start of a changelog partition:
//   - every customer's latest state (a compacted topic keeps only that);
//   - every customer's latest list (the lists column: what the query API serves);
//   - the partition's latest statistics of every item its customers bought (the items column);
//   - the latest position, so consumption resumes where the restored states leave off.
// States produced after the latest position (a batch whose position record never made it: its
// writer died in between) may reflect records past that position. Each state carries the offset
// after the last record applied to it (CustomerState.source_next_offset) and the restored
// position says how far restored states may reach (SourcePosition.restored_through), so the
// pipeline skips those records for those customers instead of counting them twice.
// The Kafka side is RestoreFromChangelog (src/kafka/changelog_restore.h).
#ifndef STREAMREC_CHANGELOG_H_
#define STREAMREC_CHANGELOG_H_

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "streamrec/state_store.h"
#include "streamrec/status.h"
#include "streamrec/v1/state.pb.h"

namespace streamrec {

// The changelog key of a partition's position record (a customer id never starts with NUL: the
// decoders refuse control characters in ids).
inline const std::string kChangelogPositionKey = std::string("\0streamrec.position", 19);
// A customer's list is keyed this prefix + the customer id (its state: the customer id alone).
inline const std::string kChangelogListPrefix = std::string("\0streamrec.list:", 16);
// The partition's statistics of one item (an encoded ItemStats) are keyed this prefix + item id.
inline const std::string kChangelogItemPrefix = std::string("\0streamrec.item:", 16);
// The publisher's progress marker (value: a decimal changelog offset X): every list the
// partition's changelog holds below offset X is on the output topic. Lists at or after X may
// not be (their writer may have died before they were acknowledged): an instance restoring the
// partition publishes those again (ChangelogRestoreStats::unpublished_lists).
inline const std::string kChangelogPublishedKey = std::string("\0streamrec.published", 20);

// Whether `record` goes to the changelog topic (a state, a list, item statistics, a position).
// In a batch's outbox the changelog records come first and the outputs (lists, segment changes,
// dead letters) after them, and the publisher produces an output only once every changelog
// record before it is acknowledged: the output topic never runs ahead of the changelog.
inline bool IsChangelogRecord(const v1::OutboxRecord& record) {
  switch (record.payload_case()) {
    case v1::OutboxRecord::kChangelogState:
    case v1::OutboxRecord::kChangelogList:
    case v1::OutboxRecord::kChangelogPosition:
    case v1::OutboxRecord::kChangelogItem:
      return true;
    default:
      return false;
  }
}

// The outbox record that shares a partition's cumulative statistics of one item with the other
// instances (kafka.item_stats_topic; key = item id, value = the encoded ItemStats): queued by
// each batch that touched the item, and for every item again by a restore of the partition.
inline v1::OutboxRecord SharedItemStatsRecord(std::string item_id, std::string encoded) {
  v1::OutboxRecord record;
  record.set_topic_kind("item-stats");
  record.set_key(std::move(item_id));
  record.set_shared_item_stats(std::move(encoded));
  return record;
}

// Loads one changelog partition into `store` as input partition `partition` of source
// `source_name`. The first Add (or Finish) removes the partition's stored customers, lists and item statistics:
// the changelog holds every customer the partition ever wrote. The partition's outbox is kept
// (records not yet published go out as usual); the restored position's outbox sequence
// continues after them. Store writes skip the write-ahead log, except the first, which marks the
// partition as being restored (RestoreIncomplete), and the last (Finish: after a flush, the
// position, removing the mark): a partition whose restore did not finish stays marked, and must
// be restored again before it is processed. REQUIRES: nothing else writes the partition meanwhile, and a pipeline
// sharing the store forgets its cached position afterwards (Pipeline::ForgetPosition).
// The position of (source_name, partition) stored in `store`; a new position (only source and
// partition set) when none is stored.
StatusOr<v1::SourcePosition> LoadPosition(StateStore* store, std::string_view source_name,
                                          uint32_t partition);

// The store's identity, a random number drawn when it is first asked for and kept in the
// store (meta "store_id"): the writer of the positions a pipeline over it puts in the changelog.
StatusOr<uint64_t> StoreId(StateStore* store);

// Whether a restore of `partition` began in `store` and did not finish (its state is partial).
StatusOr<bool> RestoreIncomplete(StateStore* store, std::string_view source_name,
                                 uint32_t partition);

class ChangelogLoader {
 public:
  ChangelogLoader(StateStore* store, std::string source_name, uint32_t partition,
                  size_t batch_records = 10000);

  // One changelog record, in changelog order. `value` null: a tombstone (the customer was
  // dropped). Errors name the offset (Corruption for a record that does not decode).
  Status Add(uint64_t offset, std::string_view key, const std::string_view* value);
  // Writes what is left, flushes, stores the position. OK once.
  Status Finish();

  // Lists that may never have reached the output topic: those read after the latest progress
  // mark (kChangelogPublishedKey), each version as read, in changelog order. Collected from the
  // records Add sees while `collect` is on (the default; off for a standby copy, which holds
  // each key once, out of changelog order) and from NoteList.
  void set_collect_lists(bool collect) { collect_lists_ = collect; }
  // A record read only to find such lists (before the standby copy's offset): a list is noted,
  // nothing is stored.
  void NoteList(uint64_t offset, std::string_view key, const std::string_view* value);
  // The progress mark read last (-1: none): lists below this changelog offset are published.
  int64_t published_mark() const { return published_mark_; }
  // Hands over the encoded RecommendationLists read at or after published_mark() (all of them
  // when no mark was read).
  std::vector<std::string> TakeUnpublishedLists();

  uint64_t records() const { return records_; }
  uint64_t states() const { return states_; }
  uint64_t lists() const { return lists_; }
  uint64_t items() const { return items_; }
  uint64_t positions() const { return positions_; }
  // After Finish: the position stored.
  const v1::SourcePosition& position() const { return position_; }

 private:
  // Marks the partition as being restored (with the log) and queues the removal of its customers
  // and lists (once).
  Status BeginOnce();
  Status WriteBatch();
  // Queues the put of `value` (null: the delete) at PartitionKey(partition, id) of `column`, and
  // writes the batch when it is full.
  Status Apply(Column column, std::string_view id, const std::string_view* value);

  StateStore* store_;
  std::string source_name_;
  uint32_t partition_;
  size_t batch_records_;
  WriteSet batch_;
  bool cleared_ = false;
  v1::SourcePosition position_;
  bool position_found_ = false;
  uint64_t restored_through_ = 0;
  bool collect_lists_ = true;
  int64_t published_mark_ = -1;
  std::deque<std::pair<uint64_t, std::string>> unpublished_;  // (offset, list), ascending
  uint64_t records_ = 0, states_ = 0, lists_ = 0, items_ = 0, positions_ = 0;
};

}  // namespace streamrec

#endif  // STREAMREC_CHANGELOG_H_
