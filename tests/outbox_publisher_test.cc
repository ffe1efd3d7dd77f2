// OutboxPublisher against librdkafka's mock cluster (127.0.0.1 only), on both stores: records of
// an outbox partition go out exactly in sequence order whether they come by hand-off or are read
// from the store, through a failed delivery and a restart; the outbox is range-deleted up to the
// contiguous acknowledged prefix and never further. Delivery reports pass through
// HeldDeliveryReports, so a test decides when, in which order and with which outcome the
// publisher sees them.
#include "kafka/outbox_publisher.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafkacpp.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <random>
#include <set>

#include "kafka/mock_cluster.h"
#include "streamrec/features.h"
#include "streamrec/pipeline.h"
#include "testutil/delivery_reports.h"
#include "testutil/test_util.h"

namespace streamrec {
namespace {

using testing::TempDir;

constexpr int kWaitMs = 30000;

std::string RecordKey(uint32_t partition, uint64_t sequence) {
  return "p" + std::to_string(partition) + "-" + std::to_string(sequence);
}

// A list record whose key and version say where it sits in the outbox.
v1::OutboxRecord ListRecord(uint32_t partition, uint64_t sequence) {
  v1::OutboxRecord record;
  record.set_topic_kind("recommendations");
  record.set_key(RecordKey(partition, sequence));
  v1::RecommendationList* list = record.mutable_list();
  list->set_customer_id(record.key());
  list->set_version(sequence + 1);
  list->add_items()->set_item_id("NI-10GB-30D");
  return record;
}

std::vector<uint64_t> Range(uint64_t begin, uint64_t end) {
  std::vector<uint64_t> out;
  for (uint64_t s = begin; s < end; ++s) out.push_back(s);
  return out;
}

// The parameter: true = RocksDB, false = the in-memory store.
class OutboxPublisherTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    auto cluster = MockKafkaCluster::Start(1);
    ASSERT_TRUE(cluster.ok()) << cluster.status().ToString();
    cluster_ = std::move(cluster).value();
    // One output partition: the producer delivers in the order it produced.
    for (const char* topic : {"recommendations", "segment-changes", "purchases-dlq"}) {
      ASSERT_OK(cluster_->CreateTopic(topic, 1));
    }
    ASSERT_OK(cluster_->CreateTopic("changelog", 2));  // partitioned like the outbox
    OpenStore();
  }
  void TearDown() override { Stop(); }

  // RocksDB: (re)opens the store, as a restarted process does. In memory: one store for the
  // whole test.
  void OpenStore() {
    if (!GetParam()) {
      if (memory_ == nullptr) memory_ = NewMemStateStore();
      return;
    }
    rocks_.reset();
    StoreOptions options;
    options.path = dir_.File("db");
    auto store = OpenRocksStateStore(options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    rocks_ = std::move(store).value();
  }
  StateStore* store() { return GetParam() ? rocks_.get() : memory_.get(); }

  // A publisher whose delivery reports pass through reports_, held there when `hold`.
  void Start(size_t max_queued, bool hold,
             const std::map<std::string, std::string>& producer_properties = {}) {
    KafkaConfig config;
    config.brokers = cluster_->bootstrap();
    config.changelog_topic = "changelog";
    publisher_ = std::make_unique<OutboxPublisher>(store(), config, NewNullLogger(), max_queued);
    reports_ = std::make_unique<testing::HeldDeliveryReports>(publisher_.get(), hold);
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    std::map<std::string, std::string> properties = {{"bootstrap.servers", cluster_->bootstrap()},
                                                     {"enable.idempotence", "true"},
                                                     {"linger.ms", "5"}};
    for (const auto& [k, v] : producer_properties) properties[k] = v;
    std::string error;
    for (const auto& [k, v] : properties) {
      ASSERT_EQ(conf->set(k, v, error), RdKafka::Conf::CONF_OK) << k << ": " << error;
    }
    ASSERT_EQ(conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(reports_.get()), error),
              RdKafka::Conf::CONF_OK)
        << error;
    producer_.reset(RdKafka::Producer::create(conf.get(), error));
    ASSERT_NE(producer_, nullptr) << error;
    publisher_->set_producer(producer_.get());
  }

