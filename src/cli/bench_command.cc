// streamrec bench: the whole service on an embedded Kafka cluster, measured end to end. A
// generated telco stream is produced into the cluster (paced in latency mode, as fast as the
// service takes it in throughput mode), the service applies it with its exactly-once state and
// publishes every changed list, and one JSON summary says how fast, how fresh and how big.
//
// Two more modes measure the ceilings under the service with the same stream, cluster and
// summary: kafka (the stream produced into the embedded cluster and consumed back, nothing
// else) and rocksdb (a fresh state store alone: read-modify-writes, write batches, multi-gets).
#include <librdkafka/rdkafkacpp.h>
#include <prometheus/registry.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "cli/common.h"
#include "json_writer.h"
#include "kafka/changelog_restore.h"
#include "kafka/kafka_conf.h"
#include "kafka/mock_cluster.h"
#include "kafka/purchase_producer.h"
#include "kafka/standby.h"
#include "streamrec/logger.h"
#include "streamrec/clock.h"
#include "streamrec/features.h"
#include "streamrec/generator.h"
#include "streamrec/service.h"
#include "streamrec/state_store.h"
#include "streamrec/time_util.h"

namespace streamrec::cli {

namespace {

// The process's peak RSS is measured from here on: Linux resets the high-water mark (VmHWM)
// when "5" is written to /proc/self/clear_refs. The bench calls it once the stream is generated:
// the generator holds the whole stream in memory (7 GB for 10M events), which is not the
// service's. False when the kernel refuses; the peak then counts from the start.
bool ResetPeakRss() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.flush();
  return static_cast<bool>(clear);
}

// VmHWM of /proc/self/status in bytes (getrusage's ru_maxrss where it cannot be read).
uint64_t PeakRssBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024;
}

