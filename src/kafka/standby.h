// Standby replicas (kafka.standby_replicas): warm copies of the partitions other instances own.
//
// A StandbyReplicas tails, on a thread of its own, every changelog partition whose input
// partition this instance does not own, into the store's `standby` column: key
// PartitionKey(p, changelog key) -> the changelog value. The copy of partition p is changelog
// partition p compacted up to an offset kept in the same writes (meta "standby:<p>"), so it
// survives restarts and is never ahead of what it says. The copy is not customer state: the
// pipeline, the segmenter and the query API never read it. When the group assigns p here, the
// restore (RestoreFromChangelog with use_standby_copy) loads the copy and reads only the
// changelog's tail past that offset. The copy stays: when p goes elsewhere again, tailing resumes
// from its offset.
#ifndef STREAMREC_SRC_KAFKA_STANDBY_H_
#define STREAMREC_SRC_KAFKA_STANDBY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "streamrec/config.h"
#include "streamrec/logger.h"
#include "streamrec/state_store.h"
#include "streamrec/status.h"

namespace streamrec {

// The next changelog offset the standby copy of `partition` reflects (0: no copy).
StatusOr<uint64_t> StandbyOffset(StateStore* store, uint32_t partition);

// Visits the standby copy of `partition` (changelog key and value; each key once, its latest
// value), in key order.
Status ScanStandbyCopy(StateStore* store, uint32_t partition,
                       const std::function<Status(std::string_view key, std::string_view value)>& visit);

// Drops the standby copy of `partition` (a changelog that was recreated or truncated past it).
Status DropStandbyCopy(StateStore* store, uint32_t partition);

struct StandbyStats {
  uint64_t records = 0;      // changelog records applied to standby copies
  uint32_t partitions = 0;   // partitions tailed now
  uint64_t lag = 0;          // changelog records the copies are behind (sum over partitions)
  bool caught_up = false;    // every tailed partition's copy reached the changelog's end
};

class StandbyReplicas {
 public:
  // Starts the tailing thread. Nothing is tailed before the first SetOwned.
  static StatusOr<std::unique_ptr<StandbyReplicas>> Start(const KafkaConfig& kafka,
                                                          StateStore* store,
                                                          std::shared_ptr<Logger> log);
  virtual ~StandbyReplicas() = default;

  // The input partitions this instance owns now: every other partition of the changelog topic is
  // tailed. Returns once the copies of partitions no longer tailed are written as far as they
  // were read, and are written no more (a restore may read them).
  virtual void SetOwned(const std::vector<int32_t>& owned) = 0;

  virtual StandbyStats stats() const = 0;
  // Waits until stats().caught_up, at most `timeout_ms`; false on timeout.
  virtual bool WaitCaughtUp(int timeout_ms) = 0;
};

}  // namespace streamrec

#endif  // STREAMREC_SRC_KAFKA_STANDBY_H_
