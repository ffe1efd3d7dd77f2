// OutboxPublisher: drains the outbox column family into Kafka through an idempotent producer.
// An outbox record is deleted only when its delivery report says it was written; a failed
// delivery rewinds the partition's cursor so the record is produced again. After a restart
// everything still in the outbox is produced again (at least once; list versions let consumers
// drop duplicates). Single-threaded: Pump() and Flush() run on the service thread, which also
// serves the delivery reports (producer->poll()).
#ifndef STREAMREC_SRC_KAFKA_OUTBOX_PUBLISHER_H_
#define STREAMREC_SRC_KAFKA_OUTBOX_PUBLISHER_H_

#include <librdkafka/rdkafkacpp.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "streamrec/config.h"
#include "streamrec/logger.h"
#include "streamrec/state_store.h"
#include "streamrec/v1/state.pb.h"

namespace streamrec {

class OutboxPublisher : public RdKafka::DeliveryReportCb {
 public:
  // `producer` is created by the caller with this object as its dr_cb. Not owned.
  OutboxPublisher(StateStore* store, const KafkaConfig& config, std::shared_ptr<Logger> logger);

  void set_producer(RdKafka::Producer* producer) { producer_ = producer; }
  void set_on_delivered(std::function<void(const v1::OutboxRecord&)> f) { on_delivered_ = std::move(f); }

  // Finds every partition with pending outbox records (after a restart).
  Status Recover();
  // New records may be in `partition`'s outbox.
  void Notify(uint32_t partition) { dirty_.insert(partition); }
  // Produces pending records (at most `budget`), serves delivery reports and deletes
  // acknowledged records. Never blocks.
  Status Pump(size_t budget = 20000);
  // Pumps until nothing is pending or in flight, or `timeout_ms` passes. OK when all delivered.
  Status Flush(int timeout_ms);

  uint64_t in_flight() const { return in_flight_; }
  uint64_t delivered() const { return delivered_; }
  uint64_t delivery_errors() const { return delivery_errors_; }
  // Records Recover found in the outbox.
  uint64_t recovered() const { return recovered_; }

  void dr_cb(RdKafka::Message& message) override;

 private:
  struct Pending {
    uint32_t partition;
    uint64_t sequence;
    v1::OutboxRecord record;  // kept for on_delivered
  };
  Status ProduceRecord(uint32_t partition, uint64_t sequence, v1::OutboxRecord record, bool* queue_full);
  Status ApplyDeletes();

  StateStore* store_;
  KafkaConfig config_;
  std::shared_ptr<Logger> logger_;
  RdKafka::Producer* producer_ = nullptr;
  std::function<void(const v1::OutboxRecord&)> on_delivered_;
  std::map<uint32_t, uint64_t> cursor_;  // next sequence to produce, per partition
  std::set<uint32_t> dirty_;
  WriteSet deletes_;
  uint64_t in_flight_ = 0;
  uint64_t delivered_ = 0;
  uint64_t delivery_errors_ = 0;
  uint64_t recovered_ = 0;
};

}  // namespace streamrec

#endif  // STREAMREC_SRC_KAFKA_OUTBOX_PUBLISHER_H_
