// The Kafka service on librdkafka's embedded mock cluster (127.0.0.1 only): end to end with
// dead letters, a crash and restart, a rebalance, and a broker outage. The reference for every
// run is a file replay of the same events: the customer-state digest is independent of
// partitioning and batch cuts, so a correct service run must reproduce it exactly.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <librdkafka/rdkafkacpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <sstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "file_io.h"
#include "kafka/changelog_restore.h"
#include "kafka/standby.h"
#include "streamrec/changelog.h"
#include "kafka/mock_cluster.h"
#include "kafka/purchase_producer.h"
#include "streamrec/decoder.h"
#include "streamrec/features.h"
#include "streamrec/generator.h"
#include "streamrec/pseudonym.h"
#include "streamrec/replay.h"
#include "streamrec/service.h"
#include "streamrec/state_store.h"
#include "streamrec/v1/events.pb.h"
#include "testutil/deploy_files.h"
#include "testutil/kafka_reader.h"
#include "testutil/state_inspect.h"
#include "testutil/subprocess.h"
#include "testutil/test_util.h"

namespace streamrec {
namespace {

using testing::DigestOf;
using testing::StoredListVersions;
using testing::TempDir;

constexpr int kPartitions = 6;
constexpr int kWaitMs = 60000;

struct Feed {
  std::string csv;
  std::string catalog;
  std::vector<PurchaseEvent> events;
};

Feed MakeFeed(const TempDir& dir, uint64_t events, uint64_t customers) {
  Feed feed;
  feed.csv = dir.File("feed.csv");
  feed.catalog = dir.File("catalog.csv");
  TelcoGeneratorOptions options;
  options.events = events;
  options.customers = customers;
  options.seed = 7;
  EXPECT_OK(GenerateTelcoFeed(options, feed.csv, feed.catalog));
  size_t undecodable = 0;
  feed.events = testing::ReadCsvEvents(feed.csv, &undecodable);
  EXPECT_EQ(undecodable, 0u) << "the generator writes only valid lines";
  return feed;
}

// The digest a file replay of the feed gives.
std::string ReferenceDigest(const TempDir& dir, const Feed& feed) {
  ReplayOptions options;
  options.config.state.path = dir.File("reference-state");
  options.config.catalog_path = feed.catalog;
  options.input_path = feed.csv;
  auto summary = RunReplay(options, SystemClock());
  EXPECT_TRUE(summary.ok()) << summary.status().ToString();
  return summary.ok() ? summary->state_digest : "";
}

struct Consumed {
  int32_t partition = -1;
  std::string key;
  std::string value;
  std::map<std::string, std::string> headers;
};

// Reads `topic` from the beginning until `done(records so far)` holds or the deadline passed.
std::vector<Consumed> ReadTopicUntil(const std::string& brokers, const std::string& topic,
                                     const std::function<bool(const std::vector<Consumed>&)>& done) {
  static int readers = 0;
  const size_t count = static_cast<size_t>(++readers);
  auto consumer = testing::NewTopicReader(brokers, topic, kPartitions,
                                          "reader-" + topic + "-" + std::to_string(count));
  if (consumer == nullptr) return {};
  std::vector<Consumed> out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kWaitMs);
  while (!done(out) && std::chrono::steady_clock::now() < deadline) {
    std::unique_ptr<RdKafka::Message> m(consumer->consume(200));
    if (m->err() != RdKafka::ERR_NO_ERROR) continue;
    Consumed c;
    c.partition = m->partition();
    if (m->key()) c.key = *m->key();
    c.value.assign(static_cast<const char*>(m->payload()), m->len());
    if (m->headers()) {
      for (const auto& h : m->headers()->get_all()) {
        c.headers[h.key()] = std::string(static_cast<const char*>(h.value()), h.value_size());
      }
    }
    out.push_back(std::move(c));
  }
  // Anything beyond `count` would be a duplicate or a surprise: take what is there now.
  for (int i = 0; i < 5; ++i) {
    std::unique_ptr<RdKafka::Message> m(consumer->consume(100));
    if (m->err() != RdKafka::ERR_NO_ERROR) continue;
    Consumed c;
    c.partition = m->partition();
    if (m->key()) c.key = *m->key();
    c.value.assign(static_cast<const char*>(m->payload()), m->len());
    out.push_back(std::move(c));
  }
  consumer->close();
  return out;
}

// Reads `topic` until `count` records arrived (or the deadline passed).
std::vector<Consumed> ReadTopic(const std::string& brokers, const std::string& topic, size_t count) {
  return ReadTopicUntil(brokers, topic, [count](const std::vector<Consumed>& r) { return r.size() >= count; });
}

// A service running Run on a thread of its own until Stop (or destruction).
class Running {
 public:
  explicit Running(ServiceOptions options) {
    auto created = Service::Create(std::move(options));
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    if (!created.ok()) return;
    service_ = std::move(created).value();
    thread_ = std::thread([this] { status_ = service_->Run(stop_); });
  }
  ~Running() { Reset(); }
  bool ok() const { return service_ != nullptr; }
  Service* operator->() const { return service_.get(); }
  Service* get() const { return service_.get(); }
  void RequestStop() { stop_.store(true); }
  // Stops the run (a graceful leave) and returns its status; the stats stay readable.
  Status Stop() {
    RequestStop();
    if (thread_.joinable()) thread_.join();
    return status_;
  }
  // Stops and destroys the service (its store is closed). The run must have ended well.
  void Reset() {
    EXPECT_OK(Stop());
    service_.reset();
  }

 private:
  std::unique_ptr<Service> service_;
  std::atomic<bool> stop_{false};
  Status status_;
  std::thread thread_;
};

class KafkaServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = MockKafkaCluster::Start(3);
    ASSERT_TRUE(cluster.ok()) << cluster.status().ToString();
    cluster_ = std::move(cluster).value();
    for (const char* topic : {"purchases", "recommendations", "purchases-dlq", "segment-changes"}) {
      ASSERT_OK(cluster_->CreateTopic(topic, kPartitions));
    }
  }

  // `changelog_topic`: kafka.changelog_topic (empty: none).
  ServiceOptions Options(const std::string& state_dir, const std::string& group,
                         const Feed& feed, const std::string& changelog_topic = "") {
    ServiceOptions o;
    o.config.kafka.changelog_topic = changelog_topic;
    o.config.kafka.brokers = cluster_->bootstrap();
    o.config.kafka.group_id = group;
    o.config.input.format = "protobuf";
    o.config.state.path = state_dir;
    o.config.catalog_path = feed.catalog;
    o.config.pipeline.batch_size = 300;
    o.config.kafka.max_batch_ms = 50;
    // Metrics and the query API on free loopback ports: every service test exercises them.
    o.config.metrics.listen = "127.0.0.1:0";
    o.config.http.listen = "127.0.0.1:0";
    // The mock coordinator completes a rebalance when every member has rejoined or its session
    // expired: short sessions keep group changes to seconds.
    o.config.kafka.consumer["session.timeout.ms"] = "6000";
    o.config.kafka.consumer["heartbeat.interval.ms"] = "500";
    o.logger = std::getenv("STREAMREC_TEST_LOG") ? NewStderrLogger(LogLevel::kDebug) : NewNullLogger();
    return o;
  }

  void Produce(const std::vector<PurchaseEvent>& events, size_t from, size_t to) {
    auto producer = PurchaseProducer::Create(cluster_->bootstrap(), "purchases");
    ASSERT_TRUE(producer.ok());
    for (size_t i = from; i < to; ++i) ASSERT_OK((*producer)->Produce(events[i]));
    ASSERT_OK((*producer)->Flush(kWaitMs));
  }

  // Every list version committed to the state at `state_dir` is on the output topic, and no
  // version is there with two contents. Publication is at least once (a record delivered just
  // before a crash may be published again), so distinct (customer, version) pairs are counted.
  void ExpectCommittedVersionsPublishedOnce(const std::string& state_dir) {
    auto stored = StoredListVersions(state_dir);
    uint64_t expected = 0;
    for (const auto& [c, v] : stored) expected += v;
    std::vector<Consumed> lists = ReadTopicUntil(
        cluster_->bootstrap(), "recommendations",
        [expected, distinct = std::set<std::pair<std::string, uint64_t>>(),
         seen = size_t{0}](const std::vector<Consumed>& r) mutable {
          for (; seen < r.size(); ++seen) {
            v1::RecommendationList list;
            if (list.ParseFromString(r[seen].value)) distinct.emplace(list.customer_id(), list.version());
          }
          return distinct.size() >= expected;
        });
    std::map<std::pair<std::string, uint64_t>, std::string> content;
    for (const Consumed& c : lists) {
      v1::RecommendationList list;
      ASSERT_TRUE(list.ParseFromString(c.value));
      auto [it, inserted] = content.emplace(std::make_pair(list.customer_id(), list.version()), c.value);
      if (!inserted) {
        EXPECT_EQ(it->second, c.value) << "version published with two contents";
      }
    }
    for (const auto& [customer, v] : stored) {
      for (uint64_t i = 1; i <= v; ++i) EXPECT_TRUE(content.count({customer, i})) << customer << " v" << i;
    }
  }

  // Runs a service with `options` until `applied` records are in its state and its output is
  // delivered (calling `meanwhile` once it runs), stops it cleanly and returns its stats.
  ServiceStats RunUntilApplied(ServiceOptions options, uint64_t applied,
                               const std::function<void(Service*)>& meanwhile = nullptr) {
    auto service = Service::Create(std::move(options));
    EXPECT_TRUE(service.ok()) << service.status().ToString();
    if (!service.ok()) return {};
    std::atomic<bool> stop{false};
    Status run_status;
    std::thread runner([&] { run_status = (*service)->Run(stop); });
    if (meanwhile) meanwhile(service->get());
    EXPECT_TRUE(WaitDone(service->get(), applied));
    stop.store(true);
    // A Run that does not return (one such hang was seen once under ASan with 3 tests in
    // parallel, test killed after 600 s without output) says where it stands first, on stderr
    // (unbuffered: ctest keeps it when it kills the test).
    if (!(*service)->WaitFor([](const ServiceStats& st) { return !st.running; }, kWaitMs)) {
      const ServiceStats st = (*service)->stats();
      std::fprintf(stderr,
                   "RunUntilApplied: Run has not returned %d ms after the stop: ready %d, "
                   "applied %llu of %llu, restored partitions %llu, in flight %llu, "
                   "assigned %zu\n",
                   kWaitMs, st.ready, static_cast<unsigned long long>(st.applied),
                   static_cast<unsigned long long>(applied),
                   static_cast<unsigned long long>(st.restored_partitions),
                   static_cast<unsigned long long>(st.in_flight), st.assigned.size());
    }
    runner.join();
    EXPECT_OK(run_status);
    return (*service)->stats();
  }

  // Waits until `applied` records are in the state and every outbox record is delivered.
  // `service`, just started alone in its group, takes every partition and applies the feed's
  // first `n` events.
  void ApplyAlone(Running& service, const Feed& feed, size_t n) {
    ASSERT_TRUE(service->WaitFor(
        [](const ServiceStats& s) { return s.assigned.size() == kPartitions; }, kWaitMs));
    ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 0, n));
    ASSERT_TRUE(WaitDone(service.get(), n));
  }

  // A applies the first half of the feed alone; then B starts (made here from `b_options`),
  // takes some partitions over once it is ready, and the second half is produced for both.
  void SecondJoinsHalfWay(Running& a, std::optional<Running>& b, ServiceOptions b_options,
                          const Feed& feed) {
    const size_t n = feed.events.size();
    ASSERT_NO_FATAL_FAILURE(ApplyAlone(a, feed, n / 2));
    b.emplace(std::move(b_options));
    ASSERT_TRUE(b->ok());
    ASSERT_TRUE((*b)->WaitFor(
        [](const ServiceStats& s) { return s.ready && !s.assigned.empty(); }, kWaitMs));
    ASSERT_NO_FATAL_FAILURE(Produce(feed.events, n / 2, n));
  }

  static bool WaitDone(Service* service, uint64_t applied) {
    return service->WaitFor(
        [&](const ServiceStats& s) {
          return s.applied >= applied && s.in_flight == 0 && s.delivered >= s.outbox_written;
        },
        kWaitMs);
  }

  std::unique_ptr<MockKafkaCluster> cluster_;
};

