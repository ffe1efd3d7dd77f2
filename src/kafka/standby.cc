#include "kafka/standby.h"

#include <librdkafka/rdkafkacpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "kafka/kafka_conf.h"

namespace streamrec {

namespace {

using Clock = std::chrono::steady_clock;

// A write holds at most this many records, and what was read is written within kWriteEvery.
constexpr size_t kWriteRecords = 5000;
constexpr auto kWriteEvery = std::chrono::milliseconds(100);
constexpr int kConsumeTimeoutMs = 100;
constexpr int kMetadataTimeoutMs = 5000;

std::string OffsetKey(uint32_t partition) { return "standby:" + std::to_string(partition); }

class StandbyReplicasImpl : public StandbyReplicas {
 public:
  StandbyReplicasImpl(const KafkaConfig& kafka, StateStore* store, std::shared_ptr<Logger> log,
                      std::unique_ptr<RdKafka::KafkaConsumer> consumer)
      : topic_(kafka.changelog_topic),
        store_(store),
        log_(std::move(log)),
        consumer_(std::move(consumer)) {
    thread_ = std::thread([this] { Loop(); });
  }

  ~StandbyReplicasImpl() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    std::lock_guard<std::mutex> lock(mu_);
    Status s = WriteLocked();
    if (!s.ok()) log_->Warn("standby: " + s.message());
    consumer_->close();
  }

  void SetOwned(const std::vector<int32_t>& owned) override {
    std::lock_guard<std::mutex> lock(mu_);
    // What was read of partitions about to be owned is written before a restore reads the copy.
    Status s = WriteLocked();
    if (!s.ok()) log_->Warn("standby: " + s.message());
    owned_.clear();
    for (int32_t p : owned) {
      owned_.insert(static_cast<uint32_t>(p));
      tailed_.erase(static_cast<uint32_t>(p));  // records of it read from now on are dropped
    }
    owned_known_ = true;
    reassign_ = true;
    ++generation_;
    cv_.notify_all();
  }

  StandbyStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return StatsLocked();
  }

