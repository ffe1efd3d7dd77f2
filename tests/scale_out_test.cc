// Scale-out end to end (issue 9, docs/scale-out.md): three `streamrec run` processes of one
// consumer group share one stream on the embedded Kafka cluster (itself a process of its own),
// with a changelog topic. A and B start; A is SIGKILLed in the middle of the stream; C joins with
// an empty state directory; B leaves gracefully; A comes back. At the end:
//   - every input partition's last owner stored it up to the partition's end, and the union of
//     the instances' states (each partition from its last owner) has the customer-state digest
//     of a single file replay of the same events: nothing lost, nothing counted twice;
//   - every list version the union committed is on the output topic, and no version is there
//     with two contents.
// Every wait is on a condition (a log line, the output topic, the group's committed offsets)
// with a deadline. STREAMREC_SCALE_OUT_EVENTS sets the stream's length (9000).
#include <gtest/gtest.h>
#include <httplib.h>
#include <librdkafka/rdkafkacpp.h>
#include <poll.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "kafka/purchase_producer.h"
#include "streamrec/config.h"
#include "streamrec/generator.h"
#include "streamrec/kmeans_segmenter.h"
#include "streamrec/state_store.h"
#include "streamrec/replay.h"
#include "testutil/output_tail.h"
#include "testutil/state_inspect.h"
#include "testutil/subprocess.h"
#include "testutil/test_util.h"

namespace streamrec {
namespace {

using testing::BackgroundProcess;
using testing::OutputTail;
using testing::ProcessResult;
using testing::TempDir;
using testing::WaitForLog;

constexpr int kPartitions = 6;
constexpr int kStepWaitMs = 60000;
constexpr int kEndWaitMs = 180000;
const char kGroup[] = "scale-out";

// Reads the consumer group's committed input offsets and the input's ends (no group join).
class GroupProgress {
 public:
  explicit GroupProgress(const std::string& brokers) {
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    std::string error;
    conf->set("bootstrap.servers", brokers, error);
    conf->set("group.id", kGroup, error);
    conf->set("enable.auto.commit", "false", error);
    consumer_.reset(RdKafka::KafkaConsumer::create(conf.get(), error));
    EXPECT_NE(consumer_, nullptr) << error;
  }
  ~GroupProgress() {
    if (consumer_ != nullptr) consumer_->close();
  }

  // partition -> input end offset.
  std::map<int32_t, int64_t> Ends() {
    std::map<int32_t, int64_t> ends;
    for (int32_t p = 0; p < kPartitions; ++p) {
      int64_t low = 0, high = -1;
      if (consumer_->query_watermark_offsets("purchases", p, &low, &high, 10000) ==
          RdKafka::ERR_NO_ERROR) {
        ends[p] = high;
      }
    }
    return ends;
  }

  // Waits until the group committed every input partition up to its end (commits follow the
  // store's: each record was applied and stored by the partition's owner). False at the deadline.
  bool WaitCommittedToEnd(int timeout_ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    const std::map<int32_t, int64_t> ends = Ends();
    if (ends.size() != static_cast<size_t>(kPartitions)) return false;
    while (std::chrono::steady_clock::now() < deadline) {
      std::vector<RdKafka::TopicPartition*> tps;
      for (int32_t p = 0; p < kPartitions; ++p) {
        tps.push_back(RdKafka::TopicPartition::create("purchases", p));
      }
      bool done = consumer_->committed(tps, 10000) == RdKafka::ERR_NO_ERROR;
      for (RdKafka::TopicPartition* tp : tps) {
        if (tp->offset() < ends.at(tp->partition())) done = false;
      }
      RdKafka::TopicPartition::destroy(tps);
      if (done) return true;
      ::poll(nullptr, 0, 100);  // the group's commits are read from the broker: ask again shortly
    }
    return false;
  }

 private:
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
};

// The value of the unlabelled sample `name` on the /metrics page of the `streamrec run` process
// whose log is `log` ("metrics: http://127.0.0.1:PORT/metrics"); -1 when it cannot be read.
double ScrapeMetric(const std::string& log, const std::string& name) {
  const std::string marker = "metrics: http://127.0.0.1:";
  const size_t at = log.find(marker);
  if (at == std::string::npos) return -1;
  const int port = std::atoi(log.c_str() + at + marker.size());
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(5);
  client.set_read_timeout(10);
  auto res = client.Get("/metrics");
  if (!res || res->status != 200) return -1;
  std::istringstream in(res->body);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + " ", 0) == 0) return std::strtod(line.c_str() + name.size() + 1, nullptr);
  }
  return -1;
}