double Seconds(std::chrono::steady_clock::time_point from, std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// Events applied and time spent while a background re-fit ran and while none did, from
// successive ServiceStats samples.
struct RefitSplit {
  double refit_seconds = 0, free_seconds = 0;
  uint64_t refit_events = 0, free_events = 0;
  bool refitting = false;  // at the previous sample
  uint64_t events = 0;
  std::chrono::steady_clock::time_point at{};  // the previous sample; none yet when default

  void Sample(std::chrono::steady_clock::time_point now, const ServiceStats& st) {
    if (at != std::chrono::steady_clock::time_point{}) {
      const double dt = Seconds(at, now);
      const uint64_t de = st.events - std::min(events, st.events);
      (refitting ? refit_seconds : free_seconds) += dt;
      (refitting ? refit_events : free_events) += de;
    }
    refitting = st.segment_refit_running || st.als_refit_running;
    events = st.events;
    at = now;
  }
};

// The q-quantile (0..1) of `v` (reordered); 0 when empty.
double Quantile(std::vector<float>* v, double q) {
  if (v->empty()) return 0;
  const size_t i = std::min(v->size() - 1, static_cast<size_t>(q * static_cast<double>(v->size())));
  std::nth_element(v->begin(), v->begin() + static_cast<std::ptrdiff_t>(i), v->end());
  return (*v)[i];
}

int Fail(const char* what, const Status& s) {
  std::fprintf(stderr, "streamrec bench: %s: %s\n", what, s.ToString().c_str());
  return kExitFailure;
}

// The generated telco stream of a parameter set, kept in the work directory between runs.
struct BenchStream {
  TelcoGeneratorOptions generator;
  std::string events;   // canonical CSV, gzip
  std::string catalog;  // the package catalogue it sells from
};

TelcoGeneratorOptions GeneratorOptions(const BenchArgs& args) {
  TelcoGeneratorOptions gen;
  gen.customers = args.customers;
  gen.events = args.events;
  gen.seed = args.seed;
  gen.catalog_size = args.catalog_size;
  return gen;
}

// Generates the stream unless the work directory holds it already.
StatusOr<BenchStream> PrepareStream(const BenchArgs& args, const std::string& dir) {
  BenchStream stream;
  stream.generator = GeneratorOptions(args);
  const TelcoGeneratorOptions& gen = stream.generator;
  const std::string stem = dir + "/telco-c" + std::to_string(args.customers) + "-e" +
                           std::to_string(args.events) + "-k" + std::to_string(args.catalog_size) +
                           "-s" + std::to_string(args.seed);
  stream.events = stem + ".csv.gz";
  stream.catalog = stem + ".catalog.csv";
  if (std::filesystem::exists(stream.events) && std::filesystem::exists(stream.catalog)) {
    return stream;
  }
  std::fprintf(stderr, "bench: generating %llu purchases of %llu subscribers -> %s\n",
               static_cast<unsigned long long>(gen.events),
               static_cast<unsigned long long>(gen.customers), stream.events.c_str());
  Status s = GenerateTelcoFeed(
      gen, stream.events + ".tmp.csv.gz", stream.catalog, [](uint64_t done, uint64_t total) {
        std::fprintf(stderr, "\r  %llu / %llu", static_cast<unsigned long long>(done),
                     static_cast<unsigned long long>(total));
      });
  std::fprintf(stderr, "\n");
  if (!s.ok()) return s;
  std::error_code ec;
  std::filesystem::rename(stream.events + ".tmp.csv.gz", stream.events, ec);
  if (ec) return Status::IOError(ec.message());
  return stream;
}

// The service consumer's fetch.wait.max.ms against the embedded broker (RunServiceBench).
constexpr int kBenchFetchWaitMs = 5;

// The embedded cluster (one broker on 127.0.0.1) with the service's topics, `partitions` each;
// points config->kafka.brokers at it.
StatusOr<std::unique_ptr<MockKafkaCluster>> StartCluster(int partitions, Config* config) {
  auto cluster = MockKafkaCluster::Start(1);
  if (!cluster.ok()) return cluster.status();
  STREAMREC_RETURN_IF_ERROR(CreateServiceTopics(cluster->get(), *config, partitions));
  config->kafka.brokers = (*cluster)->bootstrap();
  return cluster;
}

// Ends every mode's summary (the machine's cores, the closing brace), prints it on stdout and
// writes it to --json-out.
int EmitSummary(const BenchArgs& args, JsonWriter* w) {
  w->Key("cores").Uint(std::thread::hardware_concurrency());
  w->EndObject();
  const std::string json = w->Release();
  std::printf("%s\n", json.c_str());
  if (!args.json_out.empty()) {
    std::ofstream out(args.json_out);
    out << json << "\n";
    if (!out) {
      std::fprintf(stderr, "streamrec bench: cannot write %s\n", args.json_out.c_str());
      return kExitFailure;
    }
  }
  return kExitOk;
}

// --mode throughput | latency: the whole service.
int RunServiceBench(const BenchArgs& args, const std::string& dir, Config config) {
  const bool latency_mode = args.mode == "latency";
  auto stream = PrepareStream(args, dir);
  if (!stream.ok()) return Fail("generator", stream.status());
  const std::string& events = stream->events;
  const std::string& catalog = stream->catalog;
  const size_t catalog_items = TelcoCatalog(stream->generator).size();
  const bool peak_from_here = ResetPeakRss();

  // 2. The embedded cluster and the service, without the metrics and API servers (their ports
  //    could be taken; the metrics are still recorded).
  auto cluster = StartCluster(args.partitions, &config);
  if (!cluster.ok()) return Fail("embedded Kafka", cluster.status());
  // The embedded broker (librdkafka's mock) holds a fetch that found nothing for the whole
  // fetch.wait.max.ms, even when records arrive meanwhile; a real broker answers as soon as
  // they do. With the service's 50 ms, every purchase would wait ~25 ms more than against a
  // real broker, so the service's consumer asks for 5 ms unless the configuration says otherwise.
  config.kafka.consumer.emplace("fetch.wait.max.ms", std::to_string(kBenchFetchWaitMs));
  config.input.format = "protobuf";
  config.state.path = dir + "/state";
  config.catalog_path = catalog;
  config.metrics.listen.clear();
  config.http.listen.clear();
  ServiceOptions options;
  options.config = config;
  auto registry = std::make_shared<prometheus::Registry>();
  options.registry = registry;
  options.logger = NewStderrLogger(LogLevel::kWarn);
  std::mutex latency_mu;
  std::vector<float> latency_ms;
  latency_ms.reserve(static_cast<size_t>(std::min<uint64_t>(args.events, 50000000)));
  std::vector<int64_t> source_ms;  // each latency's purchase time, for the steady state
  source_ms.reserve(latency_ms.capacity());
  std::atomic<uint64_t> lists{0};
  options.on_delivered = [&](const v1::OutboxRecord& record) {
    if (record.payload_case() != v1::OutboxRecord::kList) return;
    ++lists;
    if (record.source_time_ms() <= 0) return;  // a background refresh: no purchase behind it
    const float ms = static_cast<float>(WallClockMillis() - record.source_time_ms());
    std::lock_guard<std::mutex> lock(latency_mu);
    latency_ms.push_back(ms);
    source_ms.push_back(record.source_time_ms());
  };
  // Latency mode: where the latency goes. Each purchase's latency at the points before
  // delivery (Kafka in, then the batch and its write), kept only when paced: at full speed the
  // backlog dominates every point, and 12 bytes a record would weigh on the peak RSS.
  struct TracePoint {
    const char* name;
    std::vector<float> ms;
    std::vector<int64_t> source_ms;
  };
  std::array<TracePoint, 3> trace = {
      TracePoint{"consumed", {}, {}}, TracePoint{"processing", {}, {}}, TracePoint{"committed", {}, {}}};
  if (latency_mode) {
    options.on_trace = [&](const char* point, int64_t source_ms, int64_t now_ms) {
      for (TracePoint& t : trace) {
        if (std::strcmp(point, t.name) != 0) continue;
        std::lock_guard<std::mutex> lock(latency_mu);
        t.ms.push_back(static_cast<float>(now_ms - source_ms));
        t.source_ms.push_back(source_ms);
      }
    };
  }
  const auto started = std::chrono::steady_clock::now();
  auto service = Service::Create(std::move(options));
  if (!service.ok()) return Fail("service", service.status());
  std::atomic<bool> stop_service{false};
  Status run_status;
  std::thread service_thread([&] { run_status = (*service)->Run(stop_service); });

  // 3. The producer starts once the group has assigned the partitions (records produced during
  //    the join would wait for it and count as latency), paced at --rate, or as fast as the
  //    service consumes (at most max_ahead events ahead of it, within what the embedded cluster
  //    keeps per partition).
  const bool assigned = (*service)->WaitFor(
      [](const ServiceStats& st) { return st.ready || (!st.running && st.batches > 0); }, 60000);
  if (!assigned) {
    stop_service.store(true);
    service_thread.join();
    return Fail("service", Status::IOError("no partition assignment within 60 s"));
  }
  std::atomic<bool> stop_feed{false};
  StatusOr<uint64_t> produced = Status::Aborted("not started");
  CsvFeedOptions feed;
  feed.brokers = config.kafka.brokers;
  feed.topic = config.kafka.input_topic;
  feed.csv_path = events;
  feed.rate = latency_mode ? args.rate : 0;
  feed.consumed = [&] { return (*service)->stats().records; };
  feed.max_ahead = 20000 * static_cast<uint64_t>(args.partitions);
  std::thread feed_thread([&] { produced = ProduceCsvFeed(feed, stop_feed, SystemClock()); });
  std::fprintf(stderr, "bench: %s mode, %llu events, %d partitions%s\n", args.mode.c_str(),
               static_cast<unsigned long long>(args.events), args.partitions,
               latency_mode ? (", paced at " + std::to_string(static_cast<long>(args.rate)) + " events/s").c_str() : "");

  // 4. From the first record consumed until every event is applied and every output record
  //    acknowledged.
  std::chrono::steady_clock::time_point first{}, done{};
  auto last_print = started;
  bool finished = false;
  // Ingestion while a background re-fit (segments or ALS) runs, against while none does (issue
  // 7: a re-fit may slow ingestion by at most 30 %). Each sample interval's events and time go
  // to the side the previous sample saw.
  RefitSplit split;
  while (!StopFlag().load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const ServiceStats st = (*service)->stats();
    const auto now = std::chrono::steady_clock::now();
    if (first == std::chrono::steady_clock::time_point{} && st.records > 0) first = now;
    if (first != std::chrono::steady_clock::time_point{}) split.Sample(now, st);
    if (!st.running && st.batches > 0) break;
    if (st.records >= args.events && st.in_flight == 0 && st.delivered >= st.outbox_written) {
      done = now;
      finished = true;
      break;
    }
    if (Seconds(last_print, now) >= 2) {
      last_print = now;
      std::fprintf(stderr, "  %llu events applied (%.0f/s), %llu records delivered\n",
                   static_cast<unsigned long long>(st.events),
                   first == std::chrono::steady_clock::time_point{} ? 0.0 : st.events / std::max(1e-9, Seconds(first, now)),
                   static_cast<unsigned long long>(st.delivered));
    }
  }
  stop_feed.store(true);
  feed_thread.join();
  stop_service.store(true);
  service_thread.join();
  const ServiceStats st = (*service)->stats();
  service->reset();
  if (!run_status.ok()) return Fail("service", run_status);
  if (!produced.ok() && finished) return Fail("feed producer", produced.status());
  if (!finished) {
    std::fprintf(stderr, "streamrec bench: stopped before the stream was processed\n");
    return kExitFailure;
  }
  const uint64_t peak_rss = PeakRssBytes();

  // 5. The state's size after a full compaction.
  auto store = OpenRocksStateStore(config.state);
  if (!store.ok()) return Fail("state", store.status());
  uint64_t customers = 0;
  Status s = (*store)->Scan(Column::kCustomers, "", [&](std::string_view, std::string_view) {
    ++customers;
    return true;
  });
  if (!s.ok()) return Fail("state", s);
  // Not part of the service's work: a profile of the whole bench shows it as RocksDB's
  // compaction thread busy after the stream (zstd over every byte of state).
  const auto compaction_start = std::chrono::steady_clock::now();
  s = (*store)->CompactAll();
  if (!s.ok()) return Fail("compaction", s);
  const double final_compaction_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - compaction_start).count();
  const uint64_t bytes = (*store)->ApproximateSize();
  store->reset();

  // 6. With a changelog (kafka.changelog_topic): every partition restored from it into an empty
  //    store, as a new instance would. (The embedded cluster keeps only ~5 MiB per partition,
  //    so a long run's changelog has lost its start: this measures the rate, not completeness.)
  // Every partition restored into `store` (from its standby copy first with `use_copy`): the
  // sums of the restores' figures.
  auto restore_all = [&](StateStore* store, bool use_copy) -> StatusOr<ChangelogRestoreStats> {
    ChangelogRestoreStats total;
    for (int p = 0; p < args.partitions; ++p) {
      ChangelogRestoreOptions restore;
      restore.source_name = "kafka:" + config.kafka.input_topic;
      restore.partition = static_cast<uint32_t>(p);
      restore.use_standby_copy = use_copy;
      auto one = RestoreFromChangelog(config.kafka, restore, store);
      if (!one.ok()) return one.status();
      total.records += one->records;
      total.standby_records += one->standby_records;
      total.states += one->states;
      total.seconds += one->seconds;
    }
    return total;
  };
  // An empty store in `dir`/`name`, with the service's options.
  auto fresh_store = [&](const std::string& name) {
    StoreOptions options = config.state;
    options.path = dir + "/" + name;
    std::error_code ec;
    std::filesystem::remove_all(options.path, ec);
    return OpenRocksStateStore(options);
  };
  ChangelogRestoreStats restore_total;
  if (!config.kafka.changelog_topic.empty()) {
    auto target = fresh_store("restored");
    if (!target.ok()) return Fail("restore state", target.status());
    std::fprintf(stderr, "bench: restoring %d partitions from the changelog\n", args.partitions);
    auto restored_all = restore_all(target->get(), /*use_copy=*/false);
    if (!restored_all.ok()) return Fail("restore", restored_all.status());
    restore_total = *restored_all;
  }
  // 7. Standby replicas: every changelog partition tailed into a standby copy (as an instance
  //    with kafka.standby_replicas does for the partitions it does not own), then each partition
  //    restored from its copy, as at a failover (the tail past the copy is empty here).
  double standby_copy_seconds = 0;
  uint64_t standby_copy_records = 0;
  ChangelogRestoreStats failover;
  if (!config.kafka.changelog_topic.empty()) {
    auto target = fresh_store("standby");
    if (!target.ok()) return Fail("standby state", target.status());
    std::fprintf(stderr, "bench: copying %d changelog partitions into standby copies\n",
                 args.partitions);
    const auto copy_start = std::chrono::steady_clock::now();
    {
      auto standby = StandbyReplicas::Start(config.kafka, target->get(), NewNullLogger());
      if (!standby.ok()) return Fail("standby", standby.status());
      (*standby)->SetOwned({});
      if (!(*standby)->WaitCaughtUp(600000)) {
        return Fail("standby", Status::IOError("the copies did not catch up within 600 s"));
      }
      standby_copy_records = (*standby)->stats().records;
    }
    standby_copy_seconds = Seconds(copy_start, std::chrono::steady_clock::now());
    auto from_copies = restore_all(target->get(), /*use_copy=*/true);
    if (!from_copies.ok()) return Fail("restore from standby copy", from_copies.status());
    failover = *from_copies;
  }

  const double wall = Seconds(first, done);
  std::vector<float> lat;
  std::vector<int64_t> lat_source;
  {
    std::lock_guard<std::mutex> lock(latency_mu);
    lat.swap(latency_ms);
    lat_source.swap(source_ms);
  }
  // The steady state: purchases produced after the warm-up (counted from the first purchase).
  int64_t steady_from_ms = 0;
  if (!lat_source.empty()) {
    const int64_t first_ms = *std::min_element(lat_source.begin(), lat_source.end());
    steady_from_ms = first_ms + static_cast<int64_t>(args.warmup_seconds * 1000);
  }
  auto steady_of = [&](const std::vector<float>& ms, const std::vector<int64_t>& source) {
    std::vector<float> out;
    if (steady_from_ms == 0) return out;
    for (size_t i = 0; i < ms.size(); ++i) {
      if (source[i] >= steady_from_ms) out.push_back(ms[i]);
    }
    return out;
  };
  std::vector<float> steady = steady_of(lat, lat_source);
  const double steady_p50 = Quantile(&steady, 0.50), steady_p99 = Quantile(&steady, 0.99);
  const double steady_max = steady.empty() ? 0 : *std::max_element(steady.begin(), steady.end());
  const double p50 = Quantile(&lat, 0.50), p99 = Quantile(&lat, 0.99);
  const double max = lat.empty() ? 0 : *std::max_element(lat.begin(), lat.end());
  JsonWriter w;
  w.BeginObject();
  w.Key("mode").String(args.mode);
  if (latency_mode) w.Key("rate").Double(args.rate);
  w.Key("events").Uint(st.events);
  w.Key("customers").Uint(customers);
  w.Key("catalog_items").Uint(catalog_items);
  w.Key("partitions").Int(args.partitions);
  w.Key("wall_seconds").Double(wall);
  w.Key("events_per_second").Double(wall > 0 ? st.events / wall : 0);
  w.Key("group_join_seconds").Double(Seconds(started, first));
  w.Key("purchase_to_published_ms").BeginObject()
      .Key("p50").Double(p50).Key("p99").Double(p99).Key("max").Double(max)
      .Key("lists").Uint(lat.size()).EndObject();
  w.Key("consumer_fetch_wait_ms").String(config.kafka.consumer["fetch.wait.max.ms"]);
  w.Key("steady_ms").BeginObject()
      .Key("p50").Double(steady_p50).Key("p99").Double(steady_p99).Key("max").Double(steady_max)
      .Key("lists").Uint(steady.size()).Key("warmup_seconds").Double(args.warmup_seconds)
      .EndObject();
  if (latency_mode) {
    // The steady state's latency at each point: consumed (Kafka in: the feed's producer, the
    // broker, the fetch), processing (+ waiting for the batch to close), committed (+ the
    // batch's work and its write), published (+ producing the list and its acknowledgement).
    // Quantiles of each point, not of the differences between points.
    std::lock_guard<std::mutex> lock(latency_mu);
    w.Key("latency_breakdown_ms").BeginObject();
    for (const TracePoint& t : trace) {
      std::vector<float> at = steady_of(t.ms, t.source_ms);
      w.Key(t.name).BeginObject()
          .Key("p50").Double(Quantile(&at, 0.50)).Key("p99").Double(Quantile(&at, 0.99))
          .Key("n").Uint(at.size()).EndObject();
    }
    w.Key("published").BeginObject()
        .Key("p50").Double(steady_p50).Key("p99").Double(steady_p99)
        .Key("n").Uint(steady.size()).EndObject();
    w.EndObject();
  }
  // The service's metrics as it left them, read below for the stages, the state cache and
  // RocksDB's work.
  const std::vector<prometheus::MetricFamily> families = registry->Collect();
  // Where the batches' time went: the stage histograms' sums.
  w.Key("stage_seconds").BeginObject();
  for (const prometheus::MetricFamily& family : families) {
    if (family.name != "streamrec_stage_duration_seconds") continue;
    for (const prometheus::ClientMetric& m : family.metric) {
      for (const auto& label : m.label) {
        if (label.name == "stage") w.Key(label.value).Double(m.histogram.sample_sum);
      }
    }
  }
  w.EndObject();
  // The state cache's hit rate over the run.
  double hits = 0, lookups = 0;
  for (const prometheus::MetricFamily& family : families) {
    if (family.name != "streamrec_state_cache_lookups_total") continue;
    for (const prometheus::ClientMetric& m : family.metric) {
      lookups += m.counter.value;
      for (const auto& label : m.label) {
        if (label.name == "result" && label.value == "hit") hits += m.counter.value;
      }
    }
  }
  w.Key("state_cache_hit_rate").Double(lookups > 0 ? hits / lookups : 0);
  {
    // RocksDB's own work over the run (the store's last figures before it closed): compaction
    // runs on its own threads, so its cost shows as CPU, not in the stages.
    std::map<std::string, double> gauge;
    for (const prometheus::MetricFamily& family : families) {
      if (family.name.rfind("streamrec_rocksdb_", 0) != 0 || family.metric.empty()) continue;
      gauge[family.name.substr(std::strlen("streamrec_rocksdb_"))] = family.metric[0].gauge.value;
    }
    constexpr double kMiB = 1024.0 * 1024.0;
    const double flushed = gauge["flush_written_bytes"];
    const double compacted = gauge["compaction_written_bytes"];
    w.Key("rocksdb_work").BeginObject()
        .Key("flushed_mib").Double(flushed / kMiB)
        .Key("compaction_written_mib").Double(compacted / kMiB)
        .Key("compaction_read_mib").Double(gauge["compaction_read_bytes"] / kMiB)
        .Key("compaction_cpu_seconds").Double(gauge["compaction_cpu_micros"] / 1e6)
        .Key("write_amplification").Double(flushed > 0 ? (flushed + compacted) / flushed : 0)
        .EndObject();
  }
  {
    const double during = split.refit_seconds > 0 ? split.refit_events / split.refit_seconds : 0;
    const double between = split.free_seconds > 0 ? split.free_events / split.free_seconds : 0;
    w.Key("refits").BeginObject()
        .Key("segment").Uint(st.segment_refits)
        .Key("als").Uint(st.als_refits)
        .Key("running_seconds").Double(split.refit_seconds)
        .Key("events_per_second_during").Double(during)
        .Key("events_per_second_between").Double(between)
        .Key("slowdown").Double(during > 0 && between > 0 ? 1 - during / between : 0)
        .EndObject();
  }
  w.Key("peak_rss_bytes").Uint(peak_rss);
  // Whether the peak leaves the stream's generation out (see ResetPeakRss).
  w.Key("peak_rss_since_generated").Bool(peak_from_here);
  w.Key("rocksdb_bytes").Uint(bytes);
  w.Key("rocksdb_bytes_per_customer").Double(customers > 0 ? static_cast<double>(bytes) / customers : 0);
  w.Key("final_compaction_seconds").Double(final_compaction_seconds);
  w.Key("lists_published").Uint(st.lists_published);
  w.Key("records_delivered").Uint(st.delivered);
  w.Key("outbox_read_back").Uint(st.outbox_read_back);
  w.Key("batches").Uint(st.batches);
  if (!config.kafka.changelog_topic.empty()) {
    w.Key("changelog_restore").BeginObject()
        .Key("records").Uint(restore_total.records)
        .Key("customer_states").Uint(restore_total.states)
        .Key("seconds").Double(restore_total.seconds)
        .Key("records_per_second")
        .Double(restore_total.seconds > 0 ? restore_total.records / restore_total.seconds : 0)
        .EndObject();
    w.Key("standby").BeginObject()
        .Key("copied_records").Uint(standby_copy_records)
        .Key("copy_seconds").Double(standby_copy_seconds)
        .Key("failover_records_from_copies").Uint(failover.standby_records)
        .Key("failover_records_from_kafka").Uint(failover.records)
        .Key("failover_seconds").Double(failover.seconds)
        .Key("failover_records_per_second")
        .Double(failover.seconds > 0 ? (failover.standby_records + failover.records) / failover.seconds : 0)
        .EndObject();
  }
  return EmitSummary(args, &w);
}