  // The process goes away: reports still held are handed over as failures (the publisher owns
  // their opaques), nothing more is deleted.
  void Stop() {
    if (producer_ != nullptr) producer_->flush(kWaitMs);
    if (reports_ != nullptr) {
      while (!reports_->held().empty()) reports_->Release(0, /*fail=*/true);
    }
    producer_.reset();
    reports_.reset();
    publisher_.reset();
  }

  // Writes records [begin, end) of `partition` to the outbox in one write, as a batch commits
  // them, and returns them as the batch hands them over.
  std::vector<OutboxEntry> Commit(uint32_t partition, uint64_t begin, uint64_t end) {
    WriteSet writes;
    std::vector<OutboxEntry> entries;
    for (uint64_t seq = begin; seq < end; ++seq) {
      v1::OutboxRecord record = ListRecord(partition, seq);
      writes.Put(Column::kOutbox, OutboxKey(partition, seq), EncodeState(record));
      entries.push_back(OutboxEntry{partition, seq, std::move(record)});
    }
    EXPECT_OK(store()->Write(writes));
    return entries;
  }

  // Writes a changelog record (a customer state) at `sequence` of `partition`'s outbox and
  // returns it as a batch hands it over; its message key is "c-" + RecordKey.
  OutboxEntry CommitChangelog(uint32_t partition, uint64_t sequence) {
    v1::OutboxRecord record;
    record.set_topic_kind("changelog");
    record.set_key("c-" + RecordKey(partition, sequence));
    record.set_changelog_state("state");
    WriteSet writes;
    writes.Put(Column::kOutbox, OutboxKey(partition, sequence), EncodeState(record));
    EXPECT_OK(store()->Write(writes));
    return OutboxEntry{partition, sequence, std::move(record)};
  }

  // The sequences in `partition`'s outbox.
  std::vector<uint64_t> Stored(uint32_t partition) {
    std::vector<uint64_t> out;
    EXPECT_OK(store()->Scan(Column::kOutbox, PartitionPrefix(partition),
                            [&](std::string_view key, std::string_view) {
                              out.push_back(OutboxSequence(key));
                              return true;
                            }));
    return out;
  }

  // The sequences of `partition` in the order the producer delivered (= produced) them, checking
  // that each message carries its own record.
  std::vector<uint64_t> Produced(uint32_t partition) {
    std::vector<uint64_t> out;
    const std::string prefix = "p" + std::to_string(partition) + "-";
    for (const auto& report : reports_->seen()) {
      if (report.key.rfind(prefix, 0) != 0) continue;
      const uint64_t seq = std::stoull(report.key.substr(prefix.size()));
      v1::RecommendationList list;
      EXPECT_TRUE(list.ParseFromString(report.value)) << report.key;
      EXPECT_EQ(list.customer_id(), report.key);
      EXPECT_EQ(list.version(), seq + 1) << report.key;
      out.push_back(seq);
    }
    return out;
  }

  // Pumps, serving delivery reports, until `done` holds; false after kWaitMs.
  bool PumpUntil(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kWaitMs);
    while (true) {
      Status s = publisher_->Pump();
      if (!s.ok()) {
        ADD_FAILURE() << s.ToString();
        return false;
      }
      if (done()) return true;
      if (std::chrono::steady_clock::now() >= deadline) return false;
      producer_->poll(20);  // waits for delivery reports, at most 20 ms
    }
  }
  bool AllDelivered(uint64_t records) {
    return PumpUntil([&] {
             return publisher_->delivered() >= records && publisher_->in_flight() == 0;
           }) &&
           publisher_->Pump().ok();  // and the deletes of the last reports
  }
  // Hands over the held reports of `partition`'s `sequences`, in that order.
  void Release(uint32_t partition, const std::vector<uint64_t>& sequences, bool fail = false) {
    for (uint64_t seq : sequences) {
      EXPECT_TRUE(reports_->ReleaseKey(RecordKey(partition, seq), fail)) << seq << " not held";
    }
  }

  TempDir dir_;
  std::unique_ptr<MockKafkaCluster> cluster_;
  std::unique_ptr<StateStore> rocks_;
  std::unique_ptr<StateStore> memory_;
  std::unique_ptr<OutboxPublisher> publisher_;
  std::unique_ptr<testing::HeldDeliveryReports> reports_;
  std::unique_ptr<RdKafka::Producer> producer_;
};