// GET http://127.0.0.1:port/path: status (-1 when nothing answered) and body.
int HttpGet(int port, const std::string& path, std::string* body) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(5);
  client.set_read_timeout(10);
  auto res = client.Get(path.c_str());
  if (!res) return -1;
  *body = res->body;
  return res->status;
}

// Metric names present on a /metrics page: sample names, with a histogram's _bucket, _sum and
// _count series counted under the histogram's name.
std::set<std::string> ExportedMetricNames(const std::string& text) {
  std::set<std::string> histograms, names;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# TYPE ", 0) == 0 && line.size() > 10 &&
        line.compare(line.size() - 10, 10, " histogram") == 0) {
      histograms.insert(line.substr(7, line.size() - 17));
    }
    if (line.empty() || line[0] == '#') continue;
    std::string name = line.substr(0, line.find_first_of("{ "));
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s(suffix);
      if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0 &&
          histograms.count(name.substr(0, name.size() - s.size())) > 0) {
        name.resize(name.size() - s.size());
      }
    }
    names.insert(name);
  }
  return names;
}

// The sum of every sample of `name` (any labels) on a /metrics page; -1 when there is none.
double MetricSum(const std::string& text, const std::string& name) {
  double sum = 0;
  bool found = false;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name, 0) != 0 || line.size() <= name.size()) continue;
    if (line[name.size()] != ' ' && line[name.size()] != '{') continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
    found = true;
  }
  return found ? sum : -1;
}

// A free TCP port on 127.0.0.1 (for a server that cannot be told to pick one itself).
int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

// Polls `check` until it holds or `timeout_ms` passes (each call does real I/O, so no sleep).
bool PollUntil(const std::function<bool()>& check, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (check()) return true;
    std::this_thread::yield();
  }
  return check();
}

// A running service seen the way its operators see it: every metric the Grafana dashboards and
// the alert rules query is on /metrics with the right figures, the query API answers from the
// live state, POST /v1/refit re-fits, and a real Prometheus server scrapes it.
TEST_F(KafkaServiceTest, MetricsQueryApiAndPrometheusOnALiveService) {
  TempDir dir;
  Feed feed = MakeFeed(dir, 3000, 300);
  ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 0, 2500));
  auto producer = PurchaseProducer::Create(cluster_->bootstrap(), "purchases");
  ASSERT_TRUE(producer.ok());
  ASSERT_OK((*producer)->ProduceRaw("k1", std::string("\xff\xff\xff\x01garbage", 11)));
  ASSERT_OK((*producer)->Flush(kWaitMs));
  ServiceOptions options = Options(dir.File("state"), "ops", feed);
  options.config.kafka.statistics_interval_ms = 200;
  options.config.metrics.segment_scan_interval_s = 1;
  options.config.http.refit_token = "t0ken";
  auto service = Service::Create(std::move(options));
  ASSERT_TRUE(service.ok()) << service.status().ToString();
  std::atomic<bool> stop{false};
  Status run_status;
  std::thread runner([&] { run_status = (*service)->Run(stop); });
  EXPECT_TRUE(WaitDone(service->get(), 2501));
  const ServiceStats stats = (*service)->stats();
  ASSERT_GT(stats.metrics_port, 0);
  ASSERT_GT(stats.http_port, 0);

  std::set<std::string> first_customers;
  for (size_t i = 0; i < 2500; ++i) first_customers.insert(feed.events[i].customer_id);
  const double customers = static_cast<double>(first_customers.size());
  std::string body;
  ASSERT_EQ(HttpGet(stats.http_port, "/healthz", &body), 200) << body;  // counted on /metrics

  // 1. Every name the deployment queries is exported (the segment scan and the consumer lag
  //    arrive within a second or two of the batches).
  const std::set<std::string> wanted = testing::DeployMetricNames(STREAMREC_SOURCE_DIR);
  ASSERT_GT(wanted.size(), 30u);
  std::string text;
  std::set<std::string> missing;
  PollUntil([&] {
    if (HttpGet(stats.metrics_port, "/metrics", &text) != 200) return false;
    const std::set<std::string> exported = ExportedMetricNames(text);
    missing.clear();
    for (const std::string& name : wanted) {
      if (exported.count(name) == 0) missing.insert(name);
    }
    // Gauges are refreshed once a second: wait for the figures of the finished run.
    return missing.empty() && MetricSum(text, "streamrec_segment_customers") == customers &&
           MetricSum(text, "streamrec_outbox_pending_records") == 0 &&
           MetricSum(text, "streamrec_consumer_lag_messages") == 0;
  }, kWaitMs);
  std::string names;
  for (const std::string& m : missing) names += " " + m;
  EXPECT_TRUE(missing.empty()) << "used by deploy/ but not exported:" << names;
  EXPECT_EQ(MetricSum(text, "streamrec_events_consumed_total"), 2501);
  EXPECT_EQ(MetricSum(text, "streamrec_events_applied_total"), 2500);
  EXPECT_EQ(MetricSum(text, "streamrec_dead_letters_total"), 1);
  EXPECT_EQ(MetricSum(text, "streamrec_invalid_events_total"), 1);
  EXPECT_EQ(MetricSum(text, "streamrec_lists_published_total"), stats.lists_published);
  EXPECT_EQ(MetricSum(text, "streamrec_output_records_total"), stats.delivered);
  EXPECT_EQ(MetricSum(text, "streamrec_outbox_pending_records"), 0);
  EXPECT_EQ(MetricSum(text, "streamrec_segment_customers"), customers);
  EXPECT_EQ(MetricSum(text, "streamrec_consumer_lag_messages"), 0);
  EXPECT_EQ(MetricSum(text, "streamrec_assigned_partitions"), kPartitions);
  EXPECT_EQ(MetricSum(text, "streamrec_ready"), 1);
  EXPECT_GT(MetricSum(text, "streamrec_purchases_total"), 0);
  EXPECT_GE(MetricSum(text, "streamrec_purchases_total"), MetricSum(text, "streamrec_conversions_total"));
  EXPECT_GT(MetricSum(text, "streamrec_purchase_to_publish_seconds_count"), 0);
  // The same way cut earlier: every input record at the consumer, every list at its write (all
  // of them delivered by now, each once).
  EXPECT_GE(MetricSum(text, "streamrec_purchase_to_consume_seconds_count"), 2501);
  EXPECT_EQ(MetricSum(text, "streamrec_purchase_to_commit_seconds_count"),
            MetricSum(text, "streamrec_purchase_to_publish_seconds_count"));
  EXPECT_EQ(text.find("customer_id"), std::string::npos) << "labels never carry customer ids";

  // 2. The query API on the live state.
  const std::string& customer = feed.events[0].customer_id;
  ASSERT_EQ(HttpGet(stats.http_port, "/v1/customers/" + customer, &body), 200) << body;
  for (const char* field : {"\"segment\":", "\"rfm\":", "\"features\":", "\"group\":",
                            "\"list\":{\"version\":", "\"reason\":", "\"strategy\":"}) {
    EXPECT_NE(body.find(field), std::string::npos) << field << " in " << body;
  }
  EXPECT_EQ(HttpGet(stats.http_port, "/v1/customers/nobody-at-all", &body), 404);
  EXPECT_EQ(HttpGet(stats.http_port, "/v1/segments", &body), 200);
  EXPECT_NE(body.find("\"customers\":" + std::to_string(first_customers.size()) + ","),
            std::string::npos) << body;
  EXPECT_EQ(HttpGet(stats.http_port, "/v1/model", &body), 200);
  EXPECT_NE(body.find("\"centres\":[{"), std::string::npos) << body;
  EXPECT_EQ(HttpGet(stats.http_port, "/readyz", &body), 200) << body;
  EXPECT_EQ(HttpGet(stats.http_port, "/healthz", &body), 200) << body;

  // 3. POST /v1/refit: refused without the token; with it, the next batch re-fits.
  httplib::Client api("127.0.0.1", stats.http_port);
  auto refused = api.Post("/v1/refit", "", "application/json");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 401);
  ASSERT_EQ(HttpGet(stats.http_port, "/v1/model", &body), 200);
  const std::string before = body.substr(body.find("\"version\":"), 14);
  auto accepted = api.Post("/v1/refit", {{"Authorization", "Bearer t0ken"}}, "", "application/json");
  ASSERT_TRUE(accepted);
  EXPECT_EQ(accepted->status, 202) << accepted->body;
  ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 2500, 3000));
  EXPECT_TRUE(WaitDone(service->get(), 3001));
  EXPECT_TRUE(PollUntil([&] {
    return HttpGet(stats.http_port, "/v1/model", &body) == 200 &&
           body.find("\"refit_requested\":false") != std::string::npos &&
           body.substr(body.find("\"version\":"), 14) != before;
  }, kWaitMs)) << before << " -> " << body;

  // 4. A real Prometheus server scrapes it.
  const int prometheus_port = FreeLoopbackPort();
  ASSERT_GT(prometheus_port, 0);
  testing::WriteFile(dir.File("prometheus.yml"),
                     "global:\n  scrape_interval: 1s\n"
                     "scrape_configs:\n  - job_name: streamrec\n    static_configs:\n"
                     "      - targets: ['127.0.0.1:" + std::to_string(stats.metrics_port) + "']\n");
  testing::BackgroundProcess prometheus(
      {"/usr/bin/prometheus", "--config.file=" + dir.File("prometheus.yml"),
       "--storage.tsdb.path=" + dir.File("prometheus-data"),
       "--web.listen-address=127.0.0.1:" + std::to_string(prometheus_port)});
  std::string answer;
  const bool scraped = PollUntil([&] {
    return HttpGet(prometheus_port, "/api/v1/query?query=streamrec_events_consumed_total",
                   &answer) == 200 &&
           answer.find("\"value\":[") != std::string::npos;
  }, kWaitMs);
  EXPECT_TRUE(scraped) << answer << "\n" << prometheus.Output();
  EXPECT_NE(answer.find("\"3001\"]"), std::string::npos) << answer;
  EXPECT_NE(answer.find("\"job\":\"streamrec\""), std::string::npos) << answer;
  // EXPECT, not ASSERT: a return here would leave the service thread unjoined (terminate).
  EXPECT_EQ(HttpGet(prometheus_port, "/api/v1/query?query=up%7Bjob%3D%22streamrec%22%7D", &answer), 200);
  EXPECT_NE(answer.find("\"1\"]"), std::string::npos) << answer;

  stop.store(true);
  runner.join();
  ASSERT_OK(run_status);
}