// A wall-clock stopwatch of one phase's calls: their total and each call's duration.
class CallTimes {
 public:
  void Start() { start_ = std::chrono::steady_clock::now(); }
  void Stop() {
    const double s = Seconds(start_, std::chrono::steady_clock::now());
    seconds_ += s;
    us_.push_back(static_cast<float>(s * 1e6));
  }
  size_t calls() const { return us_.size(); }
  // The phase as JSON: `ops` done in calls() calls, ops/s and calls/s over the calls' total
  // time, and the calls' p50/p99/max in microseconds.
  void Write(uint64_t ops, JsonWriter* w) {
    const double max = us_.empty() ? 0 : *std::max_element(us_.begin(), us_.end());
    w->BeginObject();
    w->Key("ops").Uint(ops);
    w->Key("calls").Uint(us_.size());
    w->Key("seconds").Double(seconds_);
    w->Key("ops_per_second").Double(seconds_ > 0 ? ops / seconds_ : 0);
    w->Key("calls_per_second").Double(seconds_ > 0 ? us_.size() / seconds_ : 0);
    w->Key("call_us").BeginObject()
        .Key("p50").Double(Quantile(&us_, 0.50)).Key("p99").Double(Quantile(&us_, 0.99))
        .Key("max").Double(max).EndObject();
    w->EndObject();
  }

