// TopicFeed: reads every partition of one topic from its beginning on a thread of its own and
// hands each record to a handler there — the shared part of the feeds through which instances
// exchange partition state (kafka.item_stats_topic: ItemStatsFeed; kafka.sample_topic:
// SampleFeed; docs/scale-out.md). An assign-only consumer: no group, nothing committed.
#ifndef STREAMREC_SRC_KAFKA_TOPIC_FEED_H_
#define STREAMREC_SRC_KAFKA_TOPIC_FEED_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "streamrec/config.h"
#include "streamrec/logger.h"
#include "streamrec/status.h"

namespace streamrec {

class TopicFeed {
 public:
  // Called on the feed's thread for every record, in each partition's order; `value` is null
  // for a tombstone. A non-OK status refuses the record: counted, and logged (the first ten,
  // then every thousandth) with the topic, partition and offset.
  using Handler =
      std::function<Status(uint32_t partition, std::string_view key, const std::string_view* value)>;

  // Starts reading `topic` (`what` names it in errors and logs, e.g. "item-stats topic").
  // Fails when the topic's partitions cannot be learnt (it must exist).
  static StatusOr<std::unique_ptr<TopicFeed>> Start(const KafkaConfig& kafka,
                                                    const std::string& topic,
                                                    const std::string& what, Handler handler,
                                                    std::shared_ptr<Logger> log);
  virtual ~TopicFeed() = default;

  // Records read, and records the handler refused.
  virtual uint64_t records() const = 0;
  virtual uint64_t refused() const = 0;
  // Records not read yet, summed over partitions, as far as the end offsets the fetches last
  // reported (no request to the cluster).
  virtual uint64_t lag() const = 0;
  virtual uint32_t partitions() const = 0;
};

}  // namespace streamrec

#endif  // STREAMREC_SRC_KAFKA_TOPIC_FEED_H_
