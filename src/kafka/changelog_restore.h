// Restoring a partition's state from the changelog topic (kafka.changelog_topic); the format and
// what a restore rebuilds are in streamrec/changelog.h.
#ifndef STREAMREC_SRC_KAFKA_CHANGELOG_RESTORE_H_
#define STREAMREC_SRC_KAFKA_CHANGELOG_RESTORE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "streamrec/config.h"
#include "streamrec/state_store.h"
#include "streamrec/status.h"
#include "streamrec/v1/state.pb.h"

namespace streamrec {

struct ChangelogRestoreOptions {
  // The pipeline's source name (PipelineOptions::source_name): the restored position's key.
  std::string source_name;
  uint32_t partition = 0;
  // Records per store write (each without the write-ahead log; one flush at the end).
  size_t batch_records = 10000;
  // Gives up when the changelog's end was not reached within this long.
  int timeout_ms = 120000;
  // Start from the store's standby copy of the partition (src/kafka/standby.h), when it has one,
  // and read only the changelog past it.
  bool use_standby_copy = false;
  // Called after each store write with the changelog records read and the number to read.
  std::function<void(uint64_t read, uint64_t total)> progress;
};

struct ChangelogRestoreStats {
  uint64_t records = 0;          // changelog records read (from Kafka)
  uint64_t standby_records = 0;  // records taken from the standby copy
  uint64_t states = 0;           // customer state records applied (later ones overwrite)
  uint64_t lists = 0;            // customer list records applied
  uint64_t positions = 0;        // position records read
  uint64_t begin_offset = 0;     // the changelog partition's range read: [begin, end)
  uint64_t end_offset = 0;
  bool restored = false;         // false: the changelog partition was empty, the store untouched
  v1::SourcePosition position;   // the position stored (next_offset 0 when none was found)
  double seconds = 0;
  // Encoded RecommendationLists the changelog holds after its latest progress mark: their
  // writer may have died before they reached the output topic. The caller publishes them again
  // (same version, same content: at worst a duplicate a consumer drops).
  std::vector<std::string> unpublished_lists;
};

// Replaces the state of input partition `options.partition` in `store` with what the changelog
// partition of the same number holds (ChangelogLoader), read from its start (or from the end of
// its standby copy, with use_standby_copy) to the end it had when the restore began. An empty changelog partition leaves the store as it is. Errors name
// the topic and partition. Uses kafka.brokers and the kafka.consumer properties (security among
// them).
StatusOr<ChangelogRestoreStats> RestoreFromChangelog(const KafkaConfig& kafka,
                                                     const ChangelogRestoreOptions& options,
                                                     StateStore* store);

// The latest position record of changelog partition `partition` (none when the partition holds
// none): how far the state the changelog holds reaches. Reads back from the end.
StatusOr<std::optional<v1::SourcePosition>> LatestChangelogPosition(const KafkaConfig& kafka,
                                                                     uint32_t partition,
                                                                     int timeout_ms);

}  // namespace streamrec

#endif  // STREAMREC_SRC_KAFKA_CHANGELOG_RESTORE_H_