 private:
  std::chrono::steady_clock::time_point start_;
  double seconds_ = 0;
  std::vector<float> us_;
};

// librdkafka 2.0.2's mock cluster keeps the last 5 MiB of record batches per partition
// (rdkafka_mock.c) and drops older ones. The kafka mode produces the whole stream before it
// consumes, so it spreads it over enough partitions to keep at most this much in each (the rest
// is room for an uneven spread of the keys). kRecordOverheadBytes: a v2 record's framing.
constexpr uint64_t kMockPartitionBudgetBytes = 4ULL << 20;
constexpr uint64_t kRecordOverheadBytes = 12;

// --mode kafka: the stream, encoded as the service reads it, produced into the embedded cluster
// by the feed's producer (PurchaseProducer: idempotent, linger.ms 10, kafka.producer.*) and
// consumed back by a consumer tuned for throughput, records counted and dropped. The records are
// decoded from the CSV before the clock starts: what is timed is Kafka, not the CSV reader.
int RunKafkaCeiling(const BenchArgs& args, const std::string& dir, Config config) {
  auto stream = PrepareStream(args, dir);
  if (!stream.ok()) return Fail("generator", stream.status());
  auto reader = CsvEventReader::Open(stream->events);
  if (!reader.ok()) return Fail("stream", reader.status());
  std::string keys, values;  // every record's key and value, back to back
  std::vector<size_t> key_end, value_end;
  PurchaseEvent event;
  while ((*reader)->Next(&event)) {
    keys += event.customer_id;
    key_end.push_back(keys.size());
    values += EncodePurchaseEvent(event);
    value_end.push_back(values.size());
  }
  if (!(*reader)->status().ok()) return Fail("stream", (*reader)->status());
  const uint64_t n = key_end.size();
  if (n < 2) {
    return Fail("stream", Status::InvalidArgument("the kafka mode needs at least 2 events, the "
                                                  "stream has " +
                                                  std::to_string(n)));
  }
  const uint64_t record_bytes = keys.size() + values.size();
  const int partitions = static_cast<int>(std::max<uint64_t>(
      args.partitions, (record_bytes + n * kRecordOverheadBytes + kMockPartitionBudgetBytes - 1) /
                           kMockPartitionBudgetBytes));
  if (partitions > args.partitions) {
    std::fprintf(stderr,
                 "bench: %d partitions instead of %d: the embedded cluster keeps 5 MiB per "
                 "partition and the stream is %.1f MiB\n",
                 partitions, args.partitions, record_bytes / 1048576.0);
  }
  auto cluster = StartCluster(partitions, &config);
  if (!cluster.ok()) return Fail("embedded Kafka", cluster.status());
  const std::string& topic = config.kafka.input_topic;
  std::fprintf(stderr, "bench: kafka mode, %llu records (%.1f MiB), %d partitions\n",
               static_cast<unsigned long long>(n), record_bytes / 1048576.0, partitions);

  // 1. Produce everything, until every record is acknowledged. The first record goes alone and
  //    is not timed: it waits for the connection, the topic's metadata and the idempotent
  //    producer's id (10 ms to a second against the embedded cluster: producer_ready_ms).
  auto producer = PurchaseProducer::Create(config.kafka.brokers, topic, config.kafka.producer);
  if (!producer.ok()) return Fail("producer", producer.status());
  auto produce = [&](uint64_t i) {
    const size_t k = i == 0 ? 0 : key_end[i - 1], v = i == 0 ? 0 : value_end[i - 1];
    return (*producer)->ProduceRaw(std::string_view(keys).substr(k, key_end[i] - k),
                                   std::string_view(values).substr(v, value_end[i] - v));
  };
  const auto connect_start = std::chrono::steady_clock::now();
  Status s = produce(0);
  if (s.ok()) s = (*producer)->Flush(60000);
  if (!s.ok()) return Fail("produce", s);
  const auto produce_start = std::chrono::steady_clock::now();
  for (uint64_t i = 1; i < n && !StopFlag().load(); ++i) {
    s = produce(i);
    if (!s.ok()) return Fail("produce", s);
  }
  s = (*producer)->Flush(120000);
  if (!s.ok()) return Fail("produce", s);
  const double produce_seconds = Seconds(produce_start, std::chrono::steady_clock::now());
  producer->reset();
  if (StopFlag().load()) return Fail("produce", Status::Aborted("stopped"));

  // 2. Consume it back: every partition assigned from its beginning (no group join), a deep
  //    local queue and large fetches; kafka.consumer.* applies on top, as in the service. Timed
  //    from the first record to the last, like the throughput mode (the first fetch is
  //    reported apart: consume_first_record_ms).
  std::map<std::string, std::string> props = {
      {"bootstrap.servers", config.kafka.brokers},
      {"client.id", "streamrec-bench"},
      {"group.id", config.kafka.group_id + "-bench"},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"enable.partition.eof", "false"},
      {"queued.min.messages", "1000000"},
      {"max.partition.fetch.bytes", "8388608"},
      // A fetch the broker cannot fill at once waits this long (the default 500 ms delayed the
      // first record by that much against the embedded cluster).
      {"fetch.wait.max.ms", "10"},
  };
  for (const auto& [k, v] : config.kafka.consumer) props[k] = v;
  auto conf = MakeKafkaConf(props, "consumer");
  if (!conf.ok()) return Fail("consumer", conf.status());
  std::string error;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(
      RdKafka::KafkaConsumer::create(conf->get(), error));
  if (!consumer) return Fail("consumer", Status::IOError(error));
  // Nothing may have been dropped: every partition still starts at offset 0, and the ends add
  // up to the records produced (the idempotent producer wrote none twice).
  int64_t stored = 0;
  for (int p = 0; p < partitions; ++p) {
    int64_t low = 0, high = 0;
    RdKafka::ErrorCode err = consumer->query_watermark_offsets(topic, p, &low, &high, 10000);
    if (err != RdKafka::ERR_NO_ERROR) {
      return Fail("consumer", Status::IOError("offsets of partition " + std::to_string(p) + ": " +
                                              RdKafka::err2str(err)));
    }
    if (low != 0) {
      return Fail("embedded Kafka",
                  Status::IOError("partition " + std::to_string(p) + " dropped its first " +
                                  std::to_string(low) +
                                  " records (over 5 MiB): run with more --partitions"));
    }
    stored += high;
  }
  if (stored != static_cast<int64_t>(n)) {
    return Fail("embedded Kafka", Status::IOError("the topic holds " + std::to_string(stored) +
                                                  " records, " + std::to_string(n) + " produced"));
  }
  std::vector<RdKafka::TopicPartition*> assignment;
  for (int p = 0; p < partitions; ++p) {
    assignment.push_back(
        RdKafka::TopicPartition::create(topic, p, RdKafka::Topic::OFFSET_BEGINNING));
  }
  const auto consume_start = std::chrono::steady_clock::now();
  RdKafka::ErrorCode err = consumer->assign(assignment);
  RdKafka::TopicPartition::destroy(assignment);
  if (err != RdKafka::ERR_NO_ERROR) {
    return Fail("consumer", Status::IOError("assign: " + RdKafka::err2str(err)));
  }
  uint64_t consumed = 0, consumed_bytes = 0, consumed_at_check = 0;
  std::chrono::steady_clock::time_point first_record = consume_start;
  auto last_progress = consume_start;
  while (consumed < n && !StopFlag().load()) {
    std::unique_ptr<RdKafka::Message> msg(consumer->consume(100));
    if (msg->err() == RdKafka::ERR_NO_ERROR) {
      if (consumed++ == 0) first_record = std::chrono::steady_clock::now();
      consumed_bytes += msg->len() + msg->key_len();
    } else if (msg->err() == RdKafka::ERR__TIMED_OUT) {
      // A stall: no record for 30 s while some are missing.
      const auto now = std::chrono::steady_clock::now();
      if (consumed != consumed_at_check) {
        consumed_at_check = consumed;
        last_progress = now;
      } else if (Seconds(last_progress, now) > 30) {
        break;
      }
    } else {
      return Fail("consume", Status::IOError(msg->errstr()));
    }
  }
  const double consume_seconds = Seconds(first_record, std::chrono::steady_clock::now());
  consumer->close();
  if (consumed < n) {
    return Fail("consume", Status::IOError("consumed " + std::to_string(consumed) + " of " +
                                           std::to_string(n) + " records"));
  }

  JsonWriter w;
  w.BeginObject();
  w.Key("mode").String(args.mode);
  w.Key("events").Uint(n);
  w.Key("customers").Uint(args.customers);
  w.Key("partitions").Int(partitions);
  w.Key("record_bytes").Uint(record_bytes);
  w.Key("bytes_per_record").Double(n > 0 ? static_cast<double>(record_bytes) / n : 0);
  w.Key("producer_ready_ms").Double(1000 * Seconds(connect_start, produce_start));
  w.Key("produce_seconds").Double(produce_seconds);
  w.Key("produce_events_per_second").Double(produce_seconds > 0 ? (n - 1) / produce_seconds : 0);
  w.Key("consume_seconds").Double(consume_seconds);
  w.Key("consume_events_per_second").Double(consume_seconds > 0 ? (n - 1) / consume_seconds : 0);
  w.Key("consume_first_record_ms").Double(1000 * Seconds(consume_start, first_record));
  w.Key("consumed_bytes").Uint(consumed_bytes);
  return EmitSummary(args, &w);
}