  bool WaitCaughtUp(int timeout_ms) override {
    std::unique_lock<std::mutex> lock(mu_);
    return progress_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                                 [&] { return StatsLocked().caught_up; });
  }

 private:
  StandbyStats StatsLocked() const {
    StandbyStats s;
    s.records = records_;
    s.partitions = static_cast<uint32_t>(tailed_.size());
    bool caught_up = owned_known_ && !reassign_;
    for (uint32_t p : tailed_) {
      auto high = high_.find(p);
      auto next = next_.find(p);
      const uint64_t h = high != high_.end() ? high->second : 0;
      const uint64_t n = next != next_.end() ? next->second : 0;
      if (h > n) s.lag += h - n;
      if (high == high_.end() || h > n || n > written_next(p)) caught_up = false;
    }
    s.caught_up = caught_up;
    return s;
  }

  uint64_t written_next(uint32_t p) const {
    auto it = written_.find(p);
    return it != written_.end() ? it->second : 0;
  }

  void Loop() {
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (stop_) return;
        if (!owned_known_) {
          cv_.wait_for(lock, std::chrono::milliseconds(kConsumeTimeoutMs));
          continue;
        }
        if (reassign_) {
          Status s = Reassign(lock);
          if (!s.ok()) {
            WarnLocked("standby: " + s.message());
            cv_.wait_for(lock, std::chrono::milliseconds(1000));
            continue;
          }
          if (reassign_) continue;  // the owned partitions changed meanwhile
        }
        if (tailed_.empty()) {
          cv_.wait_for(lock, std::chrono::milliseconds(kConsumeTimeoutMs));
          continue;
        }
      }
      std::unique_ptr<RdKafka::Message> msg(consumer_->consume(kConsumeTimeoutMs));
      std::lock_guard<std::mutex> lock(mu_);
      if (msg->err() == RdKafka::ERR_NO_ERROR) {
        Apply(*msg);
      } else if (msg->err() != RdKafka::ERR__TIMED_OUT &&
                 msg->err() != RdKafka::ERR__PARTITION_EOF) {
        WarnLocked("standby: changelog '" + topic_ + "': " + msg->errstr());
      }
      if (Clock::now() - high_refreshed_ >= kWriteEvery) {
        RefreshHighLocked();
        high_refreshed_ = Clock::now();
      }
      if (batch_records_ >= kWriteRecords ||
          (batch_records_ > 0 && Clock::now() - batch_started_ >= kWriteEvery)) {
        Status s = WriteLocked();
        if (!s.ok()) {
          // Nothing stored past the kept offsets: they are read again.
          WarnLocked("standby: " + s.message() + "; reading again from the stored offsets");
          reassign_ = true;
        }
      }
      progress_cv_.notify_all();
    }
  }

  // REQUIRES: mu_ held. A record of a tailed partition goes into the pending write.
  void Apply(const RdKafka::Message& msg) {
    const uint32_t p = static_cast<uint32_t>(msg.partition());
    if (tailed_.count(p) == 0) return;  // owned since it was read: the restore took over
    const uint64_t offset = static_cast<uint64_t>(msg.offset());
    if (offset < next_[p]) return;
    if (msg.key_pointer() == nullptr || msg.key_len() == 0) {
      WarnLocked("standby: changelog '" + topic_ + "' partition " + std::to_string(p) +
                 ": record without a key at offset " + std::to_string(offset) + " skipped");
    } else {
      std::string key = PartitionKey(
          p, std::string_view(static_cast<const char*>(msg.key_pointer()), msg.key_len()));
      if (msg.payload() == nullptr) {
        batch_.Delete(Column::kStandby, std::move(key));
      } else {
        batch_.Put(Column::kStandby, std::move(key),
                   std::string(static_cast<const char*>(msg.payload()), msg.len()));
      }
    }
    if (batch_records_++ == 0) batch_started_ = Clock::now();
    next_[p] = offset + 1;
    dirty_.insert(p);
    ++records_;
  }

  // REQUIRES: mu_ held. Writes the pending records with the offsets they reach, in one write.
  Status WriteLocked() {
    if (dirty_.empty()) return Status::OK();
    for (uint32_t p : dirty_) batch_.Put(Column::kMeta, OffsetKey(p), std::to_string(next_[p]));
    Status s = store_->Write(batch_);
    batch_.Clear();
    batch_records_ = 0;
    if (s.ok()) {
      for (uint32_t p : dirty_) written_[p] = next_[p];
    }
    dirty_.clear();
    return s.ok() ? s : s.WithContext("writing standby copies");
  }

  // REQUIRES: `lock` holds mu_. Tails every changelog partition not owned, each from its copy's
  // offset. The broker is asked without the lock (SetOwned and stats never wait on the network);
  // when the owned partitions changed meanwhile, the caller tries again.
  Status Reassign(std::unique_lock<std::mutex>& lock) {
    STREAMREC_RETURN_IF_ERROR(WriteLocked());
    const uint64_t generation = generation_;
    const std::set<uint32_t> owned = owned_;
    struct Plan {
      uint32_t partition;
      uint64_t from;  // the copy's offset, 0 for none
      uint64_t low, high;
    };
    std::vector<Plan> plan;
    lock.unlock();
    Status s = [&]() -> Status {
      if (partitions_ == 0) {
        auto count = TopicPartitionCount(consumer_.get(), topic_, kMetadataTimeoutMs, "changelog");
        if (!count.ok()) return count.status();
        partitions_ = *count;
      }
      for (uint32_t p = 0; p < partitions_; ++p) {
        if (owned.count(p) != 0) continue;
        auto stored = StandbyOffset(store_, p);
        if (!stored.ok()) return stored.status();
        int64_t low = 0, high = 0;
        RdKafka::ErrorCode err = consumer_->query_watermark_offsets(
            topic_, static_cast<int32_t>(p), &low, &high, kMetadataTimeoutMs);
        if (err != RdKafka::ERR_NO_ERROR) {
          return Status::IOError("changelog '" + topic_ + "' partition " + std::to_string(p) +
                                 ": cannot read its offsets: " + RdKafka::err2str(err));
        }
        plan.push_back({p, *stored, static_cast<uint64_t>(low), static_cast<uint64_t>(high)});
      }
      return Status::OK();
    }();
    lock.lock();
    STREAMREC_RETURN_IF_ERROR(s);
    if (generation != generation_) return Status::OK();  // reassign_ is set again
    std::vector<RdKafka::TopicPartition*> assignment;
    tailed_.clear();
    for (const Plan& t : plan) {
      uint64_t from = t.from;
      if (from != 0 && (from < t.low || from > t.high)) {
        // The changelog was recreated or truncated: the copy describes another history.
        log_->Warn("standby: changelog '" + topic_ + "' partition " + std::to_string(t.partition) +
                   " holds offsets [" + std::to_string(t.low) + ", " + std::to_string(t.high) +
                   ") and the copy reached " + std::to_string(from) + ": copying it again");
        Status dropped = DropStandbyCopy(store_, t.partition);
        if (!dropped.ok()) {
          RdKafka::TopicPartition::destroy(assignment);
          return dropped;
        }
        from = 0;
      }
      next_[t.partition] = std::max(from, t.low);
      written_[t.partition] = next_[t.partition];
      high_[t.partition] = t.high;
      tailed_.insert(t.partition);
      assignment.push_back(RdKafka::TopicPartition::create(
          topic_, static_cast<int32_t>(t.partition), static_cast<int64_t>(next_[t.partition])));
    }
    RdKafka::ErrorCode err = consumer_->assign(assignment);
    RdKafka::TopicPartition::destroy(assignment);
    if (err != RdKafka::ERR_NO_ERROR) {
      tailed_.clear();
      return Status::IOError("changelog '" + topic_ + "': cannot assign: " + RdKafka::err2str(err));
    }
    reassign_ = false;
    std::string list;
    for (uint32_t p : tailed_) list += (list.empty() ? "" : ",") + std::to_string(p);
    log_->Info("standby: tailing changelog '" + topic_ + "' partitions [" + list + "]");
    return Status::OK();
  }

  // REQUIRES: mu_ held. The changelog's ends as the consumer last saw them (no broker request).
  void RefreshHighLocked() {
    for (uint32_t p : tailed_) {
      int64_t low = 0, high = 0;
      if (consumer_->get_watermark_offsets(topic_, static_cast<int32_t>(p), &low, &high) ==
              RdKafka::ERR_NO_ERROR &&
          high >= 0) {
        high_[p] = std::max<uint64_t>(high_[p], static_cast<uint64_t>(high));
      }
    }
  }

  void WarnLocked(const std::string& message) {
    if (++warnings_ <= 10 || warnings_ % 1000 == 0) log_->Warn(message);
  }

  const std::string topic_;
  StateStore* const store_;
  std::shared_ptr<Logger> log_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;

  mutable std::mutex mu_;
  std::condition_variable cv_;           // wakes the tailer
  std::condition_variable progress_cv_;  // wakes WaitCaughtUp
  bool stop_ = false;
  bool owned_known_ = false;
  bool reassign_ = false;
  uint64_t generation_ = 0;  // SetOwned calls so far
  uint32_t partitions_ = 0;  // of the changelog topic (tailer thread only)
  std::set<uint32_t> owned_, tailed_, dirty_;
  std::map<uint32_t, uint64_t> next_;     // next changelog offset read, per tailed partition
  std::map<uint32_t, uint64_t> written_;  // next offset stored
  std::map<uint32_t, uint64_t> high_;     // the changelog's end as last seen
  WriteSet batch_;
  size_t batch_records_ = 0;
  Clock::time_point batch_started_, high_refreshed_;
  uint64_t records_ = 0, warnings_ = 0;
  std::thread thread_;
};

}  // namespace