TEST_P(OutboxPublisherTest, PublishesInSequenceOrderByHandOffAndFromTheStore) {
  Start(/*max_queued=*/120, /*hold=*/false);
  publisher_->Enqueue(Commit(0, 0, 100));
  // Written by another partition's batch: in the store only.
  Commit(0, 100, 150);
  publisher_->Notify(0);
  // 20 fit in the queue; the other 30 stay in the store, and memory stays bounded.
  publisher_->Enqueue(Commit(0, 150, 200));
  EXPECT_EQ(publisher_->queued(), 120u);
  // A partition with nothing handed over.
  Commit(1, 0, 50);
  publisher_->Notify(1);

  ASSERT_TRUE(AllDelivered(250));
  EXPECT_EQ(Produced(0), Range(0, 200));
  EXPECT_EQ(Produced(1), Range(0, 50));
  EXPECT_EQ(publisher_->read_from_store(), 50u + 30u + 50u) << "the rest came by hand-off";
  EXPECT_EQ(publisher_->queued(), 0u);
  EXPECT_EQ(publisher_->delivery_errors(), 0u);
  EXPECT_TRUE(Stored(0).empty());
  EXPECT_TRUE(Stored(1).empty());
}

// With the ownership gate, a partition's records go out only while it is owned: a restarted
// instance holds what it left for partitions it may no longer own, publishes it when the
// partition comes back, or drops it when the partition's state was restored from elsewhere.
TEST_P(OutboxPublisherTest, OwnershipGateHoldsPublishesOrDropsWhatAPartitionLeft) {
  Start(OutboxPublisher::kDefaultMaxQueued, /*hold=*/false);
  publisher_->set_ownership_gate(true);
  Commit(0, 0, 20);
  Commit(1, 0, 30);
  ASSERT_OK(publisher_->Recover());
  publisher_->Enqueue(Commit(0, 20, 25));
  for (int i = 0; i < 5; ++i) ASSERT_OK(publisher_->Pump());
  EXPECT_EQ(publisher_->in_flight() + publisher_->delivered(), 0u) << "nothing owned yet";
  Status flushed = publisher_->Flush(1000);  // held partitions are not pending
  ASSERT_TRUE(flushed.ok()) << flushed.ToString();

  publisher_->SetOwned(0, true);  // back, with its local state: its records go out in order
  ASSERT_TRUE(AllDelivered(25));
  EXPECT_EQ(Produced(0), Range(0, 25));
  EXPECT_TRUE(Stored(0).empty());
  EXPECT_EQ(Stored(1).size(), 30u) << "still held";

  ASSERT_OK(publisher_->DropPartition(1));  // restored from the changelog: obsolete
  EXPECT_TRUE(Stored(1).empty());
  publisher_->SetOwned(1, true);
  publisher_->Enqueue(Commit(1, 30, 35));  // the restored partition's first batch
  ASSERT_TRUE(AllDelivered(30));
  EXPECT_EQ(Produced(1), Range(30, 35));
  EXPECT_TRUE(Stored(1).empty());

  publisher_->SetOwned(0, false);  // revoked: held again
  publisher_->Enqueue(Commit(0, 25, 28));
  for (int i = 0; i < 5; ++i) ASSERT_OK(publisher_->Pump());
  EXPECT_EQ(publisher_->delivered(), 30u);
  EXPECT_EQ(Stored(0).size(), 3u);
}

TEST_P(OutboxPublisherTest, HandOffAfterAGapOrOutOfOrderFallsBackToTheStore) {
  Start(OutboxPublisher::kDefaultMaxQueued, /*hold=*/false);
  // The first batch seen of a partition whose earlier records were published long ago.
  WriteSet old;
  old.Put(Column::kOutbox, OutboxKey(0, 40), EncodeState(ListRecord(0, 40)));
  ASSERT_OK(store()->Write(old));
  Commit(0, 41, 45);  // not handed over
  publisher_->Enqueue(Commit(0, 45, 50));
  // Not above what is queued: the queue is dropped and the store read instead.
  std::vector<OutboxEntry> again = Commit(0, 47, 48);
  publisher_->Enqueue(std::move(again));
  EXPECT_EQ(publisher_->queued(), 0u);
  publisher_->Enqueue(Commit(0, 50, 55));
  ASSERT_TRUE(AllDelivered(15));
  EXPECT_EQ(Produced(0), Range(40, 55));
  EXPECT_TRUE(Stored(0).empty());
}

