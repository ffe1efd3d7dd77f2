// The crash harness (issue 8, README "Reliability"): `streamrec run` as a separate process
// against the embedded Kafka cluster in another process (so the cluster outlives every crash),
// SIGKILLed at seeded random points while a fixed stream arrives, restarted each time; at the
// end compared with an uninterrupted run of the same events:
//   - the customer-state digest is identical (nothing lost, nothing counted twice);
//   - a final full re-fit gives an identical segment model;
//   - every (customer, list version) committed to the state is on the output topic;
//   - no (customer, version) was published with two different contents, and none that the
//     state never committed.
// The kill points are chosen by a seeded generator among four kinds: just after the partitions
// were assigned, inside the service right before batch n is applied or right after it is
// committed (the crash hook raises SIGKILL there), and from outside once the output topic grew
// by a random number of records. Kills are timed by what the service did, never by a clock.
//
// Environment (tools/crash_harness.sh sets them): STREAMREC_CRASH_KILLS (20),
// STREAMREC_CRASH_SEED (1), STREAMREC_CRASH_EVENTS (12000), STREAMREC_CRASH_CUSTOMERS (1500),
// STREAMREC_CRASH_JSON (a file that receives the result line). The last line printed is one
// JSON object: kills, digest_equal, model_equal, missing_versions, conflicting_versions, ...
#include <gtest/gtest.h>
#include <librdkafka/rdkafkacpp.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <tuple>
#include <algorithm>
#include <thread>

#include "kafka/purchase_producer.h"
#include "streamrec/generator.h"
#include "streamrec/kmeans_segmenter.h"
#include "streamrec/logger.h"
#include "streamrec/replay.h"
#include "streamrec/state_store.h"
#include "streamrec/v1/events.pb.h"
#include "testutil/output_tail.h"
#include "testutil/state_inspect.h"
#include "testutil/subprocess.h"
#include "testutil/test_util.h"