StatusOr<uint64_t> StandbyOffset(StateStore* store, uint32_t partition) {
  std::string value;
  Status s = store->Get(Column::kMeta, OffsetKey(partition), &value);
  if (s.IsNotFound()) return uint64_t{0};
  if (!s.ok()) return s;
  return static_cast<uint64_t>(std::strtoull(value.c_str(), nullptr, 10));
}

Status ScanStandbyCopy(StateStore* store, uint32_t partition,
                       const std::function<Status(std::string_view, std::string_view)>& visit) {
  Status inner;
  Status s = store->Scan(Column::kStandby, PartitionPrefix(partition),
                         [&](std::string_view key, std::string_view value) {
                           inner = visit(CustomerIdOfKey(key), value);
                           return inner.ok();
                         });
  return s.ok() ? inner : s;
}

Status DropStandbyCopy(StateStore* store, uint32_t partition) {
  WriteSet drop;
  drop.DeleteRange(Column::kStandby, PartitionPrefix(partition), PartitionPrefix(partition + 1));
  drop.Delete(Column::kMeta, OffsetKey(partition));
  return store->Write(drop);
}

StatusOr<std::unique_ptr<StandbyReplicas>> StandbyReplicas::Start(const KafkaConfig& kafka,
                                                                  StateStore* store,
                                                                  std::shared_ptr<Logger> log) {
  if (kafka.changelog_topic.empty()) {
    return Status::InvalidArgument("kafka.standby_replicas needs kafka.changelog_topic");
  }
  auto props = AssignOnlyConsumerProperties(kafka, "streamrec-standby", "-standby");
  props["auto.offset.reset"] = "earliest";
  auto created = NewKafkaConsumer(props, "standby replicas");
  if (!created.ok()) return created.status();
  std::unique_ptr<RdKafka::KafkaConsumer> consumer = std::move(created).value();
  return std::unique_ptr<StandbyReplicas>(
      new StandbyReplicasImpl(kafka, store, std::move(log), std::move(consumer)));
}

}  // namespace streamrec
