// `streamrec bench`: the end-to-end harness runs the service on the embedded Kafka and reports
// a complete, self-consistent JSON summary in both modes, and so do the two ceiling modes (Kafka
// alone, the RocksDB state store alone). (The figures themselves are measured by running it,
// not asserted here: see docs/benchmarks.md.)
#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>
#include <utility>

#include "testutil/subprocess.h"
#include "testutil/test_util.h"

namespace streamrec {
namespace {

using testing::ProcessResult;
using testing::RunProcess;
using testing::StreamrecBinary;
using testing::TempDir;

// The last line of the output that starts with '{': the summary.
std::string SummaryLine(const std::string& output) {
  size_t end = output.size();
  while (end > 0) {
    size_t begin = output.rfind('\n', end - 1);
    begin = begin == std::string::npos ? 0 : begin + 1;
    if (output.compare(begin, 1, "{") == 0) return output.substr(begin, end - begin);
    if (begin == 0) break;
    end = begin - 1;
  }
  return "";
}

double Number(simdjson::dom::element e, const std::string& path) {
  double v = -1;
  auto field = e.at_pointer(path);
  if (field.error()) return -1;
  if (field.is_double()) return field.get_double().value();
  if (field.is_uint64()) return static_cast<double>(field.get_uint64().value());
  if (field.is_int64()) return static_cast<double>(field.get_int64().value());
  return v;
}

void CheckSummary(const std::string& json, uint64_t events) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  EXPECT_EQ(Number(doc, "/events"), static_cast<double>(events)) << json;
  EXPECT_GT(Number(doc, "/customers"), 0) << json;
  EXPECT_EQ(Number(doc, "/catalog_items"), 60) << json;
  EXPECT_GT(Number(doc, "/wall_seconds"), 0) << json;
  EXPECT_NEAR(Number(doc, "/events_per_second") * Number(doc, "/wall_seconds"),
              static_cast<double>(events), 1.0) << json;
  const double p50 = Number(doc, "/purchase_to_published_ms/p50");
  const double p99 = Number(doc, "/purchase_to_published_ms/p99");
  const double max = Number(doc, "/purchase_to_published_ms/max");
  EXPECT_GE(p50, 0) << json;
  EXPECT_LE(p50, p99) << json;
  EXPECT_LE(p99, max) << json;
  EXPECT_GT(Number(doc, "/purchase_to_published_ms/lists"), 0) << json;
  EXPECT_LE(Number(doc, "/purchase_to_published_ms/lists"), Number(doc, "/lists_published")) << json;
  for (const char* stage : {"decode", "state", "model", "recommend", "commit"}) {
    EXPECT_GE(Number(doc, (std::string("/stage_seconds/") + stage).c_str()), 0) << stage << json;
  }
  EXPECT_GT(Number(doc, "/peak_rss_bytes"), 1 << 20) << json;
  EXPECT_NE(json.find("\"peak_rss_since_generated\":true"), std::string::npos)
      << "the kernel refused to reset the peak RSS" << json;
  EXPECT_GT(Number(doc, "/rocksdb_bytes_per_customer"), 0) << json;
  EXPECT_GE(Number(doc, "/final_compaction_seconds"), 0) << json;
  // The service flushes its memtables when it stops, and the figures are read after that.
  EXPECT_GT(Number(doc, "/rocksdb_work/flushed_mib"), 0) << json;
  EXPECT_GE(Number(doc, "/rocksdb_work/compaction_written_mib"), 0) << json;
  EXPECT_GE(Number(doc, "/rocksdb_work/compaction_cpu_seconds"), 0) << json;
  EXPECT_GE(Number(doc, "/rocksdb_work/write_amplification"), 1) << json;
  EXPECT_GE(Number(doc, "/records_delivered"), Number(doc, "/lists_published")) << json;
  // No restart, and far fewer records than the publisher's in-memory queue holds: every record
  // was handed over in memory, none read back from the store.
  EXPECT_EQ(Number(doc, "/outbox_read_back"), 0) << json;
  // Re-fits against ingestion: the first segment model is fitted once min_customers_for_fit
  // customers are seen; the time a re-fit ran is part of the run.
  EXPECT_GE(Number(doc, "/refits/segment"), 1) << json;
  EXPECT_GE(Number(doc, "/refits/als"), 0) << json;
  const double running = Number(doc, "/refits/running_seconds");
  EXPECT_GE(running, 0) << json;
  EXPECT_LE(running, Number(doc, "/wall_seconds") + 0.05) << json;
  EXPECT_GE(Number(doc, "/refits/events_per_second_between"), 0) << json;
  EXPECT_GE(Number(doc, "/refits/events_per_second_during"), 0) << json;
  EXPECT_LT(Number(doc, "/refits/slowdown"), 1) << json;
}

TEST(BenchCommandTest, ThroughputModeReportsTheWholeRun) {
  TempDir dir;
  ProcessResult r = RunProcess({StreamrecBinary(), "bench", "--events", "6000", "--customers",
                                "600", "--catalog-size", "60", "--partitions", "2", "--work-dir",
                                dir.path(), "--json-out", dir.File("summary.json")});
  ASSERT_TRUE(r.exited && r.exit_code == 0) << r.output;
  const std::string json = SummaryLine(r.output);
  ASSERT_NO_FATAL_FAILURE(CheckSummary(json, 6000));
  EXPECT_EQ(testing::ReadFile(dir.File("summary.json")), json + "\n");
  EXPECT_NE(json.find("\"mode\":\"throughput\""), std::string::npos);
}

TEST(BenchCommandTest, LatencyModePacesTheStream) {
  TempDir dir;
  ProcessResult r = RunProcess({StreamrecBinary(), "bench", "--mode", "latency", "--rate", "3000",
                                "--events", "4000", "--customers", "400", "--catalog-size", "60",
                                "--partitions", "2", "--warmup-seconds", "0.5", "--work-dir",
                                dir.path()});
  ASSERT_TRUE(r.exited && r.exit_code == 0) << r.output;
  const std::string json = SummaryLine(r.output);
  ASSERT_NO_FATAL_FAILURE(CheckSummary(json, 4000));
  EXPECT_NE(json.find("\"mode\":\"latency\",\"rate\":3000"), std::string::npos) << json;
  // The steady state leaves out the lists of the first half second's purchases (~1,500 of
  // 4,000 at 3,000/s): fewer lists, none slower than the slowest of all.
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  const double steady = Number(doc, "/steady_ms/lists");
  EXPECT_GT(steady, 0) << json;
  EXPECT_LT(steady, Number(doc, "/purchase_to_published_ms/lists")) << json;
  EXPECT_LE(Number(doc, "/steady_ms/p50"), Number(doc, "/steady_ms/p99")) << json;
  EXPECT_LE(Number(doc, "/steady_ms/max"), Number(doc, "/purchase_to_published_ms/max")) << json;
  EXPECT_EQ(Number(doc, "/steady_ms/warmup_seconds"), 0.5) << json;
  // Where the latency goes: every purchase passes the consumer and then its batch's start, and
  // every list its write and then its delivery, each point later than the one before it, so each
  // quantile of a point is at least the same quantile of the point before it.
  EXPECT_GT(Number(doc, "/latency_breakdown_ms/consumed/n"), 0) << json;
  EXPECT_EQ(Number(doc, "/latency_breakdown_ms/consumed/n"),
            Number(doc, "/latency_breakdown_ms/processing/n")) << json;
  EXPECT_EQ(Number(doc, "/latency_breakdown_ms/committed/n"), steady) << json;
  EXPECT_EQ(Number(doc, "/latency_breakdown_ms/published/n"), steady) << json;
  for (const char* q : {"p50", "p99"}) {
    const std::string at = std::string("/") + q;
    EXPECT_GE(Number(doc, "/latency_breakdown_ms/consumed" + at), 0) << json;
    EXPECT_LE(Number(doc, "/latency_breakdown_ms/consumed" + at),
              Number(doc, "/latency_breakdown_ms/processing" + at)) << json;
    EXPECT_LE(Number(doc, "/latency_breakdown_ms/committed" + at),
              Number(doc, "/latency_breakdown_ms/published" + at)) << json;
  }
  EXPECT_EQ(Number(doc, "/latency_breakdown_ms/published/p50"), Number(doc, "/steady_ms/p50")) << json;
  // Against the embedded broker the service's consumer waits at most 5 ms for a fetch.
  EXPECT_NE(json.find("\"consumer_fetch_wait_ms\":\"5\""), std::string::npos) << json;
}

// The kafka ceiling: the stream produced into the embedded cluster and consumed back whole.
TEST(BenchCommandTest, KafkaModeReportsProduceAndConsumeRates) {
  TempDir dir;
  ProcessResult r = RunProcess({StreamrecBinary(), "bench", "--mode", "kafka", "--events", "2000",
                                "--customers", "200", "--catalog-size", "60", "--partitions", "2",
                                "--work-dir", dir.path(), "--json-out", dir.File("summary.json")});
  ASSERT_TRUE(r.exited && r.exit_code == 0) << r.output;
  const std::string json = SummaryLine(r.output);
  EXPECT_EQ(testing::ReadFile(dir.File("summary.json")), json + "\n");
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  EXPECT_NE(json.find("\"mode\":\"kafka\""), std::string::npos) << json;
  EXPECT_EQ(Number(doc, "/events"), 2000) << json;
  EXPECT_EQ(Number(doc, "/partitions"), 2) << json;  // 2,000 records fit in one partition
  for (const char* field :
       {"/record_bytes", "/bytes_per_record", "/produce_seconds", "/produce_events_per_second",
        "/consume_seconds", "/consume_events_per_second", "/consumed_bytes"}) {
    EXPECT_GT(Number(doc, field), 0) << field << " " << json;
  }
  // Both rates are over the records after the first (which waits for the connection, or for
  // the first fetch), timed from the first to the last.
  for (const char* phase : {"produce", "consume"}) {
    const std::string p = std::string("/") + phase;
    EXPECT_NEAR(Number(doc, (p + "_events_per_second").c_str()) *
                    Number(doc, (p + "_seconds").c_str()),
                1999, 0.01)
        << phase << " " << json;
  }
  // Every byte produced came back.
  EXPECT_EQ(Number(doc, "/consumed_bytes"), Number(doc, "/record_bytes")) << json;
}

// The rocksdb ceiling: the three phases on a fresh store, every customer found once written.
TEST(BenchCommandTest, RocksDbModeReportsEveryPhase) {
  TempDir dir;
  ProcessResult r = RunProcess({StreamrecBinary(), "bench", "--mode", "rocksdb", "--events", "2000",
                                "--customers", "200", "--work-dir", dir.path()});
  ASSERT_TRUE(r.exited && r.exit_code == 0) << r.output;
  const std::string json = SummaryLine(r.output);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  EXPECT_NE(json.find("\"mode\":\"rocksdb\""), std::string::npos) << json;
  EXPECT_NEAR(Number(doc, "/value_bytes"), 300, 60) << json;
  EXPECT_NE(json.find("\"compression\":\"lz4\""), std::string::npos) << json;  // the default
  // max(events, customers) Puts in batches of 1000; one Get+Put per event; events/1000
  // MultiGets of 1000 keys.
  const std::pair<const char*, double> phases[] = {
      {"write_batch", 2000}, {"rmw", 2000}, {"multiget", 2000}};
  for (const auto& [phase, ops] : phases) {
    const std::string p = std::string("/") + phase;
    EXPECT_EQ(Number(doc, (p + "/ops").c_str()), ops) << phase << " " << json;
    for (const char* field : {"/calls", "/seconds", "/ops_per_second", "/calls_per_second",
                              "/call_us/p50", "/call_us/p99"}) {
      EXPECT_GT(Number(doc, (p + field).c_str()), 0) << phase << field << " " << json;
    }
    EXPECT_LE(Number(doc, (p + "/call_us/p50").c_str()), Number(doc, (p + "/call_us/p99").c_str()))
        << phase << " " << json;
  }
  EXPECT_EQ(Number(doc, "/write_batch/calls"), 2) << json;
  EXPECT_EQ(Number(doc, "/multiget/calls"), 2) << json;
  EXPECT_EQ(Number(doc, "/rmw_found_share"), 1) << json;
  EXPECT_EQ(Number(doc, "/multiget_found_share"), 1) << json;
}

TEST(BenchCommandTest, BadModeIsAUsageError) {
  ProcessResult r = RunProcess({StreamrecBinary(), "bench", "--mode", "fast"});
  EXPECT_TRUE(r.exited && r.exit_code == 2) << r.output;
  EXPECT_NE(r.output.find("--mode"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace streamrec
