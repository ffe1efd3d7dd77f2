#include "kafka/changelog_restore.h"

#include <librdkafka/rdkafkacpp.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <string_view>
#include <vector>

#include "kafka/kafka_conf.h"
#include "kafka/standby.h"
#include "streamrec/changelog.h"
#include "streamrec/features.h"

namespace streamrec {

namespace {

using Clock = std::chrono::steady_clock;

// Reads ranges of one changelog partition: a plain consumer, assigned, never subscribed, never
// committing. Errors name the topic and partition.
class ChangelogReader {
 public:
  static StatusOr<std::unique_ptr<ChangelogReader>> Open(const KafkaConfig& kafka,
                                                         uint32_t partition, int timeout_ms) {
    const std::string where =
        "changelog '" + kafka.changelog_topic + "' partition " + std::to_string(partition);
    if (kafka.changelog_topic.empty()) {
      return Status::InvalidArgument(
          "kafka.changelog_topic is empty: there is no changelog to restore from");
    }
    auto props = AssignOnlyConsumerProperties(kafka, "streamrec-restore", "-restore");
    props["auto.offset.reset"] = "error";
    props["fetch.wait.max.ms"] = "10";
    props["queued.min.messages"] = "1000000";
    auto conf = MakeKafkaConf(props, "changelog reader");
    if (!conf.ok()) return conf.status().WithContext(where);
    std::string error;
    std::unique_ptr<RdKafka::KafkaConsumer> consumer(
        RdKafka::KafkaConsumer::create(conf->get(), error));
    if (!consumer) return Status::InvalidArgument(where + ": cannot create a reader: " + error);
    auto reader = std::unique_ptr<ChangelogReader>(
        new ChangelogReader(std::move(consumer), kafka.changelog_topic, partition, where));
    int64_t low = 0, high = 0;
    RdKafka::ErrorCode err = reader->consumer_->query_watermark_offsets(
        kafka.changelog_topic, static_cast<int32_t>(partition), &low, &high,
        std::min(timeout_ms, 30000));
    if (err != RdKafka::ERR_NO_ERROR) {
      return Status::IOError(where + ": cannot read its offsets: " + RdKafka::err2str(err));
    }
    reader->low_ = static_cast<uint64_t>(low);
    reader->high_ = static_cast<uint64_t>(high);
    return reader;
  }
  ~ChangelogReader() { consumer_->close(); }

  uint64_t low() const { return low_; }
  uint64_t high() const { return high_; }
  const std::string& where() const { return where_; }

  // Calls `visit(offset, key, value or null)` for every record of [from, to), in order.
  Status Read(uint64_t from, uint64_t to, Clock::time_point deadline,
              const std::function<Status(uint64_t, std::string_view, const std::string_view*)>&
                  visit) {
    if (from >= to) return Status::OK();
    std::vector<RdKafka::TopicPartition*> assignment = {RdKafka::TopicPartition::create(
        topic_, static_cast<int32_t>(partition_), static_cast<int64_t>(from))};
    RdKafka::ErrorCode err = consumer_->assign(assignment);
    RdKafka::TopicPartition::destroy(assignment);
    if (err != RdKafka::ERR_NO_ERROR) {
      return Status::IOError(where_ + ": cannot assign it: " + RdKafka::err2str(err));
    }
    uint64_t next = from;
    Status status;
    while (next < to) {
      if (Clock::now() > deadline) {
        status = Status::IOError(where_ + ": timed out at offset " + std::to_string(next) +
                                 " of " + std::to_string(to));
        break;
      }
      std::unique_ptr<RdKafka::Message> msg(consumer_->consume(100));
      if (msg->err() == RdKafka::ERR__TIMED_OUT || msg->err() == RdKafka::ERR__PARTITION_EOF) {
        continue;
      }
      if (msg->err() != RdKafka::ERR_NO_ERROR) {
        status = Status::IOError(where_ + ": " + msg->errstr() + " at offset " +
                                 std::to_string(next));
        break;
      }
      // (A compacted topic has gaps: the first record past the range ends it.)
      if (static_cast<uint64_t>(msg->offset()) >= to) break;
      next = static_cast<uint64_t>(msg->offset()) + 1;
      const std::string_view key =
          msg->key_pointer() != nullptr
              ? std::string_view(static_cast<const char*>(msg->key_pointer()), msg->key_len())
              : std::string_view();
      const std::string_view value(static_cast<const char*>(msg->payload()), msg->len());
      status = visit(static_cast<uint64_t>(msg->offset()), key,
                     msg->payload() != nullptr ? &value : nullptr);
      if (!status.ok()) {
        status = status.WithContext(where_);
        break;
      }
    }
    consumer_->unassign();
    return status;
  }

