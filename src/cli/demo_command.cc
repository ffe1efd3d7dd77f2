#include <cstdio>
#include <filesystem>
#include <map>

#include "cli/commands.h"
#include "cli/common.h"
#include "streamrec/clock.h"
#include "streamrec/generator.h"
#include "streamrec/replay.h"
#include "streamrec/state_store.h"
#include "streamrec/time_util.h"

namespace streamrec::cli {

namespace {

int RunDemoCommand(const DemoArgs& args) {
  ReplayOptions options;
  if (!LoadConfigOrReport(args.config_path, &options.config)) return kExitConfig;
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

  // 1. A telco feed: subscribers of a few personas buying data packages.
  TelcoGeneratorOptions gen;
  gen.customers = args.customers;
  gen.events = args.events;
  gen.seed = args.seed;
  const std::string events = dir + "/purchases.csv.gz";
  const std::string catalog = dir + "/packages.csv";
  std::printf("== generating %llu purchases of %llu subscribers -> %s\n",
              static_cast<unsigned long long>(gen.events),
              static_cast<unsigned long long>(gen.customers), events.c_str());
  std::fflush(stdout);
  Status s = GenerateTelcoFeed(gen, events, catalog);
  if (!s.ok()) {
    std::fprintf(stderr, "streamrec demo: %s\n", s.ToString().c_str());
    return kExitFailure;
  }

  // 2. Replay it through the pipeline (file source until the Kafka service lands).
  options.config.state.path = dir + "/state";
  options.config.catalog_path = catalog;
  options.input_path = events;
  options.recs_out = dir + "/recommendations.jsonl";
  options.progress = stderr;
  options.stop = &StopFlag();
  std::map<std::string, v1::RecommendationList> sample;  // one customer per segment
  std::map<std::string, std::string> chosen;             // segment -> customer
  options.on_list = [&](const v1::RecommendationList& list) {
    auto [it, inserted] = chosen.emplace(list.segment(), list.customer_id());
    if (it->second == list.customer_id()) sample[list.customer_id()] = list;
  };
  std::printf("== replaying through the pipeline (state: %s)\n", options.config.state.path.c_str());
  std::fflush(stdout);
  auto summary = RunReplay(options, SystemClock());
  if (!summary.ok()) {
    std::fprintf(stderr, "streamrec demo: %s\n", summary.status().ToString().c_str());
    return kExitFailure;
  }
  PrintReplaySummary(*summary);

  // 3. Segments and a few lists with their reasons.
  auto store = OpenRocksStateStore(options.config.state);
  if (!store.ok()) {
    std::fprintf(stderr, "streamrec demo: %s\n", store.status().ToString().c_str());
    return kExitFailure;
  }
  auto segments = ProfileSegments(store->get());
  if (!segments.ok()) {
    std::fprintf(stderr, "streamrec demo: %s\n", segments.status().ToString().c_str());
    return kExitFailure;
  }
  std::printf("\n== segments\n");
  PrintSegmentTable(*segments);
  std::printf("\n== sample lists (latest version of one customer per segment)\n");
  int shown = 0;
  for (const auto& [segment, customer] : chosen) {
    if (shown++ >= args.samples) break;
    const v1::RecommendationList& list = sample[customer];
    std::printf("customer %s  segment %s  version %llu  as of %s  group %s\n",
                customer.c_str(), list.segment().c_str(),
                static_cast<unsigned long long>(list.version()),
                FormatIso8601(list.as_of_ms()).c_str(),
                list.group() == v1::RecommendationList::CONTROL ? "control" : "treatment");
    for (const auto& item : list.items()) {
      std::printf("  %-16s %.4f  %-12s %s\n", item.item_id().c_str(), item.score(),
                  item.strategy().c_str(), item.reason().c_str());
    }
  }
  std::printf("\nall lists: %s\n", options.recs_out.c_str());
  return kExitOk;
}

}  // namespace

void AddDemoCommand(CLI::App& app, DemoArgs* args, int* exit_code) {
  CLI::App* cmd = app.add_subcommand(
      "demo", "Generate a telco feed, run the pipeline on it, print segments and sample lists");
  cmd->add_option("--config", args->config_path, "YAML configuration file")->check(CLI::ExistingFile);
  cmd->add_option("--customers", args->customers, "subscribers to simulate");
  cmd->add_option("--events", args->events, "purchase events to process");
  cmd->add_option("--seed", args->seed, "generator seed");
  cmd->add_option("--work-dir", args->work_dir, "where the feed, state and lists go "
                                                "(default: $TMPDIR/streamrec-demo)");
  cmd->add_option("--samples", args->samples, "sample lists to print");
  cmd->callback([args, exit_code] { *exit_code = RunDemoCommand(*args); });
}

}  // namespace streamrec::cli
