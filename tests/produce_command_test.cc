// `streamrec produce` against librdkafka's embedded mock cluster on 127.0.0.1: the feed arrives
// complete and keyed by customer, configuration supplies brokers and topic, and the failures a
// user meets (missing file, unreachable broker, missing topic) end with a clear message and the
// documented exit code.
#include <gtest/gtest.h>
#include <librdkafka/rdkafkacpp.h>

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "file_io.h"
#include "kafka/mock_cluster.h"
#include "streamrec/decoder.h"
#include "streamrec/generator.h"
#include "testutil/kafka_reader.h"
#include "testutil/subprocess.h"
#include "testutil/test_util.h"

namespace streamrec {
namespace {

using testing::ProcessResult;
using testing::RunProcess;
using testing::StreamrecBinary;
using testing::TempDir;

constexpr int kPartitions = 3;
using EventKey = std::tuple<std::string, std::string, int64_t, double>;  // customer, item, time, qty

EventKey KeyOf(const PurchaseEvent& e) {
  return {e.customer_id, e.item_id, e.event_time_ms, e.quantity};
}

std::multiset<EventKey> EventsOfCsv(const std::string& path) {
  std::multiset<EventKey> out;
  for (const PurchaseEvent& e : testing::ReadCsvEvents(path)) out.insert(KeyOf(e));
  return out;
}

class ProduceCommandTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto cluster = MockKafkaCluster::Start(1);
    ASSERT_TRUE(cluster.ok()) << cluster.status().ToString();
    cluster_ = std::move(cluster).value().release();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(cluster_, nullptr); }

  // Reads `topic` from the beginning of every partition until `count` records arrived or 30 s
  // passed. Returns the decoded events; records whose key is not the customer id fail the test.
  static std::multiset<EventKey> Consume(const std::string& topic, size_t count) {
    auto consumer = testing::NewTopicReader(cluster_->bootstrap(), topic, kPartitions,
                                            "produce-test-" + topic);
    if (consumer == nullptr) return {};
    auto decoder = NewProtobufDecoder(DecoderOptions());
    std::multiset<EventKey> out;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (out.size() < count && std::chrono::steady_clock::now() < deadline) {
      std::unique_ptr<RdKafka::Message> m(consumer->consume(200));
      if (m->err() != RdKafka::ERR_NO_ERROR) continue;
      PurchaseEvent e;
      const Status s = decoder->Decode(
          std::string_view(static_cast<const char*>(m->payload()), m->len()), &e);
      EXPECT_TRUE(s.ok()) << s.ToString();
      EXPECT_TRUE(m->key() != nullptr && *m->key() == e.customer_id) << "key is the customer id";
      out.insert(KeyOf(e));
    }
    consumer->close();
    return out;
  }

  static MockKafkaCluster* cluster_;
};
MockKafkaCluster* ProduceCommandTest::cluster_ = nullptr;

TEST_F(ProduceCommandTest, ProducesEveryEventOfAGzipFeedKeyedByCustomer) {
  ASSERT_OK(cluster_->CreateTopic("feed-gz", kPartitions));
  TempDir dir;
  TelcoGeneratorOptions gen;
  gen.customers = 50;
  gen.events = 400;
  gen.seed = 3;
  const std::string feed = dir.File("feed.csv.gz");
  ASSERT_OK(GenerateTelcoFeed(gen, feed, dir.File("catalog.csv")));
  const auto expected = EventsOfCsv(feed);
  ASSERT_EQ(expected.size(), 400u);

  ProcessResult r = RunProcess({StreamrecBinary(), "produce", "--brokers", cluster_->bootstrap(),
                                "--topic", "feed-gz", "--input", feed, "--timeout", "20"});
  ASSERT_TRUE(r.exited && r.exit_code == 0) << r.output;
  EXPECT_NE(r.output.find("produced 400 events to feed-gz"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("3 partitions"), std::string::npos) << r.output;
  EXPECT_EQ(Consume("feed-gz", expected.size()), expected);
}

TEST_F(ProduceCommandTest, BrokersAndTopicComeFromTheConfigurationAndBadLinesAreSkipped) {
  ASSERT_OK(cluster_->CreateTopic("feed-config", kPartitions));
  TempDir dir;
  const std::string feed = dir.File("retail.csv");
  testing::WriteFile(feed,
                     "customer_id,item_id,timestamp,quantity,unit_price,amount,channel\n"
                     "17850,85123A,2010-12-01 08:26:00,6,2.55,15.3,\n"
                     "17850,71053,2010-12-01 08:26:00,6,3.39,20.34,\n"
                     "13047,84879,2010-12-01 08:34:00,abc,1.69,,\n"  // bad quantity: skipped
                     "13047,22745,2010-12-01 08:34:00,6,2.1,12.6,\n");
  const std::string config = dir.File("streamrec.yaml");
  testing::WriteFile(config, "kafka:\n  brokers: \"" + cluster_->bootstrap() +
                                 "\"\n  input_topic: feed-config\n");
  ProcessResult r = RunProcess({StreamrecBinary(), "produce", "--config", config, "--input", feed});
  ASSERT_TRUE(r.exited && r.exit_code == 0) << r.output;
  EXPECT_NE(r.output.find("produced 3 events to feed-config; skipped 1 lines"), std::string::npos)
      << r.output;
  EXPECT_EQ(Consume("feed-config", 3), EventsOfCsv(feed));
}

TEST_F(ProduceCommandTest, MissingInputFileIsAUsageError) {
  ProcessResult r = RunProcess({StreamrecBinary(), "produce", "--brokers", cluster_->bootstrap(),
                                "--topic", "purchases", "--input", "/nonexistent/feed.csv"});
  EXPECT_TRUE(r.exited && r.exit_code == 2) << r.output;
  EXPECT_NE(r.output.find("/nonexistent/feed.csv"), std::string::npos) << r.output;
}

TEST_F(ProduceCommandTest, UnreachableBrokerFailsAfterTheDeadline) {
  TempDir dir;
  const std::string feed = dir.File("feed.csv");
  testing::WriteFile(feed, "customer_id,item_id,timestamp\n1,a,2020-01-01\n");
  const auto start = std::chrono::steady_clock::now();
  // Port 1 on loopback: connections are refused.
  ProcessResult r = RunProcess({StreamrecBinary(), "produce", "--brokers", "127.0.0.1:1", "--topic",
                                "purchases", "--input", feed, "--timeout", "1.5"});
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(r.exited && r.exit_code == 1) << r.output;
  EXPECT_NE(r.output.find("no Kafka broker reachable at 127.0.0.1:1 within 1500 ms"),
            std::string::npos) << r.output;
  EXPECT_LT(seconds, 15.0) << "the deadline was not honoured";
}

TEST_F(ProduceCommandTest, MissingTopicIsNamed) {
  TempDir dir;
  const std::string feed = dir.File("feed.csv");
  testing::WriteFile(feed, "customer_id,item_id,timestamp\n1,a,2020-01-01\n");
  ProcessResult r = RunProcess({StreamrecBinary(), "produce", "--brokers", cluster_->bootstrap(),
                                "--topic", "no-such-topic", "--input", feed, "--timeout", "1"});
  EXPECT_TRUE(r.exited && r.exit_code == 1) << r.output;
  EXPECT_NE(r.output.find("topic 'no-such-topic' does not exist"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace streamrec