// What GET /v1/model of the `streamrec run` process whose log is `log` ("query API:
// http://127.0.0.1:PORT/v1/...") says of its segment model; `read` is false when it cannot be read.
struct ModelState {
  bool read = false;
  uint64_t version = 0;
  bool refit_running = false;
  bool refit_requested = false;
};

ModelState QueryModel(const std::string& log) {
  ModelState state;
  const std::string marker = "query API: http://127.0.0.1:";
  const size_t at = log.find(marker);
  if (at == std::string::npos) return state;
  httplib::Client client("127.0.0.1", std::atoi(log.c_str() + at + marker.size()));
  client.set_connection_timeout(5);
  client.set_read_timeout(10);
  auto res = client.Get("/v1/model");
  if (!res || res->status != 200) return state;
  const std::string& body = res->body;
  const size_t version = body.find("\"version\":");
  if (version == std::string::npos) return state;
  state.version = std::strtoull(body.c_str() + version + 10, nullptr, 10);
  state.refit_running = body.find("\"refit_running\":true") != std::string::npos;
  state.refit_requested = body.find("\"refit_requested\":true") != std::string::npos;
  state.read = true;
  return state;
}

TEST(ScaleOutTest, ThreeProcessesKilledLeavingAndJoiningEndWithOneInstancesState) {
  TempDir dir;
  TelcoGeneratorOptions feed_options;
  // STREAMREC_SCALE_OUT_EVENTS: fewer under the sanitizers (CMakePresets.json, preset asan).
  const char* events_env = std::getenv("STREAMREC_SCALE_OUT_EVENTS");
  feed_options.events =
      events_env != nullptr && *events_env != '\0' ? std::strtoull(events_env, nullptr, 10) : 9000;
  feed_options.customers = feed_options.events / 8;
  feed_options.seed = 23;
  const std::string csv = dir.File("feed.csv");
  const std::string catalog = dir.File("catalog.csv");
  ASSERT_OK(GenerateTelcoFeed(feed_options, csv, catalog));
  size_t undecodable = 0;
  const std::vector<PurchaseEvent> events = testing::ReadCsvEvents(csv, &undecodable);
  ASSERT_EQ(undecodable, 0u);
  ASSERT_EQ(events.size(), feed_options.events);

  const std::string config = dir.File("run.yaml");
  testing::WriteFile(config,
                     "input:\n  format: protobuf\n"
                     "catalog:\n  path: " + catalog + "\n"
                     "pipeline:\n  batch_size: 300\n"
                     "kafka:\n  group_id: " + std::string(kGroup) + "\n"
                     "  changelog_topic: changelog\n  model_topic: models\n"
                     "  item_stats_topic: item-stats\n  sample_topic: samples\n"
                     "  sample_share: 0.5\n  cooccurrence_topic: cooccurrence\n"
                     "  cooccurrence_publish_ms: 200\n  max_batch_ms: 50\n"
                     "  consumer:\n    session.timeout.ms: 6000\n    heartbeat.interval.ms: 500\n"
                     "metrics:\n  listen: \"127.0.0.1:0\"\n"
                     "http:\n  listen: \"127.0.0.1:0\"\n");
  // The cluster, in a process of its own, with the topics of `config` (the changelog among them).
  BackgroundProcess cluster({testing::StreamrecBinary(), "mock-kafka", "--port", "0", "--brokers",
                             "1", "--partitions", std::to_string(kPartitions), "--config", config});
  ASSERT_TRUE(WaitForLog(cluster, "\n", 30000)) << cluster.Output();
  const std::string output = cluster.Output();
  const std::string bootstrap = output.substr(0, output.find('\n'));
  ASSERT_EQ(bootstrap.rfind("127.0.0.1:", 0), 0u) << output;

  OutputTail tail(bootstrap, "recommendations", kPartitions, "scale-out-tail");
  auto producer = PurchaseProducer::Create(bootstrap, "purchases");
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  size_t produced = 0;
  auto produce_up_to = [&](size_t end) {
    for (; produced < end; ++produced) ASSERT_OK((*producer)->Produce(events[produced]));
    ASSERT_OK((*producer)->Flush(60000));
  };
  auto start = [&](const std::string& name) {
    return std::make_unique<BackgroundProcess>(
        std::vector<std::string>{testing::StreamrecBinary(), "run", "--config", config,
                                 "--state-dir", dir.File(name)},
        std::map<std::string, std::string>{{"STREAMREC_KAFKA__BROKERS", bootstrap}});
  };
  const size_t quarter = events.size() / 4;

  // A and B share the stream.
  auto a = start("a");
  auto b = start("b");
  ASSERT_TRUE(WaitForLog(*a, "assignment: +[", kStepWaitMs)) << a->Output();
  ASSERT_TRUE(WaitForLog(*b, "assignment: +[", kStepWaitMs)) << b->Output();
  ASSERT_NO_FATAL_FAILURE(produce_up_to(quarter));
  ASSERT_TRUE(tail.WaitForRecords(1, kStepWaitMs));

  // A is killed in the middle of the second quarter.
  ASSERT_NO_FATAL_FAILURE(produce_up_to(2 * quarter));
  ASSERT_TRUE(tail.WaitForRecords(tail.records() + 100, kStepWaitMs));
  a->Signal(SIGKILL);
  ProcessResult killed = a->Wait();
  const std::string first_a_output = killed.output;
  ASSERT_TRUE(killed.signaled && killed.signal == SIGKILL) << killed.output;

  // C joins with an empty state directory: what it takes over comes from the changelog.
  auto c = start("c");
  ASSERT_TRUE(WaitForLog(*c, " restored: ", kStepWaitMs))
      << c->Output() << "\nA (killed):\n" << first_a_output;
  ASSERT_NO_FATAL_FAILURE(produce_up_to(3 * quarter));
  ASSERT_TRUE(tail.WaitForRecords(tail.records() + 100, kStepWaitMs));

  // B leaves gracefully.
  b->Signal(SIGTERM);
  ProcessResult left = b->Wait();
  ASSERT_TRUE(left.exited && left.exit_code == 0) << left.output;

  // A comes back: the partitions it gets were written by others since it died.
  a = start("a");
  ASSERT_TRUE(WaitForLog(*a, " restored: ", kStepWaitMs)) << a->Output();
  ASSERT_NO_FATAL_FAILURE(produce_up_to(events.size()));

  GroupProgress progress(bootstrap);
  const std::map<int32_t, int64_t> ends = progress.Ends();
  ASSERT_TRUE(progress.WaitCommittedToEnd(kEndWaitMs))
      << "the group never committed the whole input\nA:\n" << a->Output() << "\nC:\n"
      << c->Output();
  // A background segment re-fit that ends after the input is consumed is still installed,
  // stored and published (KMeansSegmenter::UpdateModelIdle), and one that became due meanwhile
  // starts in the same step: wait until neither instance fits or is asked to, and both use the
  // same version, before reading which version is the newest.
  ModelState model_a, model_c;
  const auto settle_deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(kEndWaitMs);
  while (std::chrono::steady_clock::now() < settle_deadline) {
    model_a = QueryModel(a->Output());
    model_c = QueryModel(c->Output());
    if (model_a.read && model_c.read && !model_a.refit_running && !model_a.refit_requested &&
        !model_c.refit_running && !model_c.refit_requested &&
        model_a.version == model_c.version) {
      break;
    }
    ::poll(nullptr, 0, 100);  // the model's state is refreshed every 10 ms: ask again shortly
  }
  ASSERT_TRUE(model_a.read && model_c.read) << "GET /v1/model failed\nA:\n" << a->Output()
                                             << "\nC:\n" << c->Output();
  ASSERT_FALSE(model_a.refit_running || model_a.refit_requested || model_c.refit_running ||
               model_c.refit_requested || model_a.version != model_c.version)
      << "the segment model never settled: A v" << model_a.version << " C v" << model_c.version
      << "\nA:\n" << a->Output() << "\nC:\n" << c->Output();
  // The newest segment model version published (by whichever instance owned partition 0), and
  // both running instances using it: the owner fitted it, the other adopted it.
  uint64_t newest = 0;
  for (const std::string& log : {b->Output(), a->Output(), c->Output(), first_a_output}) {
    for (size_t at = log.find("segment model v"); at != std::string::npos;
         at = log.find("segment model v", at + 1)) {
      const size_t end = log.find(' ', at + 15);
      if (log.compare(end, 10, " published") == 0) {
        newest = std::max<uint64_t>(newest, std::stoull(log.substr(at + 15, end - at - 15)));
      }
    }
  }
  ASSERT_GT(newest, 0u) << "no segment model was published";
  const std::string v = "segment model v" + std::to_string(newest) + " ";
  for (BackgroundProcess* p : {a.get(), c.get()}) {
    EXPECT_TRUE(WaitForLog(*p, v + "published", 1) || WaitForLog(*p, v + "adopted", kStepWaitMs))
        << "an instance never used v" << newest << "\n" << p->Output();
  }
  // Both count every purchase of the stream in their item statistics: their own partitions'
  // from their stores, the other's from the item-stats topic.
  // And each holds samples of the other's customers for the shared segment fit.
  double purchases_a = -1, purchases_c = -1, samples_a = -1, samples_c = -1;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kStepWaitMs);
  while (std::chrono::steady_clock::now() < deadline) {
    purchases_a = ScrapeMetric(a->Output(), "streamrec_item_stats_purchases");
    purchases_c = ScrapeMetric(c->Output(), "streamrec_item_stats_purchases");
    samples_a = ScrapeMetric(a->Output(), "streamrec_fit_samples_remote");
    samples_c = ScrapeMetric(c->Output(), "streamrec_fit_samples_remote");
    if (purchases_a == events.size() && purchases_c == events.size() && samples_a > 0 &&
        samples_c > 0) {
      break;
    }
    ::poll(nullptr, 0, 100);  // gauges are refreshed once a second: ask again shortly
  }
  EXPECT_EQ(purchases_a, events.size()) << "A's item statistics";
  EXPECT_EQ(purchases_c, events.size()) << "C's item statistics";
  EXPECT_GT(samples_a, 0) << "A holds no sample of C's customers";
  EXPECT_GT(samples_c, 0) << "C holds no sample of A's customers";
  a->Signal(SIGTERM);
  c->Signal(SIGTERM);
  for (BackgroundProcess* p : {a.get(), c.get()}) {
    ProcessResult r = p->Wait();
    EXPECT_TRUE(r.exited && r.exit_code == 0) << r.output;
  }
  ASSERT_TRUE(tail.FinishAtEnd(60000)) << "the output topic was not read to its end";

  // The union of the three states, each partition from its last owner.
  const testing::UnionOfStates all = testing::ReadUnionOfStates(
      {dir.File("a"), dir.File("b"), dir.File("c")}, "kafka:purchases", kPartitions);
  ASSERT_EQ(all.owner.size(), static_cast<size_t>(kPartitions));
  for (const auto& [p, end] : ends) {
    EXPECT_EQ(all.next_offset.at(static_cast<uint32_t>(p)), static_cast<uint64_t>(end))
        << "partition " << p << " (last owner " << all.owner.at(static_cast<uint32_t>(p)) << ")";
  }

  // One instance over the same events: a file replay with the same configuration.
  ReplayOptions reference;
  auto loaded = LoadConfig(config, Environment());
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  reference.config = *loaded;
  reference.config.input.format = "csv";
  reference.config.kafka.changelog_topic = "";
  reference.config.state.path = dir.File("reference");
  reference.input_path = csv;
  auto summary = RunReplay(reference, SystemClock());
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(all.digest, summary->state_digest);
  // The instances running at the end stored the same segment model version.
  for (const char* name : {"a", "c"}) {
    StoreOptions store_options;
    store_options.path = dir.File(name);
    auto store = OpenRocksStateStore(store_options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto model = LoadStoredModel(store->get());
    ASSERT_TRUE(model.ok()) << name << ": " << model.status().ToString();
    EXPECT_EQ(model->version(), newest) << "instance " << name;
  }

  uint64_t committed = 0, missing = 0;
  for (const auto& [customer, version] : all.list_versions) {
    committed += version;
    for (uint64_t v = 1; v <= version; ++v) {
      if (tail.contents().count({customer, v}) == 0) ++missing;
    }
  }
  std::printf("scale-out: %zu events, %llu committed list versions, %llu output records, "
              "segment model v%llu and %.0f purchases in the item statistics of both running "
              "instances\n",
              events.size(), static_cast<unsigned long long>(committed),
              static_cast<unsigned long long>(tail.records()),
              static_cast<unsigned long long>(newest), purchases_c);
  EXPECT_GT(committed, 0u);
  EXPECT_EQ(missing, 0u) << "committed list versions not on the output topic";
  EXPECT_EQ(tail.conflicts(), 0u) << "a version published with two contents";
  EXPECT_EQ(tail.undecodable(), 0u);
  cluster.Signal(SIGTERM);
}

}  // namespace
}  // namespace streamrec