TEST_F(KafkaServiceTest, EndToEndWithDeadLetters) {
  TempDir dir;
  Feed feed = MakeFeed(dir, 3000, 300);
  ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 0, feed.events.size()));
  // Malformed records: not protobuf, JSON, no customer, negative quantity, year 2300.
  auto producer = PurchaseProducer::Create(cluster_->bootstrap(), "purchases");
  ASSERT_TRUE(producer.ok());
  ASSERT_OK((*producer)->ProduceRaw("k1", std::string("\xff\xff\xff\x01garbage", 11)));
  ASSERT_OK((*producer)->ProduceRaw("k2", R"({"customer_id":"c1"})"));
  PurchaseEvent bad = feed.events[0];
  bad.customer_id = "";
  ASSERT_OK((*producer)->Produce(bad));
  bad = feed.events[1];
  bad.quantity = -2;
  ASSERT_OK((*producer)->Produce(bad));
  bad = feed.events[2];
  bad.event_time_ms = 10413792000000;  // 2300-01-01
  ASSERT_OK((*producer)->Produce(bad));
  ASSERT_OK((*producer)->Flush(kWaitMs));
  const uint64_t total = feed.events.size() + 5;

  auto service = Service::Create(Options(dir.File("state"), "e2e", feed));
  ASSERT_TRUE(service.ok()) << service.status().ToString();
  std::atomic<bool> stop{false};
  Status run_status;
  std::thread runner([&] { run_status = (*service)->Run(stop); });
  EXPECT_TRUE(WaitDone(service->get(), total));
  stop.store(true);
  runner.join();
  ASSERT_OK(run_status);
  ServiceStats stats = (*service)->stats();
  EXPECT_EQ(stats.events, feed.events.size());
  EXPECT_EQ(stats.invalid, 5u);
  uint64_t by_reason = 0;
  for (const auto& [reason, n] : stats.invalid_by_reason) by_reason += n;
  EXPECT_EQ(by_reason, 5u);
  EXPECT_GE(stats.invalid_by_reason.size(), 4u) << "counted by reason";
  EXPECT_EQ(stats.assigned.size(), 0u) << "closed cleanly";
  service->reset();

  EXPECT_EQ(DigestOf(dir.File("state")), ReferenceDigest(dir, feed));

  // Recommendations: one record per published list, protobuf, keyed by customer, with headers,
  // and versions 1..V of every customer present.
  std::vector<Consumed> lists = ReadTopic(cluster_->bootstrap(), "recommendations", stats.lists_published);
  EXPECT_EQ(lists.size(), stats.lists_published);
  std::map<std::string, std::set<uint64_t>> versions;
  for (Consumed& c : lists) {
    v1::RecommendationList list;
    ASSERT_TRUE(list.ParseFromString(c.value));
    EXPECT_EQ(c.key, list.customer_id());
    EXPECT_EQ(list.items_size(), 10);
    EXPECT_NE(c.headers["content-type"].find("RecommendationList"), std::string::npos);
    EXPECT_EQ(c.headers["schema-version"], "1");
    EXPECT_EQ(c.headers["model-version"], std::to_string(list.model_version()));
    versions[list.customer_id()].insert(list.version());
  }
  for (const auto& [customer, v] : StoredListVersions(dir.File("state"))) {
    EXPECT_EQ(versions[customer].size(), v) << customer;
  }

  // Dead letters: the original payloads, with the reason and where they came from.
  std::vector<Consumed> dead = ReadTopic(cluster_->bootstrap(), "purchases-dlq", 5);
  ASSERT_EQ(dead.size(), 5u);
  std::set<std::string> reasons;
  for (Consumed& c : dead) {
    EXPECT_EQ(c.headers["source-topic"], "kafka:purchases");
    EXPECT_FALSE(c.headers["source-partition"].empty());
    EXPECT_FALSE(c.headers["source-offset"].empty());
    reasons.insert(c.headers["error"]);
  }
  std::string all;
  for (const auto& r : reasons) all += r + "\n";
  EXPECT_NE(all.find("not a valid streamrec.v1.PurchaseEvent"), std::string::npos) << all;
  EXPECT_NE(all.find("customer_id"), std::string::npos) << all;
  EXPECT_NE(all.find("quantity"), std::string::npos) << all;
  EXPECT_NE(all.find("2300"), std::string::npos) << all;
  bool original_kept = false;
  for (const Consumed& c : dead) original_kept |= c.value == R"({"customer_id":"c1"})" && c.key == "k2";
  EXPECT_TRUE(original_kept);
}

// Every partition's state, restored from the changelog topic into an empty store, equals what
// the service stored: the same customer-state digest and the same positions.
TEST_F(KafkaServiceTest, ChangelogRestoresEveryPartitionToTheStoredState) {
  ASSERT_OK(cluster_->CreateTopic("state-changelog", kPartitions));
  TempDir dir;
  Feed feed = MakeFeed(dir, 4000, 400);
  ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 0, feed.events.size()));
  ServiceOptions options = Options(dir.File("state"), "changelog", feed, "state-changelog");
  RunUntilApplied(options, feed.events.size());

  StoreOptions stored_options;
  stored_options.path = dir.File("state");
  ASSERT_OK_AND_ASSIGN(stored, OpenRocksStateStore(stored_options));
  StoreOptions restored_options;
  restored_options.path = dir.File("restored");
  ASSERT_OK_AND_ASSIGN(restored, OpenRocksStateStore(restored_options));
  uint64_t records = 0;
  double seconds = 0;
  for (uint32_t p = 0; p < kPartitions; ++p) {
    ChangelogRestoreOptions restore;
    restore.source_name = "kafka:purchases";
    restore.partition = p;
    uint64_t progress_calls = 0;
    restore.progress = [&](uint64_t read, uint64_t total) {
      ++progress_calls;
      EXPECT_LE(read, total);
    };
    ASSERT_OK_AND_ASSIGN(stats, RestoreFromChangelog(options.config.kafka, restore, restored.get()));
    EXPECT_TRUE(stats.restored) << "partition " << p;
    EXPECT_GT(stats.states, 0u) << "partition " << p;
    EXPECT_GT(stats.lists, 0u) << "partition " << p;
    EXPECT_GT(stats.positions, 0u) << "partition " << p;
    EXPECT_GT(progress_calls, 0u);
    records += stats.records;
    seconds += stats.seconds;
    std::string value;
    ASSERT_OK(stored->Get(Column::kPositions, PositionKey("kafka:purchases", p), &value));
    v1::SourcePosition want;
    ASSERT_OK(DecodeState(value, &want));
    EXPECT_EQ(stats.position.next_offset(), want.next_offset()) << "partition " << p;
    EXPECT_EQ(stats.position.events(), want.events()) << "partition " << p;
  }
  std::printf("restored %llu changelog records in %.3f s\n",
              static_cast<unsigned long long>(records), seconds);
  ASSERT_OK_AND_ASSIGN(want_digest, StateDigest(stored.get()));
  ASSERT_OK_AND_ASSIGN(got_digest, StateDigest(restored.get()));
  EXPECT_EQ(got_digest, want_digest);
  // The published lists come back too (the query API serves them).
  auto lists = [](StateStore* store) {
    std::map<std::string, std::string> all;
    EXPECT_OK(store->Scan(Column::kLists, "", [&](std::string_view key, std::string_view value) {
      all.emplace(key, value);
      return true;
    }));
    return all;
  };
  const auto want_lists = lists(stored.get());
  EXPECT_GT(want_lists.size(), 300u);
  EXPECT_TRUE(lists(restored.get()) == want_lists) << "the lists column differs after a restore";

  // Errors name what is wrong.
  KafkaConfig no_topic = options.config.kafka;
  no_topic.changelog_topic = "";
  ChangelogRestoreOptions restore;
  restore.source_name = "kafka:purchases";
  auto refused = RestoreFromChangelog(no_topic, restore, restored.get());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("kafka.changelog_topic"), std::string::npos);
  restore.partition = kPartitions + 3;
  restore.timeout_ms = 5000;
  auto missing = RestoreFromChangelog(options.config.kafka, restore, restored.get());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("partition " + std::to_string(kPartitions + 3)),
            std::string::npos)
      << missing.status().ToString();
}

// A standby copy (every partition tailed while nothing is owned) that fell behind, plus the
// changelog's tail past it, restore what the whole changelog does: the same digest, lists and
// positions, reading from Kafka only the tail.
TEST_F(KafkaServiceTest, StandbyCopyAndTheTailRestoreWhatTheWholeChangelogDoes) {
  ASSERT_OK(cluster_->CreateTopic("copy-changelog", kPartitions));
  TempDir dir;
  Feed feed = MakeFeed(dir, 4000, 400);
  ServiceOptions options = Options(dir.File("state"), "copy", feed, "copy-changelog");
  ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 0, 2000));
  RunUntilApplied(options, 2000);

  StoreOptions copy_options;
  copy_options.path = dir.File("copy");
  ASSERT_OK_AND_ASSIGN(copy, OpenRocksStateStore(copy_options));
  {
    ASSERT_OK_AND_ASSIGN(standby, StandbyReplicas::Start(options.config.kafka, copy.get(),
                                                         NewNullLogger()));
    standby->SetOwned({});  // owns nothing: tails every partition
    ASSERT_TRUE(standby->WaitCaughtUp(kWaitMs));
    EXPECT_EQ(standby->stats().partitions, static_cast<uint32_t>(kPartitions));
    EXPECT_EQ(standby->stats().lag, 0u);
    EXPECT_GT(standby->stats().records, 0u);
  }
  // The copies fall behind: the service processes the second half.
  ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 2000, feed.events.size()));
  RunUntilApplied(options, feed.events.size());

  for (uint32_t p = 0; p < kPartitions; ++p) {
    ASSERT_OK_AND_ASSIGN(copied_to, StandbyOffset(copy.get(), p));
    ChangelogRestoreOptions restore;
    restore.source_name = "kafka:purchases";
    restore.partition = p;
    restore.use_standby_copy = true;
    ASSERT_OK_AND_ASSIGN(stats, RestoreFromChangelog(options.config.kafka, restore, copy.get()));
    EXPECT_GT(copied_to, 0u) << "partition " << p;
    EXPECT_EQ(stats.begin_offset, copied_to) << "partition " << p << ": read from the copy's end";
    EXPECT_GT(stats.standby_records, 0u) << "partition " << p;
    EXPECT_GT(stats.records, 0u) << "partition " << p << ": the tail";
    EXPECT_LE(stats.records, stats.end_offset - copied_to) << "partition " << p;
  }
  StoreOptions stored_options;
  stored_options.path = dir.File("state");
  ASSERT_OK_AND_ASSIGN(stored, OpenRocksStateStore(stored_options));
  ASSERT_OK_AND_ASSIGN(want, StateDigest(stored.get()));
  ASSERT_OK_AND_ASSIGN(got, StateDigest(copy.get()));
  EXPECT_EQ(got, want);
  auto scan = [](StateStore* store, Column column) {
    std::map<std::string, std::string> all;
    EXPECT_OK(store->Scan(column, "", [&](std::string_view key, std::string_view value) {
      all.emplace(key, value);
      return true;
    }));
    return all;
  };
  EXPECT_TRUE(scan(copy.get(), Column::kLists) == scan(stored.get(), Column::kLists));
  for (uint32_t p = 0; p < kPartitions; ++p) {
    ASSERT_OK_AND_ASSIGN(a, LoadPosition(stored.get(), "kafka:purchases", p));
    ASSERT_OK_AND_ASSIGN(b, LoadPosition(copy.get(), "kafka:purchases", p));
    EXPECT_EQ(a.next_offset(), b.next_offset()) << "partition " << p;
    EXPECT_EQ(a.events(), b.events()) << "partition " << p;
  }
}

// A new instance (an empty state directory) assigned partitions whose state is in the
// changelog restores them instead of reading the input again from its start, then goes on with
// new input: the same customer-state digest as a file replay of everything, and only the new
// records applied by this run.
TEST_F(KafkaServiceTest, NewInstanceRestoresFromTheChangelogInsteadOfReprocessing) {
  ASSERT_OK(cluster_->CreateTopic("handover-changelog", kPartitions));
  TempDir dir;
  Feed feed = MakeFeed(dir, 4000, 400);
  const size_t first = 3000;
  ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 0, first));
  auto options = [&](const std::string& state, const std::string& group) {
    return Options(dir.File(state), group, feed, "handover-changelog");
  };
  ServiceStats a = RunUntilApplied(options("a", "handover-a"), first);
  EXPECT_EQ(a.events, first);
  EXPECT_EQ(a.restored_partitions, 0u) << "the changelog was empty";

  ServiceStats b = RunUntilApplied(options("b", "handover-b"), feed.events.size(), [&](Service* service) {
    // The rest of the input once the restored partitions are being consumed.
    EXPECT_TRUE(service->WaitFor([](const ServiceStats& s) { return s.ready; }, kWaitMs));
    Produce(feed.events, first, feed.events.size());
    // The restore is counted where an operator sees it.
    const ServiceStats stats = service->stats();
    std::string metrics;
    EXPECT_EQ(HttpGet(stats.metrics_port, "/metrics", &metrics), 200);
    EXPECT_EQ(MetricSum(metrics, "streamrec_changelog_restored_records_total"),
              static_cast<double>(stats.restored_records));
    EXPECT_GT(stats.restored_records, 0u);
  });
  EXPECT_EQ(b.restored_partitions, static_cast<uint64_t>(kPartitions));
  // At least each of A's customers' latest state and each partition's position.
  EXPECT_GE(b.restored_records, StoredListVersions(dir.File("a")).size() + kPartitions);
  EXPECT_EQ(b.events, feed.events.size() - first) << "the restored input is not read again";
  EXPECT_EQ(DigestOf(dir.File("b")), ReferenceDigest(dir, feed));
}