TEST_P(OutboxPublisherTest, FailedDeliveryRewindsAndOutOfOrderAcksDeleteOnlyTheAcknowledgedPrefix) {
  Start(OutboxPublisher::kDefaultMaxQueued, /*hold=*/true);
  publisher_->Enqueue(Commit(0, 0, 10));
  ASSERT_TRUE(PumpUntil([&] { return reports_->held().size() == 10; }));
  EXPECT_EQ(Produced(0), Range(0, 10));
  EXPECT_EQ(publisher_->read_from_store(), 0u) << "all by hand-off";

  Release(0, {3, 4, 5});
  ASSERT_OK(publisher_->Pump());
  EXPECT_EQ(Stored(0), Range(0, 10)) << "0, 1 and 2 are not acknowledged yet";
  Release(0, {1, 0});
  ASSERT_OK(publisher_->Pump());
  EXPECT_EQ(Stored(0), Range(2, 10));

  // 7 fails; 6, 8, 9 and 2 are written. A new batch arrives meanwhile.
  Release(0, {7}, /*fail=*/true);
  Release(0, {9, 8, 6, 2});
  publisher_->Enqueue(Commit(0, 10, 13));
  ASSERT_OK(publisher_->Pump());
  EXPECT_EQ(Stored(0), Range(7, 13)) << "8 and 9 are acknowledged but come after 7";
  ASSERT_TRUE(PumpUntil([&] { return reports_->held().size() == 4; }));
  // 7 again (read from the store), not 8 and 9 (acknowledged), then the new batch.
  std::vector<uint64_t> expected = Range(0, 10);
  for (uint64_t seq : {7, 10, 11, 12}) expected.push_back(seq);
  EXPECT_EQ(Produced(0), expected);
  EXPECT_EQ(publisher_->delivery_errors(), 1u);

  Release(0, {11, 12});
  ASSERT_OK(publisher_->Pump());
  EXPECT_EQ(Stored(0), Range(7, 13));
  Release(0, {7});
  ASSERT_OK(publisher_->Pump());
  EXPECT_EQ(Stored(0), Range(10, 13));
  Release(0, {10});
  ASSERT_OK(publisher_->Pump());
  EXPECT_TRUE(Stored(0).empty());
  EXPECT_EQ(publisher_->delivered(), 13u);
  EXPECT_EQ(publisher_->in_flight(), 0u);
}

