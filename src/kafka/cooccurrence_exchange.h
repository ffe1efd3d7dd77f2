// Global co-occurrence for several instances (kafka.cooccurrence_topic, docs/scale-out.md).
//
// Each instance keeps its owned partitions' co-occurrence apart (Pipeline's shards) and, at most
// every kafka.cooccurrence_publish_ms, publishes the rows that changed (an item's buyers and its
// strongest neighbours in that partition: a v1::CooccurrenceRow) to the same partition number
// of the co-occurrence topic (compacted, key = item id; a tombstone once no customer of the
// partition holds the item). Every instance reads all partitions of the topic from the
// beginning and hands the rows to its pipeline (Pipeline::ApplyRemoteCooccurrence), which adds
// those of partitions it does not own to its own customers' co-occurrence. Rows are cumulative,
// so reading one twice, or an owner publishing one again, counts nothing twice.
//
// Rows are derived from the stored customers, not queued in the outbox: one that does not reach
// the topic is handed out again (Pipeline::CooccurrenceRowNotPublished), and a partition's next
// owner compares every row of it with the topic's when it rebuilds the shard.
#ifndef STREAMREC_SRC_KAFKA_COOCCURRENCE_EXCHANGE_H_
#define STREAMREC_SRC_KAFKA_COOCCURRENCE_EXCHANGE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "streamrec/config.h"
#include "streamrec/logger.h"
#include "streamrec/pipeline.h"
#include "streamrec/status.h"

namespace streamrec {

class CooccurrenceExchange {
 public:
  // Starts reading every partition of kafka.cooccurrence_topic from its beginning on a thread of
  // its own, and makes the producer. Fails when the topic's partitions cannot be learnt.
  static StatusOr<std::unique_ptr<CooccurrenceExchange>> Start(const KafkaConfig& kafka,
                                                               std::shared_ptr<Logger> log);
  virtual ~CooccurrenceExchange() = default;

  // Hands every row read since the last call (the latest per partition and item; `encoded`
  // null for a tombstone; `decoded` its decoding, done on the feed's thread, null with it) to
  // `apply` on the caller's thread. Returns how many.
  virtual size_t Drain(const std::function<void(uint32_t partition, const std::string& item_id,
                                                const std::string* encoded,
                                                const CooccurrenceRow* decoded)>& apply) = 0;
  // Produces the rows (asynchronously); one that cannot be produced or is not acknowledged is
  // reported by Poll.
  virtual void Publish(const std::vector<Pipeline::CooccurrenceUpdate>& rows) = 0;
  // Serves the producer's delivery reports; calls `failed` for each row that did not reach the
  // topic.
  virtual void Poll(const std::function<void(uint32_t partition, const std::string& item_id)>&
                        failed) = 0;
  // Waits up to `timeout_ms` for the rows in flight.
  virtual void Flush(int timeout_ms) = 0;

  // Rows acknowledged by the topic, rows that failed; records read, refused (no key, or a value
  // that does not decode), and not read yet (as far as the fetches last reported).
  virtual uint64_t published() const = 0;
  virtual uint64_t failed() const = 0;
  virtual uint64_t records() const = 0;
  virtual uint64_t refused() const = 0;
  virtual uint64_t lag() const = 0;
};

}  // namespace streamrec

#endif  // STREAMREC_SRC_KAFKA_COOCCURRENCE_EXCHANGE_H_