// Two instances share the stream through one consumer group, with a changelog: B joins with an
// empty state directory and takes partitions over from A, restoring them from the changelog; A
// leaves gracefully and B takes the rest over too. Every record is applied exactly once over
// both instances, and B ends with the customer-state digest of a file replay of everything.
TEST_F(KafkaServiceTest, PartitionsMoveBetweenInstancesWithTheirState) {
  ASSERT_OK(cluster_->CreateTopic("moving-changelog", kPartitions));
  TempDir dir;
  Feed feed = MakeFeed(dir, 6000, 500);
  auto options = [&](const std::string& state) {
    return Options(dir.File(state), "moving", feed, "moving-changelog");
  };
  Running a(options("a"));
  ASSERT_TRUE(a.ok());
  ASSERT_NO_FATAL_FAILURE(ApplyAlone(a, feed, 2000));

  Running b(options("b"));
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->WaitFor([](const ServiceStats& s) { return s.ready && !s.assigned.empty(); },
                            kWaitMs))
      << "B never got partitions";
  EXPECT_TRUE(a->WaitFor([](const ServiceStats& s) { return s.assigned.size() < kPartitions; },
                            kWaitMs));
  const uint64_t restored_at_join = b->stats().restored_partitions;
  ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 2000, 4000));

  // A leaves: B takes every partition.
  EXPECT_OK(a.Stop());
  const ServiceStats sa = a->stats();
  a.Reset();
  EXPECT_TRUE(b->WaitFor([](const ServiceStats& s) { return s.assigned.size() == kPartitions; },
                            kWaitMs));
  ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 4000, feed.events.size()));
  EXPECT_TRUE(WaitDone(b.get(), feed.events.size()));
  EXPECT_OK(b.Stop());
  const ServiceStats sb = b->stats();
  b.Reset();

  EXPECT_GT(restored_at_join, 0u) << "B restored what it took over when it joined";
  EXPECT_EQ(sb.restored_partitions, static_cast<uint64_t>(kPartitions))
      << "each partition restored once: at B's join, or when A left";
  EXPECT_EQ(sa.events + sb.events, feed.events.size())
      << "each record applied once over both instances";
  EXPECT_EQ(DigestOf(dir.File("b")), ReferenceDigest(dir, feed));
}

// With kafka.standby_replicas, an instance keeps copies of the partitions the other instance owns
// by tailing their changelog partitions. When the other leaves, taking its partitions over loads
// the copies and reads from Kafka only the changelog's tail past them, not the whole changelog.
TEST_F(KafkaServiceTest, StandbyCopiesTurnAFailoverIntoATailRestore) {
  ASSERT_OK(cluster_->CreateTopic("standby-changelog", kPartitions));
  TempDir dir;
  Feed feed = MakeFeed(dir, 6000, 500);
  auto options = [&](const std::string& state) {
    ServiceOptions o = Options(dir.File(state), "standby", feed, "standby-changelog");
    o.config.kafka.standby_replicas = true;
    return o;
  };
  Running a(options("a"));
  ASSERT_TRUE(a.ok());
  ASSERT_NO_FATAL_FAILURE(ApplyAlone(a, feed, 2000));
  EXPECT_EQ(a->stats().standby_partitions, 0u) << "A owns every partition";

  Running b(options("b"));
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(b->WaitFor([](const ServiceStats& s) { return s.ready && !s.assigned.empty(); },
                            kWaitMs));
  ASSERT_TRUE(a->WaitFor([](const ServiceStats& s) { return s.assigned.size() < kPartitions; },
                            kWaitMs));
  ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 2000, 4000));
  // Both applied everything so far and published it; B's copies of A's partitions caught up.
  auto idle = [](const ServiceStats& s) { return s.in_flight == 0 && s.delivered >= s.outbox_written; };
  // (B's loop updates its stats at every turn, so A's progress is seen too.)
  ASSERT_TRUE(b->WaitFor(
      [&](const ServiceStats& sb) {
        const ServiceStats sa = a->stats();
        return sa.applied + sb.applied >= 4000 && idle(sa) && idle(sb) &&
               sb.standby_partitions == kPartitions - sb.assigned.size() && sb.standby_caught_up;
      },
      kWaitMs))
      << "B's standby copies never caught up with A's changelog";
  const ServiceStats before = b->stats();
  EXPECT_GT(before.standby_records, 0u);

  // A leaves: B takes its partitions over from the copies.
  EXPECT_OK(a.Stop());
  const ServiceStats sa = a->stats();
  a.Reset();
  ASSERT_TRUE(b->WaitFor(
      [](const ServiceStats& s) { return s.ready && s.assigned.size() == kPartitions; }, kWaitMs));
  const ServiceStats after = b->stats();
  EXPECT_EQ(after.standby_partitions, 0u);
  EXPECT_EQ(after.restored_partitions - before.restored_partitions,
            kPartitions - before.assigned.size())
      << "each of A's partitions restored once";
  const uint64_t from_copies = after.restored_from_standby - before.restored_from_standby;
  const uint64_t from_kafka = after.restored_records - before.restored_records;
  std::printf("failover: %llu records from standby copies, %llu from the changelog's tail\n",
              static_cast<unsigned long long>(from_copies),
              static_cast<unsigned long long>(from_kafka));
  EXPECT_GT(from_copies, 0u);
  EXPECT_LT(from_kafka * 10, from_copies) << "a failover reads the tail, not the changelog";

  ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 4000, feed.events.size()));
  EXPECT_TRUE(WaitDone(b.get(), feed.events.size()));
  EXPECT_OK(b.Stop());
  const ServiceStats sb = b->stats();
  b.Reset();
  EXPECT_EQ(sa.events + sb.events, feed.events.size())
      << "each record applied once over both instances";
  EXPECT_EQ(DigestOf(dir.File("b")), ReferenceDigest(dir, feed));
}

// kafka.model_topic: the owner of partition 0 fits the segment model and the ALS model for all
// and publishes each version; the other instance never fits and adopts them. Both end on the
// same versions.
TEST_F(KafkaServiceTest, OneSegmentModelForAllInstances) {
  ASSERT_OK(cluster_->CreateTopic("one-model-models", 1));
  TempDir dir;
  Feed feed = MakeFeed(dir, 4000, 400);
  auto options = [&](const std::string& state) {
    ServiceOptions o = Options(dir.File(state), "one-model", feed);
    o.config.kafka.model_topic = "one-model-models";
    o.config.segments.refit_every_events = 400;  // several versions over the run
    return o;
  };
  Running a(options("a"));
  ASSERT_TRUE(a.ok());
  ASSERT_NO_FATAL_FAILURE(ApplyAlone(a, feed, 2000));
  ASSERT_TRUE(a->WaitFor([](const ServiceStats& s) { return s.segment_models_published > 0; },
                            kWaitMs));
  EXPECT_TRUE(a->stats().segment_refitter) << "A owns partition 0";

  Running b(options("b"));
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(b->WaitFor([](const ServiceStats& s) { return s.ready && !s.assigned.empty(); },
                            kWaitMs));
  ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 2000, feed.events.size()));
  auto idle = [](const ServiceStats& s) { return s.in_flight == 0 && s.delivered >= s.outbox_written; };
  ServiceStats sa, sb;
  EXPECT_TRUE(b->WaitFor(
      [&](const ServiceStats& s) {
        sb = s;
        sa = a->stats();
        return sa.applied + sb.applied >= feed.events.size() && idle(sa) && idle(sb) &&
               sa.segment_model_version > 0 &&
               sa.segment_model_version == sb.segment_model_version &&
               sa.als_model_version > 0 && sa.als_model_version == sb.als_model_version;
      },
      kWaitMs))
      << "A at v" << sa.segment_model_version << ", B at v" << sb.segment_model_version
      << "; ALS: A at v" << sa.als_model_version << ", B at v" << sb.als_model_version;
  a.RequestStop();
  b.RequestStop();
  EXPECT_OK(a.Stop());
  EXPECT_OK(b.Stop());
  // (Which instance owns partition 0 after B joined is the assignor's choice.)
  EXPECT_NE(sa.segment_refitter, sb.segment_refitter) << "exactly one instance fits";
  EXPECT_GT(sa.segment_models_published + sb.segment_models_published, 1u)
      << "the owner of partition 0 re-fitted and published as the stream went on";
  EXPECT_GT(sb.segment_models_adopted, 0u) << "B started without a model and adopted one";
  // The ALS model goes the same way: fitted by the owner of partition 0, adopted by the other.
  EXPECT_GT(sa.als_models_published + sb.als_models_published, 0u);
  const ServiceStats& follower = sa.segment_refitter ? sb : sa;
  EXPECT_GT(follower.als_models_adopted, 0u) << "the instance not fitting at the end adopted";
}

// kafka.sample_topic: every instance publishes the states of its sampled customers (here all of
// them: sample_share 1) and the instance that fits the segment model for all adds the other
// partitions' samples to its own customers. After both hold every customer of the stream
// between them, a re-fit asked of the fitting instance — the segment model, and the ALS model
// the new segment model triggers — is fitted on all of them, not only on those of its own
// partitions, and the other instance adopts it.
TEST_F(KafkaServiceTest, SegmentFitForAllSeesEveryInstancesSample) {
  ASSERT_OK(cluster_->CreateTopic("samples-models", 1));
  ASSERT_OK(cluster_->CreateTopic("samples-samples", kPartitions));
  TempDir dir;
  Feed feed = MakeFeed(dir, 4000, 400);
  const size_t held_back = 100;  // produced after the re-fit is asked for: its batches fit
  const size_t first = feed.events.size() - held_back;
  std::set<std::string> customers;
  for (size_t i = 0; i < first; ++i) customers.insert(feed.events[i].customer_id);
  auto options = [&](const std::string& state) {
    ServiceOptions o = Options(dir.File(state), "samples", feed);
    o.config.kafka.model_topic = "samples-models";
    o.config.kafka.sample_topic = "samples-samples";
    o.config.kafka.sample_share = 1.0;
    o.config.http.refit_token = "t0ken";
    return o;
  };
  Running a(options("a"));
  ASSERT_TRUE(a.ok());
  ASSERT_NO_FATAL_FAILURE(ApplyAlone(a, feed, 2000));
  Running b(options("b"));
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(b->WaitFor([](const ServiceStats& s) { return s.ready && !s.assigned.empty(); },
                            kWaitMs));
  ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 2000, first));
  // The fitting instance holds every customer: its own in its store, the rest as samples.
  ServiceStats fitter;
  Running* fitting = nullptr;
  EXPECT_TRUE(b->WaitFor(
      [&](const ServiceStats& sb) {
        const ServiceStats sa = a->stats();
        if (sa.applied + sb.applied < first || !sa.ready || !sb.ready) return false;
        fitting = sa.segment_refitter ? &a : sb.segment_refitter ? &b : nullptr;
        if (fitting == nullptr) return false;
        fitter = fitting == &a ? sa : sb;
        return fitter.customers + fitter.fit_samples_remote == customers.size();
      },
      kWaitMs))
      << "the fitting instance holds " << fitter.customers << " customers and "
      << fitter.fit_samples_remote << " samples of the others', of " << customers.size();
  ASSERT_NE(fitting, nullptr);
  EXPECT_LT(fitter.customers, customers.size()) << "the other instance holds some customers";
  EXPECT_GT(fitter.fit_samples_remote, 0u);

  httplib::Client api("127.0.0.1", fitter.http_port);
  auto accepted = api.Post("/v1/refit", {{"Authorization", "Bearer t0ken"}}, "", "application/json");
  ASSERT_TRUE(accepted);
  EXPECT_EQ(accepted->status, 202) << accepted->body;
  const uint64_t before = fitter.segment_model_version;
  // A re-fit starts with a batch: the held-back events come a few at a time until one is in (a
  // fit already running when the request came ends first, and may have seen fewer samples).
  ServiceStats refitted;
  bool done = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kWaitMs);
  for (size_t next = first; !done && std::chrono::steady_clock::now() < deadline;) {
    if (next < feed.events.size()) {
      const size_t end = std::min(next + 10, feed.events.size());
      ASSERT_NO_FATAL_FAILURE(Produce(feed.events, next, end));
      next = end;
    }
    done = (*fitting)->WaitFor(
        [&](const ServiceStats& s) {
          refitted = s;
          // The ALS fit the new segment model triggers sees the samples too.
          return s.segment_model_version > before &&
                 s.segment_fit_customers >= customers.size() &&
                 s.als_fit_customers >= customers.size();
        },
        2000);
  }
  EXPECT_TRUE(done) << "no re-fit after v" << before << " on every customer: v"
                    << refitted.segment_model_version << " fitted on "
                    << refitted.segment_fit_customers << ", ALS v" << refitted.als_model_version
                    << " on " << refitted.als_fit_customers << " (its own: " << refitted.customers
                    << ")";
  const uint64_t version = refitted.segment_model_version;
  Running& other = fitting == &a ? b : a;
  EXPECT_TRUE(other->WaitFor(
      [&](const ServiceStats& s) { return s.segment_model_version >= version; }, kWaitMs))
      << "the other instance never adopted v" << version;
  EXPECT_EQ(refitted.fit_samples_refused, 0u);
  a.RequestStop();
  b.RequestStop();
  EXPECT_OK(a.Stop());
  EXPECT_OK(b.Stop());
}