// The values of the rocksdb mode: encoded customer states of about `bytes`, from purchases of
// the generator's packages, so that the block compression sees what it sees in the service
// (ids, counts, times, amounts), not random bytes.
std::vector<std::string> CustomerStateValues(const TelcoGeneratorOptions& gen, size_t count,
                                             size_t bytes) {
  const Catalog catalog = TelcoCatalog(gen);
  const FeatureOptions features;
  std::mt19937_64 rng(gen.seed);
  std::vector<std::string> values;
  for (size_t i = 0; i < count; ++i) {
    PurchaseEvent e;
    e.customer_id = "62811" + std::to_string(1000000 + i);
    e.event_time_ms = gen.start_time_ms;
    e.currency = "IDR";
    CustomerState state = NewCustomerState(e.customer_id);
    std::string value = EncodeState(state);
    while (value.size() < bytes) {
      const CatalogItem& item = catalog.items()[rng() % catalog.size()];
      e.item_id = item.item_id;
      e.event_time_ms += static_cast<int64_t>(rng() % (7 * 86400)) * 1000;
      e.unit_price = item.price;
      e.channel = item.channels.empty() ? "app" : item.channels[rng() % item.channels.size()];
      ApplyEvent(features, e, &item, &state);
      std::string next = EncodeState(state);
      if (next.size() >= bytes && next.size() - bytes > bytes - value.size()) break;  // closer
      value = std::move(next);
    }
    values.push_back(std::move(value));
  }
  return values;
}

