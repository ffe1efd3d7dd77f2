// OutboxPublisher: drains the outbox column family into Kafka through an idempotent producer.
// Records of one outbox partition are produced in sequence order. The records a batch just
// committed are handed over in memory (Enqueue) and produced from there while they continue the
// partition's cursor; otherwise (after Recover, after a rewind, when the hand-off queue is full)
// the publisher reads the store, which stays the truth. Kafka's delivery reports may
// come back out of that order (records go to different output partitions); the publisher keeps
// per outbox partition which sequences are acknowledged and deletes only the contiguous
// acknowledged prefix, with one range delete per partition and Pump(). A failed delivery rewinds
// the partition's cursor so the record is produced again (records after it that Kafka already
// acknowledged are skipped). After a restart everything still in the outbox, acknowledged or not,
// is produced again (at least once, never skipped; list versions let consumers drop duplicates).
// Changelog first: an output record (list, segment change, dead letter) is produced only once
// every changelog record before it in its outbox partition is acknowledged. A batch's changelog
// records precede its outputs in the outbox (Pipeline::WriteOutbox), so the output topic never
// runs ahead of the changelog: an instance that takes a partition over from the changelog never
// computes again a list version somebody already received. The other way round, lists the
// changelog holds may be unpublished when their writer dies; the publisher marks its progress in
// the changelog (kChangelogPublishedKey: every list below that changelog offset is on the output
// topic), and the partition's next owner publishes the lists after the mark again.
// Single-threaded: Pump() and Flush() run on the service thread, which also serves the delivery
// reports (producer->poll()).
#ifndef STREAMREC_SRC_KAFKA_OUTBOX_PUBLISHER_H_
#define STREAMREC_SRC_KAFKA_OUTBOX_PUBLISHER_H_

#include <librdkafka/rdkafkacpp.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "streamrec/config.h"
#include "streamrec/logger.h"
#include "streamrec/pipeline.h"
#include "streamrec/state_store.h"
#include "streamrec/v1/state.pb.h"

namespace streamrec {

class OutboxPublisher : public RdKafka::DeliveryReportCb {
 public:
  // Handed-over records kept in memory at most, over all partitions (~1-2 KB each): beyond,
  // records are read back from the store when their turn comes.
  static constexpr size_t kDefaultMaxQueued = 100000;

  // `producer` is created by the caller with this object as its dr_cb. Not owned.
  OutboxPublisher(StateStore* store, const KafkaConfig& config, std::shared_ptr<Logger> logger,
                  size_t max_queued = kDefaultMaxQueued);

  void set_producer(RdKafka::Producer* producer) { producer_ = producer; }
  void set_on_delivered(std::function<void(const v1::OutboxRecord&)> f) { on_delivered_ = std::move(f); }

  // Finds every partition with pending outbox records (after a restart).
  Status Recover();
  // Ownership gate (the service turns it on with a changelog): a partition's outbox is
  // published only while the partition is owned (SetOwned). An instance that lost a partition
  // without flushing (a crash) must not publish its leftover records for it after the new
  // owner's: they describe a state the new owner replaced. They are held until the partition
  // comes back, then published (the local state went on from them) or dropped (DropPartition:
  // a restore replaced the state). Held partitions do not count as pending for Flush.
  void set_ownership_gate(bool on) { ownership_gate_ = on; }
  void SetOwned(uint32_t partition, bool owned);
  // Deletes every record of `partition`'s outbox and forgets what the publisher knew of it
  // (after its state was restored from the changelog). REQUIRES: none of its records is in
  // flight (the partition was not owned since they were produced, or they were flushed).
  Status DropPartition(uint32_t partition);
  // New records may be in `partition`'s outbox.
  void Notify(uint32_t partition) { partitions_[partition].dirty = true; }
  // Hands over records already committed to the outbox (BatchResult::outbox), ascending in
  // sequence within a partition: they are produced from memory when the cursor reaches them, not
  // read back. Records beyond max_queued, and any not above those queued before, are left to the
  // store (the partition is marked to be read). REQUIRES: every entry is committed.
  void Enqueue(std::vector<OutboxEntry> entries);
  // Produces pending records (at most `budget`), serves delivery reports and deletes the
  // acknowledged prefix of each partition's outbox (one range delete each). Never blocks.
  Status Pump(size_t budget = 20000);
  // Pumps until nothing is pending or in flight, or `timeout_ms` passes. OK when all delivered.
  Status Flush(int timeout_ms);
  // Gives up on what the producer still holds (after a crash, a failed run or a flush that timed
  // out, before the producer is destroyed): purges its queues, in flight included, and serves
  // the delivery reports for at most `timeout_ms`, which frees each message's record (the
  // producer frees its messages on destruction but never reports them). Purged records are not
  // delivery errors; they stay in the outbox and are produced again (their partitions are
  // rewound; a restart reads them back). Nothing is deleted. OK when nothing is left in flight.
  Status DropInFlight(int timeout_ms);