// Changelog first: a list is produced only once every changelog record before it in its outbox
// partition is acknowledged, so the output topic never runs ahead of the changelog (the
// partition's next owner, restoring from the changelog, would compute those versions again). A
// failed changelog record is produced again before the lists behind it. Changelog records never
// wait, and other partitions are not held back.
TEST_P(OutboxPublisherTest, ListsWaitUntilTheChangelogBeforeThemIsAcknowledged) {
  Start(OutboxPublisher::kDefaultMaxQueued, /*hold=*/true);
  // Partition 0, two batches: changelog 0, lists 1-3; changelog 4, list 5.
  std::vector<OutboxEntry> entries;
  entries.push_back(CommitChangelog(0, 0));
  for (OutboxEntry& e : Commit(0, 1, 4)) entries.push_back(std::move(e));
  entries.push_back(CommitChangelog(0, 4));
  for (OutboxEntry& e : Commit(0, 5, 6)) entries.push_back(std::move(e));
  publisher_->Enqueue(std::move(entries));
  publisher_->Enqueue(Commit(1, 0, 3));  // another partition, without a changelog
  ASSERT_TRUE(PumpUntil([&] { return reports_->held().size() == 4; }));
  ASSERT_OK(publisher_->Pump());
  EXPECT_EQ(publisher_->in_flight(), 4u) << "lists 1-3 wait for changelog 0";
  EXPECT_TRUE(Produced(0).empty());
  EXPECT_EQ(Produced(1), Range(0, 3));
  EXPECT_GE(publisher_->barrier_waits(), 1u);

  // Changelog 0 fails: produced again, and the lists still wait behind it.
  Release(1, {0, 1, 2});
  ASSERT_TRUE(reports_->ReleaseKey("c-" + RecordKey(0, 0), /*fail=*/true));
  ASSERT_TRUE(PumpUntil([&] { return reports_->held().size() == 1; }));
  EXPECT_EQ(reports_->held()[0].key, "c-" + RecordKey(0, 0));
  ASSERT_OK(publisher_->Pump());
  EXPECT_EQ(publisher_->in_flight(), 1u);
  EXPECT_TRUE(Produced(0).empty());

  // Acknowledged: lists 1-3 go, and changelog 4 with them (it waits for nothing); list 5 waits.
  ASSERT_TRUE(reports_->ReleaseKey("c-" + RecordKey(0, 0)));
  ASSERT_TRUE(PumpUntil([&] { return reports_->held().size() == 4; }));
  ASSERT_OK(publisher_->Pump());
  EXPECT_EQ(publisher_->in_flight(), 4u);
  EXPECT_EQ(Produced(0), Range(1, 4));
  Release(0, {1, 2, 3});
  ASSERT_OK(publisher_->Pump());
  EXPECT_EQ(publisher_->in_flight(), 1u) << "list acknowledgements lift nothing";
  ASSERT_TRUE(reports_->ReleaseKey("c-" + RecordKey(0, 4)));
  ASSERT_TRUE(PumpUntil([&] { return reports_->held().size() == 1; }));
  EXPECT_EQ(reports_->held()[0].key, RecordKey(0, 5));
  reports_->ReleaseAll();
  ASSERT_TRUE(AllDelivered(9));
  // In the order the producer reported them: each list after the last report of every
  // changelog record before it.
  std::map<std::string, size_t> first, last;
  for (size_t i = 0; i < reports_->seen().size(); ++i) {
    first.try_emplace(reports_->seen()[i].key, i);
    last[reports_->seen()[i].key] = i;
  }
  for (uint64_t list : {1, 2, 3}) {
    EXPECT_LT(last.at("c-" + RecordKey(0, 0)), first.at(RecordKey(0, list))) << list;
  }
  EXPECT_LT(last.at("c-" + RecordKey(0, 4)), first.at(RecordKey(0, 5)));
  EXPECT_EQ(Produced(0), (std::vector<uint64_t>{1, 2, 3, 5}));
  EXPECT_TRUE(Stored(0).empty());
  EXPECT_EQ(publisher_->delivery_errors(), 1u);
}

TEST_P(OutboxPublisherTest, ShuffledAcknowledgementsKeepExactlyWhatFollowsTheFirstUnacknowledged) {
  Start(OutboxPublisher::kDefaultMaxQueued, /*hold=*/true);
  constexpr uint64_t kRecords = 300;
  for (uint32_t p : {0u, 1u}) publisher_->Enqueue(Commit(p, 0, kRecords));
  ASSERT_TRUE(PumpUntil([&] { return reports_->held().size() == 2 * kRecords; }));
  std::mt19937 rng(7);
  std::map<uint32_t, std::set<uint64_t>> acked;
  int rounds = 0;
  while (!reports_->held().empty()) {
    const size_t n = std::min<size_t>(reports_->held().size(), 1 + rng() % 40);
    for (size_t i = 0; i < n; ++i) {
      const size_t index = rng() % reports_->held().size();
      const std::string key = reports_->held()[index].key;
      reports_->Release(index);
      acked[key[1] - '0'].insert(std::stoull(key.substr(3)));
    }
    ASSERT_OK(publisher_->Pump());
    ++rounds;
    for (uint32_t p : {0u, 1u}) {
      uint64_t first_unacked = 0;
      while (acked[p].count(first_unacked) > 0) ++first_unacked;
      ASSERT_EQ(Stored(p), Range(first_unacked, kRecords))
          << "partition " << p << ", round " << rounds;
    }
  }
  EXPECT_EQ(publisher_->delivered(), 2 * kRecords);
  EXPECT_GT(rounds, 10);
}