// kafka.item_stats_topic: each instance publishes its partitions' item statistics and sums the
// others'. A processes the first half alone; B joins, takes some partitions over (their item
// statistics come with the changelog restore) and the rest of the stream is split between them.
// Both end counting every purchase of the stream once — not only those of their own partitions.
TEST_F(KafkaServiceTest, GlobalItemStatisticsCountEveryPartitionOnEveryInstance) {
  ASSERT_OK(cluster_->CreateTopic("items-changelog", kPartitions));
  ASSERT_OK(cluster_->CreateTopic("items-stats", kPartitions));
  TempDir dir;
  Feed feed = MakeFeed(dir, 4000, 400);
  const uint64_t n = feed.events.size();
  auto options = [&](const std::string& state) {
    ServiceOptions o = Options(dir.File(state), "items", feed, "items-changelog");
    o.config.kafka.item_stats_topic = "items-stats";
    return o;
  };
  Running a(options("a"));
  ASSERT_TRUE(a.ok());
  std::optional<Running> b;
  ASSERT_NO_FATAL_FAILURE(SecondJoinsHalfWay(a, b, options("b"), feed));
  auto idle = [](const ServiceStats& s) {
    return s.in_flight == 0 && s.delivered >= s.outbox_written && s.item_stats_lag == 0;
  };
  ServiceStats sa, sb;
  EXPECT_TRUE((*b)->WaitFor(
      [&](const ServiceStats& s) {
        sb = s;
        sa = a->stats();
        return sa.applied + sb.applied >= n && idle(sa) && idle(sb) &&
               sa.item_stats_purchases == n && sb.item_stats_purchases == n;
      },
      kWaitMs))
      << "purchases counted: A " << sa.item_stats_purchases << ", B " << sb.item_stats_purchases
      << " of " << n << "; A applied " << sa.applied << ", B " << sb.applied;
  a.RequestStop();
  b->RequestStop();
  EXPECT_OK(a.Stop());
  EXPECT_OK(b->Stop());
  EXPECT_FALSE(sa.assigned.empty());
  EXPECT_FALSE(sb.assigned.empty());
  EXPECT_LT(sb.events, n) << "B processed part of the stream only";
  EXPECT_GT(sb.item_stats_remote_records, 0u) << "B summed A's partitions from the topic";
  EXPECT_GT(sa.item_stats_remote_records, 0u);
  EXPECT_EQ(sa.item_stats_buyers, sb.item_stats_buyers) << "the same (customer, item) pairs";
  EXPECT_EQ(sa.item_stats_refused + sb.item_stats_refused, 0u);
}

// kafka.cooccurrence_topic: each instance publishes its partitions' co-occurrence rows and adds
// the other partitions' to its own customers'. A processes the first half alone; B joins and
// takes partitions over (it publishes the rows of what it restored that the topic lacks) and
// the rest is split. Both end with the co-occurrence one file replay of the stream has.
TEST_F(KafkaServiceTest, GlobalCooccurrenceIsEveryPartitionsOnEveryInstance) {
  ASSERT_OK(cluster_->CreateTopic("cooc-changelog", kPartitions));
  ASSERT_OK(cluster_->CreateTopic("cooc-stats", kPartitions));
  ASSERT_OK(cluster_->CreateTopic("cooc-rows", kPartitions));
  TempDir dir;
  Feed feed = MakeFeed(dir, 4000, 400);
  const uint64_t n = feed.events.size();
  ReplayOptions reference;
  reference.config.state.path = dir.File("reference-state");
  reference.config.catalog_path = feed.catalog;
  reference.input_path = feed.csv;
  ASSERT_OK_AND_ASSIGN(want, RunReplay(reference, SystemClock()));
  ASSERT_GT(want.cooccurrence_pairs, 0u);
  auto options = [&](const std::string& state) {
    ServiceOptions o = Options(dir.File(state), "cooc", feed, "cooc-changelog");
    o.config.kafka.item_stats_topic = "cooc-stats";
    o.config.kafka.cooccurrence_topic = "cooc-rows";
    o.config.kafka.cooccurrence_publish_ms = 50;
    o.config.kafka.cooccurrence_neighbours = 0;  // uncut rows: the sums are exact
    return o;
  };
  Running a(options("a"));
  ASSERT_TRUE(a.ok());
  std::optional<Running> b;
  ASSERT_NO_FATAL_FAILURE(SecondJoinsHalfWay(a, b, options("b"), feed));
  auto converged = [&](const ServiceStats& s) {
    return s.in_flight == 0 && s.delivered >= s.outbox_written && s.cooccurrence_lag == 0 &&
           s.cooccurrence_buyers == want.cooccurrence_buyers &&
           s.cooccurrence_pairs == want.cooccurrence_pairs;
  };
  ServiceStats sa, sb;
  EXPECT_TRUE((*b)->WaitFor(
      [&](const ServiceStats& s) {
        sb = s;
        sa = a->stats();
        return sa.applied + sb.applied >= n && converged(sa) && converged(sb);
      },
      kWaitMs))
      << "co-occurrence (buyers, pairs): A (" << sa.cooccurrence_buyers << ", "
      << sa.cooccurrence_pairs << "), B (" << sb.cooccurrence_buyers << ", "
      << sb.cooccurrence_pairs << "), one replay (" << want.cooccurrence_buyers << ", "
      << want.cooccurrence_pairs << "); A applied " << sa.applied << ", B " << sb.applied;
  a.RequestStop();
  b->RequestStop();
  EXPECT_OK(a.Stop());
  EXPECT_OK(b->Stop());
  EXPECT_LT(sb.events, n) << "B processed part of the stream only";
  EXPECT_GT(sa.cooccurrence_remote_rows, 0u) << "A adds B's partitions' rows";
  EXPECT_GT(sb.cooccurrence_remote_rows, 0u);
  EXPECT_GT(sa.cooccurrence_rows_published, 0u);
  EXPECT_GT(sb.cooccurrence_rows_published, 0u);
  EXPECT_EQ(sa.cooccurrence_rows_refused + sb.cooccurrence_rows_refused, 0u);
}

// An instance killed right after committing a batch, before any of its output went out, leaves
// that batch's lists and changelog records in its outbox. Another instance takes the partitions
// over from the changelog (without that batch: it reads its input again, and may compute other
// lists for the same versions). When the killed instance comes back, it must not publish what it
// left: it restores the partitions the other one wrote and drops its leftovers. No list version
// reaches the topic with two contents, every committed version is on it, and the state is a
// file replay's.
TEST_F(KafkaServiceTest, KilledInstanceLeftoversNeverFollowTheNewOwnersOutput) {
  ASSERT_OK(cluster_->CreateTopic("takeover-changelog", kPartitions));
  TempDir dir;
  Feed feed = MakeFeed(dir, 4000, 400);
  const size_t published = 600;  // applied and delivered, changelog included, before the crash
  const size_t first = 2000;
  auto options = [&](const std::string& state, const std::string& group) {
    return Options(dir.File(state), group, feed, "takeover-changelog");
  };
  {
    ServiceOptions o = options("a", "takeover-1");
    Service* self = nullptr;
    std::atomic<bool> armed{false};
    o.fault_hook = [&](const std::string& point, uint64_t) {
      if (point == "commit" && armed.load()) self->SimulateCrash();
    };
    auto a = Service::Create(std::move(o));
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    self = a->get();
    std::atomic<bool> stop{false};
    Status s;
    std::thread runner([&] { s = (*a)->Run(stop); });
    Produce(feed.events, 0, published);
    const bool done = WaitDone(self, published);
    EXPECT_TRUE(done) << "the first records were never applied and delivered";
    // The next batch committed is the crash's: its output and changelog never leave.
    armed.store(true);
    if (done) Produce(feed.events, published, first);
    const bool crashed =
        done && self->WaitFor([](const ServiceStats& st) { return !st.running; }, kWaitMs);
    if (!crashed) stop.store(true);
    runner.join();
    ASSERT_TRUE(done);
    EXPECT_TRUE(s.IsAborted()) << s.ToString();
  }
  // B, a new instance (a group of its own: no wait for the dead member's session), takes every
  // partition over from the changelog and applies the rest of the first half.
  ServiceStats b = RunUntilApplied(options("b", "takeover-2"), first);
  EXPECT_GT(b.restored_partitions, 0u);
  // A comes back (in B's group, B gone): every partition it had was written by B since.
  ServiceStats a = RunUntilApplied(options("a", "takeover-2"), feed.events.size(), [&](Service* service) {
    EXPECT_TRUE(service->WaitFor([](const ServiceStats& s) { return s.ready; }, kWaitMs));
    Produce(feed.events, first, feed.events.size());
  });
  EXPECT_GT(a.restored_partitions, 0u);
  EXPECT_EQ(DigestOf(dir.File("a")), ReferenceDigest(dir, feed));
  ExpectCommittedVersionsPublishedOnce(dir.File("a"));
}

// The changelog ahead of the output topic: A is killed the moment a batch's position record is
// acknowledged, so that batch's lists (which wait for it) never leave, and no progress mark
// says they did. B restores the partitions from the changelog, finds those lists after the
// latest mark and publishes them: every version in B's state is on the topic, none with two
// contents.
TEST_F(KafkaServiceTest, ListsTheChangelogHasAndTheOutputLacksArePublishedByTheNextOwner) {
  ASSERT_OK(cluster_->CreateTopic("ahead-changelog", kPartitions));
  TempDir dir;
  Feed feed = MakeFeed(dir, 3000, 300);
  ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 0, feed.events.size()));
  {
    ServiceOptions o = Options(dir.File("a"), "ahead-1", feed, "ahead-changelog");
    Service* self = nullptr;
    std::atomic<int> positions{0};
    o.on_delivered = [&](const v1::OutboxRecord& record) {
      if (record.payload_case() == v1::OutboxRecord::kChangelogPosition && ++positions == 3) {
        self->SimulateCrash();
      }
    };
    auto a = Service::Create(std::move(o));
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    self = a->get();
    std::atomic<bool> stop{false};
    // A crash that never comes fails the test (with what A did) instead of hanging it.
    std::thread watchdog([&] {
      if (!self->WaitFor([](const ServiceStats& st) { return st.batches > 0 && !st.running; },
                         kWaitMs)) {
        const ServiceStats st = self->stats();
        std::fprintf(stderr, "A did not crash within %d ms: %d position records delivered, "
                     "%llu batches, %llu delivered, %llu in flight\n", kWaitMs, positions.load(),
                     static_cast<unsigned long long>(st.batches),
                     static_cast<unsigned long long>(st.delivered),
                     static_cast<unsigned long long>(st.in_flight));
        stop.store(true);
      }
    });
    Status s = (*a)->Run(stop);
    watchdog.join();
    EXPECT_TRUE(s.IsAborted()) << s.ToString() << " (" << positions.load()
                               << " position records delivered)";
  }
  ServiceStats b =
      RunUntilApplied(Options(dir.File("b"), "ahead-2", feed, "ahead-changelog"), feed.events.size());
  EXPECT_GT(b.restored_partitions, 0u);
  EXPECT_GT(b.republished_lists, 0u) << "the killed batch's lists were after A's last mark";
  EXPECT_EQ(DigestOf(dir.File("b")), ReferenceDigest(dir, feed));
  ExpectCommittedVersionsPublishedOnce(dir.File("b"));
}