// The customers column key of customer `c` of the rocksdb mode (an MSISDN like the
// generator's, partitioned like the service's keys).
std::string CustomerKey(uint64_t c, int partitions) {
  return PartitionKey(static_cast<uint32_t>(c % partitions),
                      "62811" + std::to_string(10000000 + c));
}

constexpr size_t kStateValueBytes = 300;
constexpr size_t kStateValuePool = 256;
constexpr uint64_t kBatchSize = 1000;

// --mode rocksdb: a fresh state store in <work-dir>/state, opened with the configured (by
// default the service's) state.* options, driven through the StateStore interface the pipeline
// uses, one call at a time on one thread. Only the store calls are timed. In order:
//   write_batch  WriteSets of 1000 Puts of ~300-byte states, over every customer in turn, for
//                max(--events, --customers) Puts (so every customer exists afterwards);
//   rmw          --events read-modify-writes of a random customer: Get, then a WriteSet of one
//                Put of a new state;
//   multiget     --events / 1000 MultiGets of 1000 random customers.
int RunRocksDbCeiling(const BenchArgs& args, const std::string& dir, Config config) {
  config.state.path = dir + "/state";
  const std::vector<std::string> states =
      CustomerStateValues(GeneratorOptions(args), kStateValuePool, kStateValueBytes);
  double value_bytes = 0;
  for (const std::string& v : states) value_bytes += static_cast<double>(v.size()) / states.size();
  auto store = OpenRocksStateStore(config.state);
  if (!store.ok()) return Fail("state", store.status());
  std::fprintf(stderr, "bench: rocksdb mode, %llu customers, %llu operations per phase, %s\n",
               static_cast<unsigned long long>(args.customers),
               static_cast<unsigned long long>(args.events), config.state.path.c_str());
  std::mt19937_64 rng(args.seed);
  std::uniform_int_distribution<uint64_t> customer_of(0, args.customers - 1);
  auto stopped = [] { return StopFlag().load(); };

  CallTimes batch_times;
  const uint64_t puts =
      (std::max(args.events, args.customers) + kBatchSize - 1) / kBatchSize * kBatchSize;
  WriteSet batch;
  for (uint64_t i = 0; i < puts && !stopped(); i += kBatchSize) {
    batch.Clear();
    for (uint64_t j = i; j < i + kBatchSize; ++j) {
      batch.Put(Column::kCustomers, CustomerKey(j % args.customers, args.partitions),
                states[j % states.size()]);
    }
    batch_times.Start();
    Status s = (*store)->Write(batch);
    batch_times.Stop();
    if (!s.ok()) return Fail("write batch", s);
  }

  CallTimes rmw_times;
  uint64_t found = 0;
  std::string value;
  WriteSet one;
  for (uint64_t i = 0; i < args.events && !stopped(); ++i) {
    const std::string key = CustomerKey(customer_of(rng), args.partitions);
    one.Clear();
    rmw_times.Start();
    Status s = (*store)->Get(Column::kCustomers, key, &value);
    if (s.ok()) {
      ++found;
    } else if (!s.IsNotFound()) {
      return Fail("get", s);
    }
    one.Put(Column::kCustomers, key, states[i % states.size()]);  // the customer's new state
    s = (*store)->Write(one);
    rmw_times.Stop();
    if (!s.ok()) return Fail("put", s);
  }

  CallTimes multiget_times;
  uint64_t multiget_found = 0;
  std::vector<std::string> keys(kBatchSize), got;
  std::vector<bool> present;
  const uint64_t multigets = std::max<uint64_t>(1, args.events / kBatchSize);
  for (uint64_t i = 0; i < multigets && !stopped(); ++i) {
    for (std::string& key : keys) key = CustomerKey(customer_of(rng), args.partitions);
    multiget_times.Start();
    Status s = (*store)->MultiGet(Column::kCustomers, keys, &got, &present);
    multiget_times.Stop();
    if (!s.ok()) return Fail("multiget", s);
    multiget_found += std::count(present.begin(), present.end(), true);
  }
  if (stopped()) return Fail("rocksdb", Status::Aborted("stopped"));
  const std::map<std::string, uint64_t> properties = (*store)->Properties();

  JsonWriter w;
  w.BeginObject();
  w.Key("mode").String(args.mode);
  w.Key("events").Uint(args.events);
  w.Key("customers").Uint(args.customers);
  w.Key("partitions").Int(args.partitions);
  w.Key("value_bytes").Double(value_bytes);
  w.Key("state_options").BeginObject()
      .Key("compression").String(config.state.compression)
      .Key("block_cache_mb").Int(config.state.block_cache_mb)
      .Key("write_buffer_mb").Int(config.state.write_buffer_mb)
      .Key("sync_wal").Bool(config.state.sync_wal).EndObject();
  w.Key("write_batch");
  batch_times.Write(puts, &w);
  w.Key("rmw");
  rmw_times.Write(rmw_times.calls(), &w);
  w.Key("rmw_found_share")
      .Double(rmw_times.calls() > 0 ? static_cast<double>(found) / rmw_times.calls() : 0);
  w.Key("multiget");
  multiget_times.Write(multiget_times.calls() * kBatchSize, &w);
  w.Key("multiget_found_share")
      .Double(multigets > 0 ? static_cast<double>(multiget_found) / (multigets * kBatchSize) : 0);
  w.Key("rocksdb").BeginObject();
  for (const auto& [name, v] : properties) w.Key(name).Uint(v);
  w.EndObject();
  return EmitSummary(args, &w);
}

