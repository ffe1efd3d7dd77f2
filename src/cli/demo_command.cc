// streamrec demo: the whole service on an embedded Kafka cluster, fed with a generated telco feed.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "cli/commands.h"
#include "cli/common.h"
#include "kafka/mock_cluster.h"
#include "kafka/purchase_producer.h"
#include "streamrec/clock.h"
#include "streamrec/generator.h"
#include "streamrec/replay.h"
#include "streamrec/service.h"
#include "streamrec/state_store.h"
#include "streamrec/time_util.h"

namespace streamrec::cli {

namespace {

void Fail(const char* what, const Status& s) {
  std::fprintf(stderr, "streamrec demo: %s: %s\n", what, s.ToString().c_str());
}

int RunDemoCommand(const DemoArgs& args) {
  ServiceOptions options;
  if (!LoadConfigOrReport(args.config_path, &options.config)) return kExitConfig;
  Config& config = options.config;
  std::string dir = args.work_dir.empty()
                        ? (std::filesystem::temp_directory_path() / "streamrec-demo").string()
                        : args.work_dir;
  std::error_code ec;
  std::filesystem::remove_all(dir + "/state", ec);
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    std::fprintf(stderr, "streamrec demo: cannot create %s: %s\n", dir.c_str(), ec.message().c_str());
    return kExitFailure;
  }
  const bool until_stopped = args.events == 0;
  const uint64_t feed_events = until_stopped ? args.feed_events : args.events;
  const double rate = args.rate > 0 ? args.rate : (until_stopped ? 5000 : 0);

  // 1. An embedded Kafka cluster with the service's topics.
  auto cluster = MockKafkaCluster::Start(args.brokers);
  if (!cluster.ok()) return Fail("embedded Kafka", cluster.status()), kExitFailure;
  Status s = CreateServiceTopics(cluster->get(), config, args.partitions);
  if (!s.ok()) return Fail("topics", s), kExitFailure;
  const std::string bootstrap = (*cluster)->bootstrap();
  std::printf("== embedded Kafka: %d brokers at %s (topic %s: %d partitions)\n", args.brokers,
              bootstrap.c_str(), config.kafka.input_topic.c_str(), args.partitions);
  std::printf("   watch the output:  kcat -b %s -t %s -C -f '%%k %%h\\n'\n", bootstrap.c_str(),
              config.kafka.output_topic.c_str());

  // 2. A telco feed of subscribers from a few personas buying data packages.
  TelcoGeneratorOptions gen;
  gen.customers = args.customers;
  gen.events = feed_events;
  gen.seed = args.seed;
  const std::string events = dir + "/purchases.csv.gz";
  const std::string catalog = dir + "/packages.csv";
  std::printf("== generating %llu purchases of %llu subscribers -> %s\n",
              static_cast<unsigned long long>(gen.events),
              static_cast<unsigned long long>(gen.customers), events.c_str());
  std::fflush(stdout);
  s = GenerateTelcoFeed(gen, events, catalog);
  if (!s.ok()) return Fail("generator", s), kExitFailure;

  // 3. The service on it.
  config.kafka.brokers = bootstrap;
  config.input.format = "protobuf";
  config.state.path = dir + "/state";
  config.catalog_path = catalog;
  std::mutex sample_mu;
  std::map<std::string, v1::RecommendationList> sample;  // segment -> latest list of one customer
  std::map<std::string, std::string> chosen;             // segment -> customer
  options.on_delivered = [&](const v1::OutboxRecord& record) {
    if (record.payload_case() != v1::OutboxRecord::kList) return;
    std::lock_guard<std::mutex> lock(sample_mu);
    auto [it, inserted] = chosen.emplace(record.list().segment(), record.list().customer_id());
    if (it->second == record.list().customer_id()) sample[it->first] = record.list();
  };
  const Config service_config = config;  // `options` is moved into the service below
  auto service = Service::Create(std::move(options));
  if (!service.ok()) return Fail("service", service.status()), kExitFailure;
  {
    const ServiceStats st = (*service)->stats();
    if (st.metrics_port > 0) {
      std::printf("   metrics:           curl -s http://127.0.0.1:%d/metrics | grep ^streamrec_\n",
                  st.metrics_port);
    }
    if (st.http_port > 0) {
      std::printf("   query API:         curl -s http://127.0.0.1:%d/v1/segments\n", st.http_port);
    }
  }
  std::atomic<bool> stop_service{false};
  Status run_status;
  std::thread service_thread([&] { run_status = (*service)->Run(stop_service); });

  std::atomic<bool> stop_feed{false};
  std::atomic<bool> feed_done{false};
  StatusOr<uint64_t> produced = Status::Aborted("not started");
  const int64_t start_us = SystemClock()->NowMicros();
  std::thread feed_thread([&] {
    produced = ProduceCsvFeed(bootstrap, service_config.kafka.input_topic, events, rate, stop_feed,
                              SystemClock(), [&] { return (*service)->stats().records; });
    feed_done.store(true);
  });
  std::printf("== producing the feed%s; the service consumes it as it arrives%s\n",
              rate > 0 ? (" at " + std::to_string(static_cast<long>(rate)) + " events/s").c_str() : "",
              until_stopped ? " (Ctrl-C to stop)" : "");
  std::fflush(stdout);