// kafka.item_stats_topic: the topic holds a partition's latest statistics of an item only if the
// batch that touched the item last got its item-stats record out. A writes the changelog without
// the topic — as a writer killed between a batch's changelog records and its item-stats records
// leaves it, or a deployment that turns the topic on later. B restores every partition from the
// changelog and publishes their statistics again: the latest record of each (partition, item)
// on the topic, summed, counts every purchase of the stream once.
TEST_F(KafkaServiceTest, ItemStatisticsTheChangelogHasAndTheTopicLacksArePublishedByTheNextOwner) {
  ASSERT_OK(cluster_->CreateTopic("lacks-changelog", kPartitions));
  ASSERT_OK(cluster_->CreateTopic("lacks-stats", kPartitions));
  TempDir dir;
  Feed feed = MakeFeed(dir, 3000, 300);
  const uint64_t n = feed.events.size();
  ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 0, n));
  ServiceStats a = RunUntilApplied(Options(dir.File("a"), "lacks-1", feed, "lacks-changelog"), n);
  ASSERT_EQ(a.republished_item_stats, 0u);
  ServiceOptions o = Options(dir.File("b"), "lacks-2", feed, "lacks-changelog");
  o.config.kafka.item_stats_topic = "lacks-stats";
  // B's own view, while it runs (once stopped it owns no partition: its final stats count only
  // what the topic handed back by then): every partition is its own.
  uint64_t counted = 0;
  ServiceStats b = RunUntilApplied(std::move(o), n, [&](Service* service) {
    EXPECT_TRUE(service->WaitFor(
        [&](const ServiceStats& st) {
          counted = st.item_stats_purchases;
          return st.applied >= n && st.item_stats_purchases == n;
        },
        kWaitMs))
        << "B counts " << counted << " purchases of " << n;
  });
  EXPECT_EQ(b.restored_partitions, static_cast<uint64_t>(kPartitions));
  EXPECT_GT(b.republished_item_stats, 0u);

  std::map<std::pair<int32_t, std::string>, uint64_t> latest;  // (partition, item) -> count
  uint64_t refused = 0;
  auto sum = [&] {
    uint64_t total = 0;
    for (const auto& [where, count] : latest) total += count;
    return total;
  };
  size_t seen = 0;
  ReadTopicUntil(cluster_->bootstrap(), "lacks-stats", [&](const std::vector<Consumed>& records) {
    for (; seen < records.size(); ++seen) {
      ItemStats stats;
      if (!DecodeState(records[seen].value, &stats).ok() || stats.item_id() != records[seen].key) {
        ++refused;
        continue;
      }
      latest[{records[seen].partition, stats.item_id()}] = stats.count();
    }
    return sum() == n;
  });
  EXPECT_EQ(refused, 0u);
  EXPECT_EQ(sum(), n) << "the purchases the item-stats topic counts, over " << latest.size()
                      << " (partition, item) pairs";
}

TEST_F(KafkaServiceTest, CrashAfterCommitRestartsFromStoredPositions) {
  TempDir dir;
  Feed feed = MakeFeed(dir, 4000, 400);
  ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 0, feed.events.size()));

  // First instance: crashes right after its 4th batch is committed to the store, before any
  // of that batch's output is produced; the consumer is not closed, nothing is committed.
  {
    ServiceOptions options = Options(dir.File("state"), "crash-1", feed);
    Service* self = nullptr;
    options.fault_hook = [&](const std::string& point, uint64_t n) {
      if (point == "commit" && n == 4) self->SimulateCrash();
    };
    auto service = Service::Create(std::move(options));
    ASSERT_TRUE(service.ok());
    self = service->get();
    std::atomic<bool> stop{false};
    Status s = (*service)->Run(stop);
    EXPECT_TRUE(s.IsAborted()) << s.ToString();
    EXPECT_GE((*service)->stats().batches, 4u);
  }
  // Second instance on the same state (a new group id, so the test does not wait out the dead
  // member's session: the stored positions, not the group's offsets, say where to resume).
  auto service = Service::Create(Options(dir.File("state"), "crash-2", feed));
  ASSERT_TRUE(service.ok());
  std::atomic<bool> stop{false};
  Status run_status;
  std::thread runner([&] { run_status = (*service)->Run(stop); });
  EXPECT_TRUE(WaitDone(service->get(), feed.events.size()));
  stop.store(true);
  runner.join();
  ASSERT_OK(run_status);
  EXPECT_LT((*service)->stats().records, feed.events.size()) << "resumed, not restarted";
  service->reset();

  EXPECT_EQ(DigestOf(dir.File("state")), ReferenceDigest(dir, feed));
  // Every list version committed to the state is on the topic (the crashed batch's lists were
  // re-published from the outbox).
  ExpectCommittedVersionsPublishedOnce(dir.File("state"));
}

TEST_F(KafkaServiceTest, RebalanceRevokesAndReassignsWithoutLossOrDuplicates) {
  TempDir dir;
  Feed feed = MakeFeed(dir, 6000, 500);
  auto service = Service::Create(Options(dir.File("state"), "rebalance", feed));
  ASSERT_TRUE(service.ok());
  std::atomic<bool> stop{false};
  Status run_status;
  std::thread runner([&] { run_status = (*service)->Run(stop); });
  ASSERT_TRUE((*service)->WaitFor([](const ServiceStats& s) { return s.assigned.size() == kPartitions; }, kWaitMs));
  ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 0, 2000));

  // A second member joins the group (it consumes but never processes or commits), takes some
  // partitions, then leaves; events keep arriving meanwhile.
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  conf->set("bootstrap.servers", cluster_->bootstrap(), err);
  conf->set("group.id", "rebalance", err);
  conf->set("partition.assignment.strategy", "cooperative-sticky", err);
  conf->set("enable.auto.commit", "false", err);
  conf->set("session.timeout.ms", "6000", err);
  conf->set("heartbeat.interval.ms", "500", err);
  std::unique_ptr<RdKafka::KafkaConsumer> other(RdKafka::KafkaConsumer::create(conf.get(), err));
  ASSERT_NE(other, nullptr) << err;
  ASSERT_EQ(other->subscribe({"purchases"}), RdKafka::ERR_NO_ERROR);
  // Poll the second member until it holds partitions (each consume() waits up to 100 ms).
  auto other_partitions = [&] {
    std::vector<RdKafka::TopicPartition*> parts;
    other->assignment(parts);
    size_t n = parts.size();
    RdKafka::TopicPartition::destroy(parts);
    return n;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kWaitMs);
  while (other_partitions() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::unique_ptr<RdKafka::Message> m(other->consume(100));
  }
  ASSERT_GT(other_partitions(), 0u) << "the second member never got partitions";
  EXPECT_LT((*service)->stats().assigned.size(), static_cast<size_t>(kPartitions));
  ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 2000, 4000));
  other->close();
  EXPECT_TRUE((*service)->WaitFor([](const ServiceStats& s) { return s.assigned.size() == kPartitions; }, kWaitMs))
      << "partitions did not come back";
  ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 4000, feed.events.size()));
  EXPECT_TRUE(WaitDone(service->get(), feed.events.size()));
  stop.store(true);
  runner.join();
  ASSERT_OK(run_status);
  ServiceStats stats = (*service)->stats();
  EXPECT_GE(stats.rebalances, 3u);
  EXPECT_EQ(stats.events, feed.events.size()) << "nothing counted twice, nothing lost";
  service->reset();
  EXPECT_EQ(DigestOf(dir.File("state")), ReferenceDigest(dir, feed));
}

// Requests fail at the broker (librdkafka's fault injection): fetches answered with errors the
// consumer retries, produces rejected outright (a failed delivery: the record goes back to the
// outbox and is sent again) or retried inside the producer. Nothing is lost or counted twice,
// every committed list version reaches the topic once in content, and the failed deliveries are
// counted where an operator sees them.
TEST_F(KafkaServiceTest, RequestErrorsOnProduceAndFetchLoseNothing) {
  TempDir dir;
  Feed feed = MakeFeed(dir, 3000, 300);
  {
    auto first = Service::Create(Options(dir.File("state"), "request-errors-1", feed));
    ASSERT_TRUE(first.ok());
    std::atomic<bool> stop{false};
    Status run_status;
    std::thread runner([&] { run_status = (*first)->Run(stop); });
    ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 0, 1000));
    ASSERT_TRUE(WaitDone(first->get(), 1000));
    stop.store(true);
    runner.join();
    ASSERT_OK(run_status);
  }
  // The rest of the stream is in the topic; then the broker starts failing requests (whoever
  // sends them: so only after this test's own producer is done) and a service resumes.
  ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 1000, feed.events.size()));
  // Fetch (ApiKey 1): leadership, timeout and unknown errors, which the consumer retries.
  // Produce (ApiKey 0): retriable errors the producer retries itself, and an authorization
  // failure it does not (the delivery fails; the record stays in the outbox and is sent again).
  cluster_->PushRequestErrors(1, {RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                  RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_UNKNOWN,
                                  RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION});
  cluster_->PushRequestErrors(0, {RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                  RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                  RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
                                  RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED});
  auto service = Service::Create(Options(dir.File("state"), "request-errors-2", feed));
  ASSERT_TRUE(service.ok());
  std::atomic<bool> stop{false};
  Status run_status;
  std::thread runner([&] { run_status = (*service)->Run(stop); });
  EXPECT_TRUE(WaitDone(service->get(), feed.events.size()));
  const ServiceStats stats = (*service)->stats();
  EXPECT_GT(stats.delivery_errors, 0u) << "the rejected produce was not counted";
  stop.store(true);
  runner.join();
  ASSERT_OK(run_status);
  EXPECT_EQ((*service)->stats().events, feed.events.size() - 1000) << "nothing lost, nothing counted twice";
  service->reset();
  EXPECT_EQ(DigestOf(dir.File("state")), ReferenceDigest(dir, feed));

  ExpectCommittedVersionsPublishedOnce(dir.File("state"));
}