TEST_P(OutboxPublisherTest, RestartPublishesEverythingLeftInTheOutboxAgainInOrder) {
  Start(OutboxPublisher::kDefaultMaxQueued, /*hold=*/true);
  publisher_->Enqueue(Commit(0, 0, 20));
  ASSERT_TRUE(PumpUntil([&] { return reports_->held().size() == 20; }));
  std::vector<uint64_t> late = Range(5, 20);
  std::reverse(late.begin(), late.end());
  Release(0, late);
  Release(0, {2, 0, 1});
  ASSERT_OK(publisher_->Pump());
  EXPECT_EQ(Stored(0), Range(3, 20)) << "3 and 4 unacknowledged; 5..19 acknowledged, kept";
  Stop();  // 3 and 4 are never acknowledged

  OpenStore();
  Start(OutboxPublisher::kDefaultMaxQueued, /*hold=*/false);
  ASSERT_OK(publisher_->Recover());
  EXPECT_EQ(publisher_->recovered(), 17u);
  publisher_->Enqueue(Commit(0, 20, 25));  // the first batch after the restart
  ASSERT_TRUE(AllDelivered(22));
  EXPECT_EQ(Produced(0), Range(3, 25)) << "at least once: nothing skipped, in order";
  EXPECT_TRUE(Stored(0).empty());
}

TEST_P(OutboxPublisherTest, FullProducerQueueKeepsTheRecordsAndTheirOrder) {
  // librdkafka takes 4 messages at a time: produce() keeps answering QUEUE_FULL.
  Start(OutboxPublisher::kDefaultMaxQueued, /*hold=*/false,
        {{"queue.buffering.max.messages", "4"}});
  publisher_->Enqueue(Commit(0, 0, 30));
  Commit(1, 0, 30);
  publisher_->Notify(1);
  publisher_->Enqueue(Commit(0, 30, 40));
  ASSERT_TRUE(AllDelivered(70));
  EXPECT_EQ(Produced(0), Range(0, 40));
  EXPECT_EQ(Produced(1), Range(0, 30));
  EXPECT_TRUE(Stored(0).empty());
  EXPECT_TRUE(Stored(1).empty());
}

TEST_P(OutboxPublisherTest, DropInFlightPurgesTheProducerAndKeepsTheRecordsInTheOutbox) {
  Start(OutboxPublisher::kDefaultMaxQueued, /*hold=*/false);
  publisher_->Enqueue(Commit(0, 0, 5));
  ASSERT_TRUE(AllDelivered(5));
  // The broker now answers after a minute: what is produced stays in flight or queued.
  ASSERT_EQ(rd_kafka_mock_broker_set_rtt(cluster_->raw(), 1, 60000), RD_KAFKA_RESP_ERR_NO_ERROR);
  publisher_->Enqueue(Commit(0, 5, 25));
  ASSERT_OK(publisher_->Pump());
  ASSERT_EQ(publisher_->in_flight(), 20u);

  // As before the producer of a crashed or failed service is destroyed: every record gets its
  // report (so its memory is freed), none counts as delivered or as a delivery error.
  ASSERT_OK(publisher_->DropInFlight(kWaitMs));
  EXPECT_EQ(publisher_->in_flight(), 0u);
  EXPECT_EQ(publisher_->delivered(), 5u);
  EXPECT_EQ(publisher_->delivery_errors(), 0u);
  ASSERT_EQ(reports_->seen().size(), 25u);
  for (size_t i = 5; i < 25; ++i) {
    const RdKafka::ErrorCode err = reports_->seen()[i].err;
    EXPECT_TRUE(err == RdKafka::ERR__PURGE_QUEUE || err == RdKafka::ERR__PURGE_INFLIGHT)
        << reports_->seen()[i].key << ": " << RdKafka::err2str(err);
  }
  EXPECT_EQ(Stored(0), Range(5, 25)) << "purged records stay in the outbox";
  ASSERT_EQ(rd_kafka_mock_broker_set_rtt(cluster_->raw(), 1, 0), RD_KAFKA_RESP_ERR_NO_ERROR);
  Stop();

  // The restarted process publishes them, in order.
  OpenStore();
  Start(OutboxPublisher::kDefaultMaxQueued, /*hold=*/false);
  ASSERT_OK(publisher_->Recover());
  EXPECT_EQ(publisher_->recovered(), 20u);
  ASSERT_TRUE(AllDelivered(20));
  EXPECT_EQ(Produced(0), Range(5, 25));
  EXPECT_TRUE(Stored(0).empty());
}

INSTANTIATE_TEST_SUITE_P(Stores, OutboxPublisherTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "RocksDB" : "Memory"; });

}  // namespace
}  // namespace streamrec
