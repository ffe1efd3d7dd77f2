// Samples for the shared segment fits (kafka.sample_topic, docs/scale-out.md).
//
// Every batch queues the states of its customers in a uniform sample (PipelineOptions::
// sample_share: the customers whose id hashes below the share) as "fit-sample" outbox records;
// the publisher produces them to the same partition number of the sample topic (compacted, key
// = customer id, value = the encoded CustomerState). Every instance reads the whole topic with a
// SampleFeed and keeps each customer's latest sampled state; the instance that fits the segment
// model for all (kafka.model_topic) adds those of the partitions it does not own to its own
// customers (KMeansSegmenter::SetSharedSamples). A customer's latest record wins, so a record
// read twice, or a replayed batch's, changes nothing.
#ifndef STREAMREC_SRC_KAFKA_SAMPLE_FEED_H_
#define STREAMREC_SRC_KAFKA_SAMPLE_FEED_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <set>

#include "streamrec/config.h"
#include "streamrec/features.h"
#include "streamrec/logger.h"
#include "streamrec/status.h"

namespace streamrec {

class SampleFeed {
 public:
  // Starts reading every partition of kafka.sample_topic from its beginning on a thread of its
  // own. Fails when the topic's partitions cannot be learnt (it must exist).
  static StatusOr<std::unique_ptr<SampleFeed>> Start(const KafkaConfig& kafka,
                                                     std::shared_ptr<Logger> log);
  virtual ~SampleFeed() = default;
  // The input partitions this instance owns: their customers come from its store, not from
  // here (any thread).
  virtual void SetOwned(std::set<uint32_t> owned) = 0;
  virtual std::set<uint32_t> owned() const = 0;
  // Calls `visit` with the latest sampled state of every customer of a partition not owned
  // here (any thread: a background fit's; the feed's lock is held meanwhile). Returns how many.
  virtual size_t ForEach(const std::function<void(const CustomerState&)>& visit) = 0;
  // Customers held of partitions not owned here.
  virtual size_t remote() const = 0;
  // Records read, refused (no key, a value that does not decode or is another customer's), and
  // not read yet (as far as the fetches last reported).
  virtual uint64_t records() const = 0;
  virtual uint64_t refused() const = 0;
  virtual uint64_t lag() const = 0;
};

}  // namespace streamrec

#endif  // STREAMREC_SRC_KAFKA_SAMPLE_FEED_H_