// Overload (issue 8): input far faster than the service. A backlog several times the prefetch
// bound is waiting when the service starts, and more arrives while it works through it. Memory
// stays bounded: librdkafka's queue of records fetched ahead never passes kafka.max_prefetch_mb
// (in records and in payload bytes) by more than one fetch. The lag grows and is visible,
// /healthz and /readyz stay 200 throughout, the lag falls back to 0, and nothing is dropped:
// every event is applied once (the replay's digest) and every list version committed is on the
// topic. (The output side's bound, kafka.max_in_flight, has a test of its own below.)
TEST_F(KafkaServiceTest, OverloadKeepsPrefetchBoundedAndLosesNothing) {
  TempDir dir;
  constexpr size_t kEvents = 100000;
  constexpr size_t kBacklog = 80000;  // produced before the service starts; the rest meanwhile
  Feed feed = MakeFeed(dir, kEvents, 200);
  // The bound's arithmetic. max_prefetch_mb = 16: at most 16 MiB of payload and 16 x 2048 =
  // 32,768 records queued (with ~80-byte events the record cap is the one reached: ~2.6 MB). librdkafka checks the queue before each fetch, a broker has one fetch in
  // flight, and a partition is fetched from one broker only; the mock broker answers a fetch
  // with at most one produced batch per partition. So the queue can overshoot the bound by one
  // produced batch per partition: 6 x 200 records (batch.num.messages) and 6 x 16 KiB
  // (batch.size). A real broker's answer would be bounded by max.partition.fetch.bytes per
  // partition and fetch.max.bytes per broker: set small as well. (librdkafka 2.0.2 looks at a
  // partition that stopped fetching again about once a second: a bound holding less than a
  // second of processing starves the service part of the time, so 16 MiB, not less.)
  constexpr int kPrefetchMb = 16;
  constexpr uint64_t kRecordsBound = kPrefetchMb * 2048;
  constexpr uint64_t kBytesBound = kPrefetchMb << 20;
  constexpr uint64_t kBatchRecords = 200, kBatchBytes = 16384;
  const uint64_t records_slack = kPartitions * kBatchRecords;
  const uint64_t bytes_slack = kPartitions * kBatchBytes;
  const std::map<std::string, std::string> small_batches = {
      {"batch.num.messages", std::to_string(kBatchRecords)},
      {"batch.size", std::to_string(kBatchBytes)}};
  auto produce = [&](size_t from, size_t to) {
    auto producer = PurchaseProducer::Create(cluster_->bootstrap(), "purchases", small_batches);
    ASSERT_TRUE(producer.ok());
    for (size_t i = from; i < to; ++i) ASSERT_OK((*producer)->Produce(feed.events[i]));
    ASSERT_OK((*producer)->Flush(kWaitMs));
  };
  ASSERT_NO_FATAL_FAILURE(produce(0, kBacklog));

  ServiceOptions options = Options(dir.File("state"), "overload", feed);
  auto log = std::make_shared<testing::CapturingLogger>();
  options.logger = log;
  options.config.pipeline.batch_size = 2000;
  options.config.kafka.max_prefetch_mb = kPrefetchMb;
  options.config.kafka.statistics_interval_ms = 20;
  options.config.kafka.consumer["max.partition.fetch.bytes"] = std::to_string(kBatchBytes);
  options.config.kafka.consumer["fetch.max.bytes"] = "65536";
  options.config.kafka.consumer["message.max.bytes"] = "65536";  // fetch.max.bytes' minimum
  const auto started = std::chrono::steady_clock::now();
  auto service = Service::Create(std::move(options));
  ASSERT_TRUE(service.ok()) << service.status().ToString();
  EXPECT_TRUE(log->Contains("queued.max.messages.kbytes=" + std::to_string(kPrefetchMb * 1024)))
      << log->Text();
  EXPECT_TRUE(log->Contains("queued.min.messages=" + std::to_string(kRecordsBound))) << log->Text();
  std::atomic<bool> stop{false};
  Status run_status;
  std::thread runner([&] { run_status = (*service)->Run(stop); });
  const int http_port = (*service)->stats().http_port;
  ASSERT_GT(http_port, 0);

  // More input while the service works through the backlog.
  ASSERT_TRUE((*service)->WaitFor([](const ServiceStats& s) { return s.records > 0; }, kWaitMs));
  std::thread producer([&] { produce(kBacklog, kEvents); });
  // Until everything is applied and delivered: /healthz and /readyz, every 100 ms at most.
  int probes = 0, failed_probes = 0;
  std::string failures;
  auto done = [&](const ServiceStats& s) {
    return s.applied >= kEvents && s.in_flight == 0 && s.delivered >= s.outbox_written;
  };
  bool ready_seen = false;
  while (!done((*service)->stats()) &&
         std::chrono::steady_clock::now() - started < std::chrono::milliseconds(4 * kWaitMs)) {
    std::string body;
    const int health = HttpGet(http_port, "/healthz", &body);
    const int ready = HttpGet(http_port, "/readyz", &body);
    ready_seen |= ready == 200;
    if (ready_seen) {
      ++probes;
      if (health != 200 || ready != 200) {
        ++failed_probes;
        failures += std::to_string(health) + "/" + std::to_string(ready) + " " + body + "\n";
      }
    }
    (*service)->WaitFor(done, 100);
  }
  producer.join();
  ASSERT_TRUE(WaitDone(service->get(), kEvents));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  // The lag, once the last commits are in a statistics report, is 0 again.
  const uint64_t reports = (*service)->stats().queue.reports;
  EXPECT_TRUE((*service)->WaitFor(
      [&](const ServiceStats& s) { return s.queue.reports > reports + 1 && s.queue.lag == 0; },
      kWaitMs))
      << "lag " << (*service)->stats().queue.lag;
  std::string metrics;
  ASSERT_EQ(HttpGet((*service)->stats().metrics_port, "/metrics", &metrics), 200);
  stop.store(true);
  runner.join();
  ASSERT_OK(run_status);
  const ServiceStats stats = (*service)->stats();
  std::printf("overload: %zu events in %.1f s; peak prefetch %llu records (bound %llu + %llu), "
              "%llu bytes (bound %llu + %llu); peak lag %llu; %d probes\n",
              kEvents, seconds, static_cast<unsigned long long>(stats.queue.peak_prefetch_messages),
              static_cast<unsigned long long>(kRecordsBound),
              static_cast<unsigned long long>(records_slack),
              static_cast<unsigned long long>(stats.queue.peak_prefetch_bytes),
              static_cast<unsigned long long>(kBytesBound),
              static_cast<unsigned long long>(bytes_slack),
              static_cast<unsigned long long>(stats.queue.peak_lag), probes);

  // Bounded, and the bound was what held the queue back: it filled up to it.
  EXPECT_LE(stats.queue.peak_prefetch_messages, kRecordsBound + records_slack);
  EXPECT_LE(stats.queue.peak_prefetch_bytes, kBytesBound + bytes_slack);
  EXPECT_GE(stats.queue.peak_prefetch_messages, kRecordsBound / 2) << "the queue never filled";
  // Visible: the lag was reported, far above 0 (the backlog beyond the queue is in Kafka).
  EXPECT_GT(stats.queue.peak_lag, 10000u);
  EXPECT_EQ(MetricSum(metrics, "streamrec_consumer_lag_messages"), 0);
  EXPECT_GE(MetricSum(metrics, "streamrec_consumer_prefetch_messages"), 0);
  EXPECT_GE(MetricSum(metrics, "streamrec_consumer_prefetch_bytes"), 0);
  // Healthy and ready throughout.
  EXPECT_GT(probes, 0);
  EXPECT_EQ(failed_probes, 0) << failures;
  // Nothing dropped, nothing twice.
  EXPECT_EQ(stats.events, kEvents);
  EXPECT_EQ(stats.applied, kEvents);
  EXPECT_EQ(stats.invalid, 0u);
  service->reset();
  EXPECT_EQ(DigestOf(dir.File("state")), ReferenceDigest(dir, feed));
  ExpectCommittedVersionsPublishedOnce(dir.File("state"));
}

// Output-side backpressure: when more output records than kafka.max_in_flight await Kafka's
// acknowledgement, the partitions are paused (the poll loop goes on) and resumed at half. A
// batch here publishes up to 300 lists against a limit of 100: every batch pauses. Nothing is
// lost or applied twice across the pauses, and every list version reaches the topic.
TEST_F(KafkaServiceTest, OutputBackpressurePausesAndResumesWithoutLoss) {
  TempDir dir;
  Feed feed = MakeFeed(dir, 3000, 300);
  ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 0, feed.events.size()));
  ServiceOptions options = Options(dir.File("state"), "backpressure", feed);
  options.config.pipeline.batch_size = 1000;
  options.config.kafka.max_in_flight = 100;  // the smallest configurable bound
  auto service = Service::Create(std::move(options));
  ASSERT_TRUE(service.ok()) << service.status().ToString();
  std::atomic<bool> stop{false};
  Status run_status;
  std::thread runner([&] { run_status = (*service)->Run(stop); });
  EXPECT_TRUE(WaitDone(service->get(), feed.events.size()));
  std::string metrics;
  EXPECT_TRUE(PollUntil([&] {
    return HttpGet((*service)->stats().metrics_port, "/metrics", &metrics) == 200 &&
           MetricSum(metrics, "streamrec_backpressure_pauses_total") > 0;
  }, kWaitMs)) << metrics;
  stop.store(true);
  runner.join();
  ASSERT_OK(run_status);
  const ServiceStats stats = (*service)->stats();
  EXPECT_GT(stats.pauses, 0u);
  EXPECT_EQ(stats.events, feed.events.size()) << "nothing lost, nothing twice";
  EXPECT_EQ(stats.delivered, stats.outbox_written);
  service->reset();
  EXPECT_EQ(DigestOf(dir.File("state")), ReferenceDigest(dir, feed));
  ExpectCommittedVersionsPublishedOnce(dir.File("state"));
}

// Pseudonymised logs (issue 8, item 7). A customer's stored state is corrupted: the service
// refuses to start (every start reads all states to rebuild the recommender's index) with an
// error naming the customer, which is what an operator reads in the log. With
// log.pseudonymize_customer_ids (its key from a file) the log names them by their keyed
// pseudonym, never by their id; without it, by the id.
TEST_F(KafkaServiceTest, PseudonymizedLogsNeverShowTheCustomerId) {
  TempDir dir;
  Feed feed = MakeFeed(dir, 600, 60);
  ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 0, feed.events.size()));
  {
    auto first = Service::Create(Options(dir.File("state"), "pseudonyms", feed));
    ASSERT_TRUE(first.ok());
    std::atomic<bool> stop{false};
    Status run_status;
    std::thread runner([&] { run_status = (*first)->Run(stop); });
    ASSERT_TRUE(WaitDone(first->get(), feed.events.size()));
    stop.store(true);
    runner.join();
    ASSERT_OK(run_status);
  }
  // One customer's stored state no longer decodes.
  const std::string& id = feed.events.back().customer_id;
  {
    StoreOptions store_options;
    store_options.path = dir.File("state");
    auto store = OpenRocksStateStore(store_options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    std::string key;
    ASSERT_OK((*store)->Scan(Column::kCustomers, "", [&](std::string_view k, std::string_view) {
      if (k.substr(4) == id) key.assign(k);
      return key.empty();
    }));
    ASSERT_FALSE(key.empty()) << id << " has no stored state";
    WriteSet corrupt;
    corrupt.Put(Column::kCustomers, key, "\xff not a customer state");
    ASSERT_OK((*store)->Write(corrupt));
  }
  const std::string hex_key = "5ec73e7000112233445566778899aabb";
  ASSERT_OK_AND_ASSIGN(key, ParseSipHashKey(hex_key, "test"));
  const std::string pseudonym = CustomerPseudonym(key, id);

  // In process, with a capturing logger: the error that stops the service names the pseudonym.
  {
    ServiceOptions options = Options(dir.File("state"), "pseudonyms", feed);
    auto log = std::make_shared<testing::CapturingLogger>();
    options.logger = log;
    options.config.log.pseudonymize_customer_ids = true;
    options.config.log.pseudonym_key = hex_key;
    auto service = Service::Create(std::move(options));
    ASSERT_FALSE(service.ok());
    const Status& s = service.status();
    EXPECT_TRUE(s.IsCorruption()) << s.ToString();
    EXPECT_NE(s.message().find("customer " + pseudonym + ": "), std::string::npos) << s.ToString();
    EXPECT_EQ(s.message().find(id), std::string::npos) << s.ToString();
    EXPECT_EQ(log->Text().find(id), std::string::npos) << log->Text();
  }
  // `streamrec run`: everything it writes is its log. The key comes from a file.
  testing::WriteFile(dir.File("pseudonym.key"), hex_key + "\n");
  auto run = [&](bool pseudonyms) {
    testing::WriteFile(dir.File("run.yaml"),
                       "input:\n  format: protobuf\n"
                       "catalog:\n  path: " + feed.catalog + "\n"
                       "kafka:\n  brokers: \"" + cluster_->bootstrap() + "\"\n"
                       "  group_id: pseudonyms-run\n"
                       "metrics:\n  listen: \"\"\n"
                       "http:\n  listen: \"\"\n"
                       "log:\n  pseudonymize_customer_ids: " + (pseudonyms ? "true" : "false") +
                       "\n  pseudonym_key: ${file:" + dir.File("pseudonym.key") + "}\n");
    return testing::RunProcess({testing::StreamrecBinary(), "run", "--config", dir.File("run.yaml"),
                                "--state-dir", dir.File("state")});
  };
  testing::ProcessResult pseudonymized = run(true);
  EXPECT_TRUE(pseudonymized.exited && pseudonymized.exit_code == 1) << pseudonymized.output;
  EXPECT_NE(pseudonymized.output.find("Corruption: customer " + pseudonym + ": "),
            std::string::npos) << pseudonymized.output;
  EXPECT_EQ(pseudonymized.output.find(id), std::string::npos)
      << "the customer id reached the log:\n" << pseudonymized.output;
  // The same without pseudonyms names the customer: the check above is not vacuous.
  testing::ProcessResult plain = run(false);
  EXPECT_TRUE(plain.exited && plain.exit_code == 1) << plain.output;
  EXPECT_NE(plain.output.find("Corruption: customer '" + id + "': "), std::string::npos)
      << plain.output;
  // `streamrec config --pseudonym` tells an operator which pseudonym to look for.
  testing::ProcessResult lookup = testing::RunProcess(
      {testing::StreamrecBinary(), "config", "--config", dir.File("run.yaml"), "--pseudonym", id});
  EXPECT_TRUE(lookup.exited && lookup.exit_code == 0) << lookup.output;
  EXPECT_EQ(lookup.output, pseudonym + " " + id + "\n");
}