  // 4. Progress until every event is processed (or Ctrl-C).
  int64_t last_print = start_us;
  bool hinted = false;  // printed the API call for one customer
  while (!StopFlag().load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ServiceStats st = (*service)->stats();
    if (!st.running && st.batches > 0) break;  // the service stopped on an error
    if (feed_done.load() && !produced.ok()) break;
    int64_t now = SystemClock()->NowMicros();
    if (now - last_print > 2000000) {
      last_print = now;
      std::fprintf(stderr, "  %llu events applied, %llu dead letters, %llu records delivered, "
                           "partitions [%zu assigned]\n",
                   static_cast<unsigned long long>(st.events), static_cast<unsigned long long>(st.invalid),
                   static_cast<unsigned long long>(st.delivered), st.assigned.size());
    }
    if (!until_stopped && st.records >= feed_events) break;
    if (until_stopped && st.http_port > 0 && !hinted) {
      std::lock_guard<std::mutex> lock(sample_mu);
      if (!chosen.empty()) {
        std::printf("   a customer:        curl -s http://127.0.0.1:%d/v1/customers/%s\n",
                    st.http_port, chosen.begin()->second.c_str());
        std::fflush(stdout);
        hinted = true;
      }
    }
  }
  stop_feed.store(true);
  feed_thread.join();
  stop_service.store(true);
  service_thread.join();
  const double seconds = (SystemClock()->NowMicros() - start_us) / 1e6;
  if (!run_status.ok()) return Fail("service", run_status), kExitFailure;
  if (!produced.ok()) return Fail("feed producer", produced.status()), kExitFailure;

  ServiceStats st = (*service)->stats();
  service->reset();  // close the store before reading it
  std::printf("\n== processed through Kafka\n");
  std::printf("events           %llu\n", static_cast<unsigned long long>(st.events));
  std::printf("dead letters     %llu\n", static_cast<unsigned long long>(st.invalid));
  std::printf("lists published  %llu\n", static_cast<unsigned long long>(st.lists_published));
  std::printf("records delivered %llu (lists, segment changes, dead letters)\n",
              static_cast<unsigned long long>(st.delivered));
  std::printf("wall time        %.2f s (produce + consume + publish)\n", seconds);
  std::printf("events/s         %.0f\n", seconds > 0 ? st.events / seconds : 0.0);

  auto store = OpenRocksStateStore(service_config.state);
  if (!store.ok()) return Fail("state", store.status()), kExitFailure;
  auto segments = ProfileSegments(store->get());
  if (!segments.ok()) return Fail("segments", segments.status()), kExitFailure;
  std::printf("\n== segments\n");
  PrintSegmentTable(*segments);
  std::printf("\n== sample lists (latest version of one customer per segment)\n");
  int shown = 0;
  for (const auto& [segment, list] : sample) {
    if (shown++ >= args.samples) break;
    std::printf("customer %s  segment %s  version %llu  as of %s  group %s\n",
                list.customer_id().c_str(), list.segment().c_str(),
                static_cast<unsigned long long>(list.version()), FormatIso8601(list.as_of_ms()).c_str(),
                list.group() == v1::RecommendationList::CONTROL ? "control" : "treatment");
    for (const auto& item : list.items()) {
      std::printf("  %-16s %.4f  %-12s %s\n", item.item_id().c_str(), item.score(),
                  item.strategy().c_str(), item.reason().c_str());
    }
  }

  return kExitOk;
}

}  // namespace

void AddDemoCommand(CLI::App& app, DemoArgs* args, int* exit_code) {
  CLI::App* cmd = app.add_subcommand(
      "demo", "Run the whole service on an embedded Kafka cluster fed with a generated telco "
              "feed; print segments and sample lists");
  cmd->add_option("--config", args->config_path, "YAML configuration file")->check(CLI::ExistingFile);
  cmd->add_option("--events", args->events,
                  "process this many events, print the results and exit (default: produce the "
                  "feed, then serve until Ctrl-C)");
  cmd->add_option("--feed-events", args->feed_events, "feed size when --events is not given");
  cmd->add_option("--rate", args->rate, "events/s produced (default: as fast as possible with "
                                        "--events, 5000 otherwise)");
  cmd->add_option("--customers", args->customers, "subscribers to simulate");
  cmd->add_option("--seed", args->seed, "generator seed");
  cmd->add_option("--brokers", args->brokers, "embedded brokers")->check(CLI::Range(1, 16));
  cmd->add_option("--partitions", args->partitions, "partitions of the purchases topic")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--work-dir", args->work_dir,
                  "where the feed, catalogue and state go (default: $TMPDIR/streamrec-demo)");
  cmd->add_option("--samples", args->samples, "sample lists to print");
  cmd->callback([args, exit_code] { *exit_code = RunDemoCommand(*args); });
}

}  // namespace streamrec::cli
