// streamrec bench: the whole service on an embedded Kafka cluster, measured end to end. A
// generated telco stream is produced into the cluster (paced in latency mode, as fast as the
// service takes it in throughput mode), the service applies it with its exactly-once state and
// publishes every changed list, and one JSON summary says how fast, how fresh and how big.
#include <prometheus/registry.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "cli/common.h"
#include "json_writer.h"
#include "kafka/mock_cluster.h"
#include "kafka/purchase_producer.h"
#include "streamrec/clock.h"
#include "streamrec/generator.h"
#include "streamrec/service.h"
#include "streamrec/state_store.h"
#include "streamrec/time_util.h"

namespace streamrec::cli {

namespace {

double Seconds(std::chrono::steady_clock::time_point from, std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

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

int RunBenchCommand(const BenchArgs& args) {
  Config config;
  if (!LoadConfigOrReport(args.config_path, &config)) return kExitConfig;
  const bool latency_mode = args.mode == "latency";
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

  // 1. The stream: generated once per parameter set and kept for the next run.
  TelcoGeneratorOptions gen;
  gen.customers = args.customers;
  gen.events = args.events;
  gen.seed = args.seed;
  gen.catalog_size = args.catalog_size;
  const std::string stem = dir + "/telco-c" + std::to_string(args.customers) + "-e" +
                           std::to_string(args.events) + "-k" + std::to_string(args.catalog_size) +
                           "-s" + std::to_string(args.seed);
  const std::string events = stem + ".csv.gz";
  const std::string catalog = stem + ".catalog.csv";
  if (!std::filesystem::exists(events) || !std::filesystem::exists(catalog)) {
    std::fprintf(stderr, "bench: generating %llu purchases of %llu subscribers -> %s\n",
                 static_cast<unsigned long long>(gen.events),
                 static_cast<unsigned long long>(gen.customers), events.c_str());
    Status s = GenerateTelcoFeed(gen, events + ".tmp.csv.gz", catalog, [](uint64_t done, uint64_t total) {
      std::fprintf(stderr, "\r  %llu / %llu", static_cast<unsigned long long>(done),
                   static_cast<unsigned long long>(total));
    });
    std::fprintf(stderr, "\n");
    if (!s.ok()) return Fail("generator", s);
    std::filesystem::rename(events + ".tmp.csv.gz", events, ec);
    if (ec) return Fail("generator", Status::IOError(ec.message()));
  }
  const size_t catalog_items = TelcoCatalog(gen).size();

  // 2. The embedded cluster and the service, without the metrics and API servers (their ports
  //    could be taken; the metrics are still recorded).
  auto cluster = MockKafkaCluster::Start(1);
  if (!cluster.ok()) return Fail("embedded Kafka", cluster.status());
  Status s = CreateServiceTopics(cluster->get(), config, args.partitions);
  if (!s.ok()) return Fail("topics", s);
  config.kafka.brokers = (*cluster)->bootstrap();
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
  std::atomic<uint64_t> lists{0};
  options.on_delivered = [&](const v1::OutboxRecord& record) {
    if (record.payload_case() != v1::OutboxRecord::kList) return;
    ++lists;
    if (record.source_time_ms() <= 0) return;  // a background refresh: no purchase behind it
    const float ms = static_cast<float>(WallClockMillis() - record.source_time_ms());
    std::lock_guard<std::mutex> lock(latency_mu);
    latency_ms.push_back(ms);
  };
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
  while (!StopFlag().load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const ServiceStats st = (*service)->stats();
    const auto now = std::chrono::steady_clock::now();
    if (first == std::chrono::steady_clock::time_point{} && st.records > 0) first = now;
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
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const uint64_t peak_rss = static_cast<uint64_t>(usage.ru_maxrss) * 1024;

  // 5. The state's size after a full compaction.
  auto store = OpenRocksStateStore(config.state);
  if (!store.ok()) return Fail("state", store.status());
  uint64_t customers = 0;
  s = (*store)->Scan(Column::kCustomers, "", [&](std::string_view, std::string_view) {
    ++customers;
    return true;
  });
  if (!s.ok()) return Fail("state", s);
  s = (*store)->CompactAll();
  if (!s.ok()) return Fail("compaction", s);
  const uint64_t bytes = (*store)->ApproximateSize();

  const double wall = Seconds(first, done);
  std::vector<float> lat;
  {
    std::lock_guard<std::mutex> lock(latency_mu);
    lat.swap(latency_ms);
  }
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
  // Where the batches' time went: the stage histograms' sums.
  w.Key("stage_seconds").BeginObject();
  for (const prometheus::MetricFamily& family : registry->Collect()) {
    if (family.name != "streamrec_stage_duration_seconds") continue;
    for (const prometheus::ClientMetric& m : family.metric) {
      for (const auto& label : m.label) {
        if (label.name == "stage") w.Key(label.value).Double(m.histogram.sample_sum);
      }
    }
  }
  w.EndObject();
  w.Key("peak_rss_bytes").Uint(peak_rss);
  w.Key("rocksdb_bytes").Uint(bytes);
  w.Key("rocksdb_bytes_per_customer").Double(customers > 0 ? static_cast<double>(bytes) / customers : 0);
  w.Key("lists_published").Uint(st.lists_published);
  w.Key("records_delivered").Uint(st.delivered);
  w.Key("batches").Uint(st.batches);
  w.Key("cores").Uint(std::thread::hardware_concurrency());
  w.EndObject();
  const std::string json = w.Release();
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

}  // namespace

void AddBenchCommand(CLI::App& app, BenchArgs* args, int* exit_code) {
  CLI::App* cmd = app.add_subcommand(
      "bench", "Measure the whole service on an embedded Kafka cluster: a generated telco stream "
               "in, every changed list published; prints one JSON summary");
  cmd->add_option("--config", args->config_path, "YAML configuration file")->check(CLI::ExistingFile);
  cmd->add_option("--mode", args->mode, "throughput (as fast as possible) or latency (paced)")
      ->check(CLI::IsMember({"throughput", "latency"}));
  cmd->add_option("--rate", args->rate, "events/s produced in latency mode")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--customers", args->customers, "subscribers")->check(CLI::Range(1ULL, 1ULL << 40));
  cmd->add_option("--events", args->events, "purchase events")->check(CLI::Range(1ULL, 1ULL << 40));
  cmd->add_option("--catalog-size", args->catalog_size, "packages in the catalogue")
      ->check(CLI::Range(1, 1000000));
  cmd->add_option("--partitions", args->partitions, "partitions of the purchases topic")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--seed", args->seed, "generator seed");
  cmd->add_option("--work-dir", args->work_dir,
                  "where the stream (kept between runs) and the state go (default: "
                  "$TMPDIR/streamrec-bench)");
  cmd->add_option("--json-out", args->json_out, "also write the summary to this file");
  cmd->callback([args, exit_code] { *exit_code = RunBenchCommand(*args); });
}

}  // namespace streamrec::cli