  uint64_t in_flight() const { return in_flight_; }
  uint64_t delivered() const { return delivered_; }
  // Failed deliveries and produce() calls refused at once (each record is produced again); not
  // the records DropInFlight purged.
  uint64_t delivery_errors() const { return delivery_errors_; }
  // Range deletes of acknowledged records the store refused (a disk error, a full disk). They
  // are not lost work: the records stay in the outbox, are deleted by a later delete once the
  // store takes writes again, and are at worst re-published after a restart.
  uint64_t delete_errors() const { return delete_errors_; }
  // Records Recover found in the outbox.
  uint64_t recovered() const { return recovered_; }
  // Handed-over records waiting in memory (at most max_queued).
  size_t queued() const { return queued_; }
  // Records read back from the store to be produced (the rest came by hand-over).
  uint64_t read_from_store() const { return read_from_store_; }
  // Times an output waited for the changelog records before it to be acknowledged.
  uint64_t barrier_waits() const { return barrier_waits_; }
  // Progress marks produced to the changelog (kChangelogPublishedKey).
  uint64_t published_marks() const { return published_marks_; }

  void dr_cb(RdKafka::Message& message) override;

 private:
  struct Pending {
    uint32_t partition;
    uint64_t sequence;
    v1::OutboxRecord record;  // kept for on_delivered
    bool changelog;           // counted in PartitionState::changelog_in_flight
  };
  // What the publisher knows of one outbox partition.
  struct PartitionState {
    uint64_t cursor = 0;  // the next sequence to produce
    // Every sequence below acked_base is acknowledged by Kafka or not in the outbox (so the
    // outbox may be deleted up to there); acked[i] != 0 says the same of acked_base + i. The
    // window ends at or after the cursor; entries at or after it exist only after a rewind.
    uint64_t acked_base = 0;
    std::deque<uint8_t> acked;
    uint64_t deleted_to = 0;  // the outbox is range-deleted below this sequence
    // Handed-over records, ascending, not necessarily contiguous: a gap between the cursor and
    // the front is read from the store.
    std::deque<OutboxEntry> queue;
    // The store may hold records at or after the cursor that are not in `queue` (beyond its
    // back, or anywhere when it is empty).
    bool dirty = false;
    // Changelog records produced and not yet reported (changelog first).
    uint64_t changelog_in_flight = 0;
    // The record at the cursor is an output waiting for changelog_in_flight to reach 0: nothing
    // more of the partition is produced until then.
    bool waiting = false;
    // Acknowledged position records not yet covered by the acknowledged prefix: (the batch's
    // end sequence, the changelog offset after the record), ascending.
    std::deque<std::pair<uint64_t, int64_t>> positions;
    // The progress mark last produced to the changelog (-1: none yet).
    int64_t published_mark = -1;
  };
  // Produces what `partition` has pending, within `*budget` and the in-flight limit.
  Status PumpPartition(uint32_t partition, PartitionState* state, size_t* budget, bool* queue_full);
  // Produces the records of the store from the cursor up to `end` (excluded), at most as many as
  // `*budget` allows. `*drained`: every record in [cursor, end) is produced now.
  Status ProduceFromStore(uint32_t partition, PartitionState* state, uint64_t end, size_t* budget,
                          bool* queue_full, bool* drained);
  // Produces `*record` (moved from when produced), which is the one at the cursor, and advances
  // the cursor; or only advances it when Kafka acknowledged the record already (produced before
  // a rewind). Leaves everything as it was when the producer's queue is full, or when the record
  // is an output behind unacknowledged changelog records (then sets state->waiting).
  Status ProduceNext(uint32_t partition, PartitionState* state, uint64_t sequence,
                     v1::OutboxRecord* record, size_t* budget, bool* queue_full);
  // Marks the sequences [begin, end) acknowledged (or known to be absent from the outbox) and
  // moves acked_base over the contiguous prefix.
  static void MarkAcknowledged(PartitionState* state, uint64_t begin, uint64_t end);
  static bool Acknowledged(const PartitionState& state, uint64_t sequence);
  // Produces a progress mark to `partition`'s changelog when a batch whose position record is
  // acknowledged is now acknowledged whole (fire and forget: a lost mark only makes the next
  // owner publish more lists again).
  void MarkPublished(uint32_t partition, PartitionState* state);
  // Deletes the acknowledged prefix of each partition's outbox. A failure is counted and logged,
  // not returned; the next attempt waits kDeleteRetryPause unless `retry_now`.
  Status ApplyDeletes(bool retry_now = false);
  bool HasPending() const;
  bool Held(uint32_t partition) const {
    return ownership_gate_ && owned_.count(partition) == 0;
  }

  StateStore* store_;
  KafkaConfig config_;
  std::shared_ptr<Logger> logger_;
  RdKafka::Producer* producer_ = nullptr;
  std::function<void(const v1::OutboxRecord&)> on_delivered_;
  std::map<uint32_t, PartitionState> partitions_;
  bool ownership_gate_ = false;
  std::set<uint32_t> owned_;
  size_t max_queued_;
  size_t queued_ = 0;
  uint64_t read_from_store_ = 0;
  uint64_t barrier_waits_ = 0;
  uint64_t published_marks_ = 0;
  uint64_t in_flight_ = 0;
  uint64_t delivered_ = 0;
  uint64_t delivery_errors_ = 0;
  // After a produce() the producer refused at once, nothing is produced until then.
  static constexpr std::chrono::milliseconds kRefusedPause{200};
  std::chrono::steady_clock::time_point refused_until_{};
  // After a failed delete, the next is tried no sooner than this.
  static constexpr std::chrono::milliseconds kDeleteRetryPause{1000};
  std::chrono::steady_clock::time_point deletes_retry_at_{};
  uint64_t delete_errors_ = 0;
  uint64_t recovered_ = 0;
};

}  // namespace streamrec

#endif  // STREAMREC_SRC_KAFKA_OUTBOX_PUBLISHER_H_