namespace streamrec {
namespace {

using testing::BackgroundProcess;
using testing::OutputTail;
using testing::WaitForLog;
using testing::ProcessResult;
using testing::TempDir;

constexpr int kPartitions = 6;
// One kill cycle waits at most this long for its kill point; a point not reached by then
// (the service had nothing left to do) is a kill anyway, counted as a fallback.
constexpr int kKillPointWaitMs = 30000;
constexpr int kFinalRunWaitMs = 180000;

uint64_t EnvNumber(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoull(v, nullptr, 10);
}

// The model a full re-fit of the state at `state_dir` gives.
StatusOr<std::shared_ptr<const SegmentModelVersion>> FinalRefit(const std::string& state_dir) {
  StoreOptions store_options;
  store_options.path = state_dir;
  auto store = OpenRocksStateStore(store_options);
  if (!store.ok()) return store.status();
  KMeansSegmenterOptions options;
  options.logger = NewNullLogger();
  auto segmenter = KMeansSegmenter::Create(options, store->get());
  if (!segmenter.ok()) return segmenter.status();
  auto report = (*segmenter)->Refit(store->get());
  if (!report.ok()) return report.status();
  return report->model;
}

// Equal fits: same k, and the same centres bit for bit with the same sizes and names. Rows are
// compared as a set, and cluster ids not at all: both are carried over from each run's own
// earlier models, which legitimately differ (the online model moves once per micro-batch).
bool SameModel(const SegmentModelVersion& a, const SegmentModelVersion& b, std::string* why) {
  if (a.k != b.k) {
    *why = "k " + std::to_string(a.k) + " vs " + std::to_string(b.k);
    return false;
  }
  auto rows = [](const SegmentModelVersion& m) {
    const size_t d = m.centres.size() / static_cast<size_t>(m.k);
    std::vector<std::tuple<std::vector<float>, uint64_t, std::string>> out;
    for (int j = 0; j < m.k; ++j) {
      out.emplace_back(std::vector<float>(m.centres.begin() + j * d, m.centres.begin() + (j + 1) * d),
                       m.proto.clusters(j).size(), m.proto.clusters(j).name());
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  auto x = rows(a);
  auto y = rows(b);
  for (size_t j = 0; j < x.size(); ++j) {
    if (x[j] != y[j]) {
      *why = "centre " + std::to_string(j) + " (in sorted order): " + std::get<2>(x[j]) + " (" +
             std::to_string(std::get<1>(x[j])) + " customers) vs " + std::get<2>(y[j]) + " (" +
             std::to_string(std::get<1>(y[j])) + ")";
      return false;
    }
  }
  if (a.proto.objective() != b.proto.objective()) {
    *why = "objective " + std::to_string(a.proto.objective()) + " vs " + std::to_string(b.proto.objective());
    return false;
  }
  return true;
}

TEST(CrashHarnessTest, SigkillAtSeededPointsLosesNothingAndDuplicatesNothing) {
  const int kills = static_cast<int>(EnvNumber("STREAMREC_CRASH_KILLS", 20));
  const uint64_t seed = EnvNumber("STREAMREC_CRASH_SEED", 1);
  const auto start = std::chrono::steady_clock::now();
  TempDir dir;

  // A fixed stream.
  TelcoGeneratorOptions feed_options;
  feed_options.events = EnvNumber("STREAMREC_CRASH_EVENTS", 12000);
  feed_options.customers = EnvNumber("STREAMREC_CRASH_CUSTOMERS", 1500);
  feed_options.seed = 11;
  const std::string csv = dir.File("feed.csv");
  const std::string catalog = dir.File("catalog.csv");
  ASSERT_OK(GenerateTelcoFeed(feed_options, csv, catalog));
  size_t undecodable = 0;
  const std::vector<PurchaseEvent> events = testing::ReadCsvEvents(csv, &undecodable);
  ASSERT_EQ(undecodable, 0u);
  ASSERT_EQ(events.size(), feed_options.events);

  // The cluster, in a process of its own.
  BackgroundProcess cluster({testing::StreamrecBinary(), "mock-kafka", "--port", "0", "--brokers",
                             "1", "--partitions", std::to_string(kPartitions)});
  ASSERT_TRUE(WaitForLog(cluster, "\n", 30000)) << cluster.Output();
  const std::string output = cluster.Output();
  const std::string bootstrap = output.substr(0, output.find('\n'));
  ASSERT_EQ(bootstrap.rfind("127.0.0.1:", 0), 0u) << output;

  const std::string config = dir.File("run.yaml");
  testing::WriteFile(config,
                     "input:\n  format: protobuf\n"
                     "catalog:\n  path: " + catalog + "\n"
                     "pipeline:\n  batch_size: 300\n"
                     "kafka:\n  brokers: \"" + bootstrap + "\"\n  max_batch_ms: 50\n"
                     "  consumer:\n    session.timeout.ms: 6000\n    heartbeat.interval.ms: 500\n"
                     // Ports of their own: the defaults (9464, 8080) may be taken by another
                     // streamrec on the machine, and the run would stop at once.
                     "metrics:\n  listen: \"127.0.0.1:0\"\n"
                     "http:\n  listen: \"127.0.0.1:0\"\n");
  const std::string state = dir.File("state");
  OutputTail tail(bootstrap, "recommendations", kPartitions, "crash-harness-tail");
  auto producer = PurchaseProducer::Create(bootstrap, "purchases");
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  size_t produced = 0;
  auto produce_up_to = [&](size_t end) {
    for (; produced < end; ++produced) ASSERT_OK((*producer)->Produce(events[produced]));
    ASSERT_OK((*producer)->Flush(60000));
  };

  // Each run is a new group member (its own group id, so no run waits out a dead one's
  // session): where to resume comes from the positions stored with the state, not the group.
  auto start_run = [&](int run, const std::map<std::string, std::string>& extra_env,
                       std::vector<std::string> extra_args = {}) {
    std::map<std::string, std::string> env = extra_env;
    env["STREAMREC_KAFKA__GROUP_ID"] = "crash-" + std::to_string(run);
    std::vector<std::string> argv = {testing::StreamrecBinary(), "run", "--config", config,
                                     "--state-dir", state};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    return std::make_unique<BackgroundProcess>(argv, env);
  };

  std::mt19937_64 rng(seed);
  const size_t chunk = events.size() / static_cast<size_t>(kills + 1);
  int fallback_kills = 0;
  std::map<std::string, int> kinds;
  for (int i = 0; i < kills; ++i) {
    ASSERT_NO_FATAL_FAILURE(produce_up_to(chunk * static_cast<size_t>(i + 1)));
    const int kind = static_cast<int>(rng() % 4);
    std::map<std::string, std::string> env;
    if (kind == 1) env["STREAMREC_TEST_CRASH_AT"] = "batch:" + std::to_string(1 + rng() % 2);
    if (kind == 2) env["STREAMREC_TEST_CRASH_AT"] = "commit:" + std::to_string(1 + rng() % 2);
    const uint64_t grow = 1 + rng() % std::max<size_t>(1, chunk / 2);
    const uint64_t before = tail.records();
    auto run = start_run(i, env);
    ProcessResult result;
    bool ended = false;
    bool reached = true;
    switch (kind) {
      case 0:
        reached = WaitForLog(*run, "assignment: +[", kKillPointWaitMs);
        kinds["assigned"]++;
        break;
      case 1:
      case 2:
        ended = run->WaitFor(kKillPointWaitMs, &result);
        reached = ended;
        kinds[kind == 1 ? "before_batch" : "after_commit"]++;
        break;
      default:
        reached = tail.WaitForRecords(before + grow, kKillPointWaitMs);
        kinds["output_grew"]++;
        break;
    }
    if (!reached) ++fallback_kills;
    if (!ended) {
      run->Signal(SIGKILL);
      result = run->Wait();
    }
    ASSERT_TRUE(result.signaled && result.signal == SIGKILL)
        << "run " << i << " (kind " << kind << ") ended on its own: exit " << result.exit_code
        << "\n" << result.output;
  }

  // The rest of the stream, and a last run that stops by itself once it has applied it all.
  ASSERT_NO_FATAL_FAILURE(produce_up_to(events.size()));
  auto last = start_run(kills, {}, {"--stop-at-end"});
  ProcessResult final_result;
  ASSERT_TRUE(last->WaitFor(kFinalRunWaitMs, &final_result))
      << "the last run did not catch up\n" << last->Output();
  ASSERT_TRUE(final_result.exited && final_result.exit_code == 0) << final_result.output;
  ASSERT_TRUE(tail.FinishAtEnd(60000)) << "the output topic was not read to its end";

  // The uninterrupted run: a file replay of the same events with the same configuration (its
  // digest does not depend on partitioning or batch cuts).
  ReplayOptions reference;
  auto loaded = LoadConfig(config, Environment());
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  reference.config = *loaded;
  reference.config.input.format = "csv";
  reference.config.state.path = dir.File("reference");
  reference.input_path = csv;
  auto summary = RunReplay(reference, SystemClock());
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  const std::string digest = testing::DigestOf(state);
  const bool digest_equal = !digest.empty() && digest == summary->state_digest;

  auto model = FinalRefit(state);
  auto reference_model = FinalRefit(reference.config.state.path);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  ASSERT_TRUE(reference_model.ok()) << reference_model.status().ToString();
  std::string model_difference;
  const bool model_equal = SameModel(**model, **reference_model, &model_difference);

  const auto stored = testing::StoredListVersions(state);
  uint64_t committed = 0;
  uint64_t missing = 0;
  for (const auto& [customer, version] : stored) {
    committed += version;
    for (uint64_t v = 1; v <= version; ++v) {
      if (tail.contents().count({customer, v}) == 0) ++missing;
    }
  }
  uint64_t uncommitted = 0;
  for (const auto& [key, content] : tail.contents()) {
    auto it = stored.find(key.first);
    if (it == stored.end() || key.second > it->second) ++uncommitted;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  char line[1024];
  std::snprintf(line, sizeof(line),
                "{\"kills\":%d,\"seed\":%llu,\"events\":%zu,\"fallback_kills\":%d,"
                "\"kills_assigned\":%d,\"kills_before_batch\":%d,\"kills_after_commit\":%d,"
                "\"kills_output_grew\":%d,\"digest_equal\":%s,\"model_equal\":%s,"
                "\"committed_versions\":%llu,\"output_records\":%llu,\"missing_versions\":%llu,"
                "\"conflicting_versions\":%llu,\"uncommitted_versions\":%llu,\"seconds\":%.1f}",
                kills, static_cast<unsigned long long>(seed), events.size(), fallback_kills,
                kinds["assigned"], kinds["before_batch"], kinds["after_commit"],
                kinds["output_grew"], digest_equal ? "true" : "false",
                model_equal ? "true" : "false", static_cast<unsigned long long>(committed),
                static_cast<unsigned long long>(tail.records()),
                static_cast<unsigned long long>(missing),
                static_cast<unsigned long long>(tail.conflicts()),
                static_cast<unsigned long long>(uncommitted), seconds);
  std::printf("%s\n", line);
  if (const char* json = std::getenv("STREAMREC_CRASH_JSON"); json != nullptr && *json != '\0') {
    std::ofstream(json) << line << "\n";
  }

  EXPECT_TRUE(digest_equal) << digest << " vs " << summary->state_digest;
  EXPECT_TRUE(model_equal) << model_difference;
  EXPECT_GT(committed, 0u);
  EXPECT_EQ(missing, 0u) << "committed list versions not on the output topic";
  EXPECT_EQ(tail.conflicts(), 0u) << "a version published with two contents";
  EXPECT_EQ(uncommitted, 0u) << "a version on the topic that the state never committed";
  EXPECT_EQ(tail.undecodable(), 0u);
  // Most kill points are reached: a harness that mostly killed idle services would prove little.
  EXPECT_LE(fallback_kills, kills / 4);
  cluster.Signal(SIGTERM);
}

}  // namespace
}  // namespace streamrec