TEST_F(KafkaServiceTest, BrokerOutageIsReportedAndCaughtUp) {
  TempDir dir;
  Feed feed = MakeFeed(dir, 3000, 300);
  // Every partition of every topic led by broker 1, which then goes down for a while.
  for (const char* topic : {"purchases", "recommendations", "purchases-dlq", "segment-changes"}) {
    for (int p = 0; p < kPartitions; ++p) ASSERT_OK(cluster_->SetPartitionLeader(topic, p, 1));
  }
  auto service = Service::Create(Options(dir.File("state"), "outage", feed));
  ASSERT_TRUE(service.ok());
  std::atomic<bool> stop{false};
  Status run_status;
  std::thread runner([&] { run_status = (*service)->Run(stop); });
  ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 0, 1500));
  ASSERT_TRUE(WaitDone(service->get(), 1500));

  ASSERT_OK(cluster_->SetBrokerDown(1));
  EXPECT_TRUE((*service)->WaitFor([](const ServiceStats& s) { return s.consumer_errors > 0; }, kWaitMs))
      << "the outage was not reported";
  // Purchases keep arriving at the producer during the outage; it buffers them.
  std::thread producer([&] { Produce(feed.events, 1500, feed.events.size()); });
  // The leader stays down for 30 s, five times this consumer's session timeout: fetches and
  // produce requests fail and are retried throughout, and the service rides it out.
  constexpr int kLeaderDownMs = 30000;
  EXPECT_FALSE(
      (*service)->WaitFor([](const ServiceStats& s) { return s.applied > 1500; }, kLeaderDownMs))
      << "nothing can be consumed while the leader is down";
  EXPECT_TRUE((*service)->stats().running) << "the service keeps running through the outage";
  std::string body;
  EXPECT_EQ(HttpGet((*service)->stats().http_port, "/healthz", &body), 200)
      << "a broker outage is not the service's fault: no restart wanted; " << body;
  ASSERT_EQ(HttpGet((*service)->stats().metrics_port, "/metrics", &body), 200);
  EXPECT_GT(MetricSum(body, "streamrec_consumer_errors_total"), 0) << "the outage is on /metrics";
  ASSERT_OK(cluster_->SetBrokerUp(1));
  producer.join();
  EXPECT_TRUE(WaitDone(service->get(), feed.events.size()));
  stop.store(true);
  runner.join();
  ASSERT_OK(run_status);
  EXPECT_EQ((*service)->stats().events, feed.events.size());
  service->reset();
  EXPECT_EQ(DigestOf(dir.File("state")), ReferenceDigest(dir, feed));
}

// Storage faults: the store's file writes fail (a failing disk, a full disk) while purchases keep
// arriving. The service stops consuming, says so on /readyz and /metrics, keeps no partial batch
// (in the store or in memory), and once the disk is back resumes by itself — no restart — with
// a state identical to a run that never saw the fault.
class KafkaServiceStorageFaultTest : public KafkaServiceTest,
                                     public ::testing::WithParamInterface<StorageFaults::Kind> {};

TEST_P(KafkaServiceStorageFaultTest, PausesReportsAndResumesWithoutRestart) {
  TempDir dir;
  Feed feed = MakeFeed(dir, 3000, 300);
  auto faults = std::make_shared<StorageFaults>();
  ServiceOptions options = Options(dir.File("state"), "storage-faults", feed);
  options.config.state.faults = faults;
  auto service = Service::Create(std::move(options));
  ASSERT_TRUE(service.ok()) << service.status().ToString();
  std::atomic<bool> stop{false};
  Status run_status;
  std::thread runner([&] { run_status = (*service)->Run(stop); });
  ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 0, 1000));
  ASSERT_TRUE(WaitDone(service->get(), 1000));
  const int port = (*service)->stats().http_port;
  const int metrics_port = (*service)->stats().metrics_port;

  faults->Set(GetParam());
  ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 1000, feed.events.size()));
  // Two retries: the store refused the batch, and refused again a second later.
  ASSERT_TRUE((*service)->WaitFor(
      [](const ServiceStats& s) { return s.storage_errors > 0 && s.storage_retries >= 2; }, kWaitMs))
      << "the write error was not seen";
  ServiceStats during = (*service)->stats();
  EXPECT_TRUE(during.running) << "a storage fault must not stop the service";
  EXPECT_FALSE(during.ready);
  EXPECT_FALSE(during.storage_writable);
  EXPECT_EQ(during.applied, 1000u) << "nothing is applied while the store refuses writes";
  std::string body;
  EXPECT_EQ(HttpGet(port, "/readyz", &body), 503);
  EXPECT_NE(body.find("refuses writes"), std::string::npos) << body;
  EXPECT_EQ(HttpGet(port, "/healthz", &body), 200) << "alive: a restart would not help";
  ASSERT_EQ(HttpGet(metrics_port, "/metrics", &body), 200);
  EXPECT_EQ(MetricSum(body, "streamrec_storage_writable"), 0);
  EXPECT_GE(MetricSum(body, "streamrec_storage_errors_total"), 1);
  EXPECT_EQ(MetricSum(body, "streamrec_ready"), 0);
  EXPECT_GT(faults->refused(), 0u);

  faults->Clear();
  EXPECT_TRUE(WaitDone(service->get(), feed.events.size())) << "no resume after the fault cleared";
  const ServiceStats after = (*service)->stats();
  EXPECT_TRUE(after.storage_writable);
  EXPECT_TRUE(after.ready);
  EXPECT_EQ(HttpGet(port, "/readyz", &body), 200) << body;
  stop.store(true);
  runner.join();
  ASSERT_OK(run_status);
  EXPECT_EQ((*service)->stats().events, feed.events.size()) << "nothing lost, nothing counted twice";
  service->reset();
  EXPECT_EQ(DigestOf(dir.File("state")), ReferenceDigest(dir, feed));
  ExpectCommittedVersionsPublishedOnce(dir.File("state"));
}

INSTANTIATE_TEST_SUITE_P(Kinds, KafkaServiceStorageFaultTest,
                         ::testing::Values(StorageFaults::Kind::kIOError,
                                           StorageFaults::Kind::kNoSpace),
                         [](const auto& info) { return StorageFaults::KindName(info.param); });

}  // namespace
}  // namespace streamrec

namespace streamrec {
namespace {

// `streamrec run` as a process: JSON output, a secret from the environment that never reaches
// the log, SIGTERM stops it cleanly with everything processed and published.
TEST_F(KafkaServiceTest, RunCommandStopsCleanlyOnSigterm) {
  TempDir dir;
  Feed feed = MakeFeed(dir, 1000, 100);
  ASSERT_NO_FATAL_FAILURE(Produce(feed.events, 0, feed.events.size()));
  testing::WriteFile(dir.File("run.yaml"),
                     "input:\n  format: protobuf\n"
                     "catalog:\n  path: " + feed.catalog + "\n"
                     "kafka:\n  brokers: \"" + cluster_->bootstrap() + "\"\n"
                     "  group_id: run-command\n  output_format: json\n"
                     "  consumer:\n    session.timeout.ms: 6000\n    heartbeat.interval.ms: 500\n"
                     "  producer:\n    sasl.password: ${STREAMREC_TEST_SECRET}\n"
                     "metrics:\n  listen: \"127.0.0.1:0\"\n"
                     "http:\n  listen: \"127.0.0.1:0\"\n  refit_token: ${STREAMREC_TEST_SECRET}\n");
  testing::BackgroundProcess run({testing::StreamrecBinary(), "run", "--config", dir.File("run.yaml"),
                                  "--state-dir", dir.File("state")},
                                 {{"STREAMREC_TEST_SECRET", "hunter2-very-secret"}});
  std::set<std::string> customers;
  for (const auto& e : feed.events) customers.insert(e.customer_id);
  // Wait (on the output topic itself) until every customer has a list.
  std::set<std::string> listed;
  std::vector<Consumed> lists = ReadTopic(cluster_->bootstrap(), "recommendations", customers.size());
  for (const Consumed& c : lists) {
    EXPECT_EQ(c.value.front(), '{') << "JSON output";
    EXPECT_NE(c.value.find("\"customer_id\":\"" + c.key + "\""), std::string::npos) << c.value;
    listed.insert(c.key);
  }
  EXPECT_EQ(listed.size(), customers.size());
  run.Signal(SIGTERM);
  testing::ProcessResult result = run.Wait();
  EXPECT_TRUE(result.exited && result.exit_code == 0) << result.output;
  EXPECT_NE(result.output.find("stopped: 1000 events"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("sasl.password=***"), std::string::npos) << result.output;
  EXPECT_EQ(result.output.find("hunter2"), std::string::npos) << "a secret reached the log";
  EXPECT_EQ(DigestOf(dir.File("state")), ReferenceDigest(dir, feed));
}

}  // namespace
}  // namespace streamrec

namespace streamrec {
namespace {

// `streamrec mock-kafka` in its own process serves other processes: its first output line is
// a fixed bootstrap address that a producer and a consumer elsewhere can use.
TEST(MockKafkaCommandTest, ServesOtherProcessesOnAFixedBootstrapAddress) {
  testing::BackgroundProcess mock({testing::StreamrecBinary(), "mock-kafka", "--port", "0",
                                   "--brokers", "2", "--partitions", "6"});
  std::string output;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while ((output = mock.Output()).find('\n') == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    ::poll(nullptr, 0, 20);  // wait for the process to print its address
  }
  std::string bootstrap = output.substr(0, output.find('\n'));
  ASSERT_EQ(bootstrap.rfind("127.0.0.1:", 0), 0u) << output;

  auto producer = PurchaseProducer::Create(bootstrap, "purchases");
  ASSERT_TRUE(producer.ok());
  PurchaseEvent e;
  e.customer_id = "c1";
  e.item_id = "NI-10GB-30D";
  e.event_time_ms = 1767225600000;
  ASSERT_OK((*producer)->Produce(e));
  ASSERT_OK((*producer)->Flush(kWaitMs));
  std::vector<Consumed> got = ReadTopic(bootstrap, "purchases", 1);
  ASSERT_GE(got.size(), 1u);
  EXPECT_EQ(got[0].key, "c1");
  mock.Signal(SIGTERM);
  testing::ProcessResult result = mock.Wait();
  EXPECT_TRUE(result.exited && result.exit_code == 0) << result.output;
}

}  // namespace
}  // namespace streamrec
