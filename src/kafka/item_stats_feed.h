// Global item statistics for several instances (kafka.item_stats_topic, docs/scale-out.md).
//
// Every batch queues its partition's statistics of the items it touched as "item-stats" outbox
// records (PipelineOptions::share_item_stats); the publisher produces them to the same partition
// number of the item-stats topic (compacted, key = item id, value = the encoded ItemStats, the
// partition's cumulative statistics of that item). Every instance reads all partitions of the
// topic from the beginning with an ItemStatsFeed and hands each record to its pipeline
// (Pipeline::ApplyRemoteItemStats), which sums the partitions it does not own with its own.
// Cumulative values make the exchange idempotent: a record read twice, or a replayed batch's
// record, counts nothing twice.
#ifndef STREAMREC_SRC_KAFKA_ITEM_STATS_FEED_H_
#define STREAMREC_SRC_KAFKA_ITEM_STATS_FEED_H_

#include <cstdint>
#include <functional>
#include <memory>

#include "streamrec/config.h"
#include "streamrec/features.h"
#include "streamrec/logger.h"
#include "streamrec/status.h"

namespace streamrec {

class ItemStatsFeed {
 public:
  // Starts reading every partition of kafka.item_stats_topic from its beginning on a thread of
  // its own. Fails when the topic's partitions cannot be learnt (it must exist).
  static StatusOr<std::unique_ptr<ItemStatsFeed>> Start(const KafkaConfig& kafka,
                                                        std::shared_ptr<Logger> log);
  virtual ~ItemStatsFeed() = default;
  // Hands every (partition, statistics) read since the last call to `apply`, the latest per
  // partition and item only, on the caller's thread (the service's consumer thread, which owns
  // the pipeline). Returns how many it handed.
  virtual size_t Drain(const std::function<void(uint32_t partition, const ItemStats&)>& apply) = 0;
  // Records read, and records refused (no key, or a value that does not decode).
  virtual uint64_t records() const = 0;
  virtual uint64_t refused() const = 0;
  // Records the feed has not read yet, summed over partitions, as far as the end offsets its
  // fetches last reported (no request to the cluster).
  virtual uint64_t lag() const = 0;
  // Partitions of the topic.
  virtual uint32_t partitions() const = 0;
};

}  // namespace streamrec

#endif  // STREAMREC_SRC_KAFKA_ITEM_STATS_FEED_H_