int RunBenchCommand(const BenchArgs& args) {
  Config config;
  if (!LoadConfigOrReport(args.config_path, &config)) return kExitConfig;
  const std::string dir = args.work_dir.empty()
                              ? (std::filesystem::temp_directory_path() / "streamrec-bench").string()
                              : args.work_dir;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  std::filesystem::remove_all(dir + "/state", ec);
  if (ec) {
    std::fprintf(stderr, "streamrec bench: cannot prepare %s: %s\n", dir.c_str(), ec.message().c_str());
    return kExitFailure;
  }
  if (args.mode == "kafka") return RunKafkaCeiling(args, dir, std::move(config));
  if (args.mode == "rocksdb") return RunRocksDbCeiling(args, dir, std::move(config));
  return RunServiceBench(args, dir, std::move(config));
}

}  // namespace

void AddBenchCommand(CLI::App& app, BenchArgs* args, int* exit_code) {
  CLI::App* cmd = app.add_subcommand(
      "bench", "Measure the whole service on an embedded Kafka cluster: a generated telco stream "
               "in, every changed list published; or the ceilings under it (Kafka alone, the "
               "RocksDB state store alone); prints one JSON summary");
  cmd->add_option("--config", args->config_path, "YAML configuration file")->check(CLI::ExistingFile);
  cmd->add_option("--mode", args->mode,
                  "throughput (as fast as possible), latency (paced), kafka (the stream produced "
                  "into the embedded cluster and consumed back, no processing) or rocksdb (a "
                  "fresh state store alone: read-modify-writes, write batches, multi-gets)")
      ->check(CLI::IsMember({"throughput", "latency", "kafka", "rocksdb"}));
  cmd->add_option("--rate", args->rate, "events/s produced in latency mode")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--customers", args->customers, "subscribers")->check(CLI::Range(1ULL, 1ULL << 40));
  cmd->add_option("--events", args->events, "purchase events (rocksdb: operations per phase)")
      ->check(CLI::Range(1ULL, 1ULL << 40));
  cmd->add_option("--catalog-size", args->catalog_size, "packages in the catalogue")
      ->check(CLI::Range(1, 1000000));
  cmd->add_option("--partitions", args->partitions, "partitions of the purchases topic")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--seed", args->seed, "generator seed");
  cmd->add_option("--warmup-seconds", args->warmup_seconds,
                  "purchases of the first N seconds are left out of steady_ms (cold caches, "
                  "the first model fits)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--work-dir", args->work_dir,
                  "where the stream (kept between runs) and the state go (default: "
                  "$TMPDIR/streamrec-bench)");
  cmd->add_option("--json-out", args->json_out, "also write the summary to this file");
  cmd->callback([args, exit_code] { *exit_code = RunBenchCommand(*args); });
}

}  // namespace streamrec::cli