 private:
  ChangelogReader(std::unique_ptr<RdKafka::KafkaConsumer> consumer, std::string topic,
                  uint32_t partition, std::string where)
      : consumer_(std::move(consumer)),
        topic_(std::move(topic)),
        partition_(partition),
        where_(std::move(where)) {}

  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::string topic_;
  uint32_t partition_;
  std::string where_;
  uint64_t low_ = 0, high_ = 0;
};

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

StatusOr<ChangelogRestoreStats> RestoreFromChangelog(const KafkaConfig& kafka,
                                                     const ChangelogRestoreOptions& options,
                                                     StateStore* store) {
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::milliseconds(options.timeout_ms);
  const uint32_t p = options.partition;
  auto reader_or = ChangelogReader::Open(kafka, p, options.timeout_ms);
  if (!reader_or.ok()) return reader_or.status();
  ChangelogReader& reader = **reader_or;
  ChangelogRestoreStats stats;
  stats.begin_offset = reader.low();
  stats.end_offset = reader.high();
  if (reader.high() <= reader.low()) {
    // Nothing was ever written there (or retention removed it): the store stays as it is.
    stats.seconds = SecondsSince(start);
    return stats;
  }
  ChangelogLoader loader(store, options.source_name, p, options.batch_records);
  uint64_t from = reader.low();
  if (options.use_standby_copy) {
    auto copied = StandbyOffset(store, p);
    if (!copied.ok()) return copied.status();
    if (*copied > reader.low() && *copied <= reader.high()) {
      // The copy is the changelog up to *copied, compacted: each key once, in key order.
      loader.set_collect_lists(false);  // out of changelog order: the mark cannot place them
      Status s = ScanStandbyCopy(store, p, [&](std::string_view key, std::string_view value) {
        ++stats.standby_records;
        return loader.Add(*copied - 1, key, &value);
      });
      if (!s.ok()) return s.WithContext("standby copy of partition " + std::to_string(p));
      loader.set_collect_lists(true);
      from = *copied;
      // The lists between the copy's progress mark and its end may be unpublished: read again,
      // only to find them (the copy has the states).
      const int64_t mark = loader.published_mark();
      const uint64_t notes_from =
          mark >= 0 ? std::clamp<uint64_t>(static_cast<uint64_t>(mark), reader.low(), from)
                    : reader.low();
      s = reader.Read(notes_from, from, deadline,
                      [&](uint64_t offset, std::string_view key, const std::string_view* value) {
                        loader.NoteList(offset, key, value);
                        return Status::OK();
                      });
      if (!s.ok()) return s;
    }
  }
  stats.begin_offset = from;
  const uint64_t total = reader.high() - from;
  const uint64_t every = std::max<uint64_t>(1, options.batch_records);
  const uint64_t copied_records = loader.records();
  Status s = reader.Read(
      from, reader.high(), deadline,
      [&](uint64_t offset, std::string_view key, const std::string_view* value) -> Status {
        STREAMREC_RETURN_IF_ERROR(loader.Add(offset, key, value));
        const uint64_t read = loader.records() - copied_records;
        if (options.progress && read % every == 0) options.progress(read, total);
        return Status::OK();
      });
  if (s.ok()) s = loader.Finish().WithContext(reader.where());
  if (!s.ok()) return s;
  stats.records = loader.records() - copied_records;
  if (options.progress) options.progress(stats.records, total);
  stats.states = loader.states();
  stats.lists = loader.lists();
  stats.positions = loader.positions();
  stats.restored = true;
  stats.position = loader.position();
  stats.unpublished_lists = loader.TakeUnpublishedLists();
  stats.seconds = SecondsSince(start);
  return stats;
}

StatusOr<std::optional<v1::SourcePosition>> LatestChangelogPosition(const KafkaConfig& kafka,
                                                                     uint32_t partition,
                                                                     int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  auto reader_or = ChangelogReader::Open(kafka, partition, timeout_ms);
  if (!reader_or.ok()) return reader_or.status();
  ChangelogReader& reader = **reader_or;
  // A position follows every batch's states: read back from the end, a window that grows
  // until it holds one.
  uint64_t window = 1024;
  uint64_t to = reader.high();
  while (to > reader.low()) {
    const uint64_t from = to - std::min(window, to - reader.low());
    std::optional<v1::SourcePosition> latest;
    Status s = reader.Read(
        from, to, deadline,
        [&](uint64_t offset, std::string_view key, const std::string_view* value) -> Status {
          if (key != kChangelogPositionKey || value == nullptr) return Status::OK();
          v1::SourcePosition position;
          Status decoded = DecodeState(*value, &position);
          if (!decoded.ok()) {
            return Status::Corruption("position record at offset " + std::to_string(offset) +
                                      ": " + decoded.message());
          }
          latest = std::move(position);
          return Status::OK();
        });
    if (!s.ok()) return s;
    if (latest.has_value()) return latest;
    to = from;
    window *= 4;
  }
  return std::optional<v1::SourcePosition>();
}

}  // namespace streamrec
