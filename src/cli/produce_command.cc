// streamrec produce: a CSV purchase feed (as `streamrec generate` writes it, or the retail file)
// into a real Kafka topic, as streamrec.v1.PurchaseEvent records keyed by customer id: the load
// driver of docker-compose.yml and of any test against a real cluster.
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"
#include "kafka/purchase_producer.h"
#include "progress.h"
#include "streamrec/clock.h"

namespace streamrec::cli {

namespace {

int RunProduceCommand(const ProduceArgs& args) {
  Config config;
  if (!LoadConfigOrReport(args.config_path, &config)) return kExitConfig;
  const std::string brokers = args.brokers.empty() ? config.kafka.brokers : args.brokers;
  const std::string topic = args.topic.empty() ? config.kafka.input_topic : args.topic;
  if (brokers.empty()) {
    std::fprintf(stderr, "streamrec produce: no brokers: pass --brokers HOST:PORT or set "
                         "kafka.brokers in --config\n");
    return kExitConfig;
  }
  if (topic.empty()) {
    std::fprintf(stderr, "streamrec produce: no topic: pass --topic or set kafka.input_topic\n");
    return kExitConfig;
  }

  // Fail early and clearly when the cluster or the topic is not there: librdkafka alone would
  // queue records and only report at the final flush.
  std::fprintf(stderr, "streamrec produce: waiting up to %g s for %s and topic '%s'\n",
               args.timeout_s, brokers.c_str(), topic.c_str());
  auto partitions = WaitForTopic(brokers, topic, static_cast<int>(args.timeout_s * 1000),
                                 config.kafka.producer);
  if (!partitions.ok()) {
    std::fprintf(stderr, "streamrec produce: %s\n", partitions.status().ToString().c_str());
    return partitions.status().IsInvalidArgument() ? kExitConfig : kExitFailure;
  }
  std::fprintf(stderr, "streamrec produce: %s -> %s (%d partitions) at %s%s\n",
               args.input.c_str(), topic.c_str(), *partitions, brokers.c_str(),
               args.rate > 0 ? (", " + HumanCount(args.rate) + " events/s").c_str()
                             : ", as fast as possible");

  ProgressBar progress(stderr, SystemClock(), "events");
  CsvFeedOptions options;
  options.brokers = brokers;
  options.topic = topic;
  options.csv_path = args.input;
  options.rate = args.rate;
  options.producer_properties = config.kafka.producer;
  uint64_t skipped = 0;
  options.on_progress = [&](uint64_t produced, uint64_t bad) {
    skipped = bad;
    progress.Update(produced, -1);
  };
  auto produced = ProduceCsvFeed(options, StopFlag(), SystemClock());
  if (!produced.ok()) {
    std::fprintf(stderr, "\nstreamrec produce: %s\n", produced.status().ToString().c_str());
    return produced.status().IsInvalidArgument() ? kExitConfig : kExitFailure;
  }
  progress.Finish(*produced);
  if (*produced == 0 && skipped > 0) {
    std::fprintf(stderr, "streamrec produce: none of the %llu lines of %s decoded: not a canonical "
                         "CSV feed (customer_id,item_id,timestamp,...)?\n",
                 static_cast<unsigned long long>(skipped), args.input.c_str());
    return kExitFailure;
  }
  std::printf("produced %llu events to %s%s", static_cast<unsigned long long>(*produced),
              topic.c_str(), StopFlag().load() ? " (stopped before the end of the file)" : "");
  if (skipped > 0) {
    std::printf("; skipped %llu lines that do not decode", static_cast<unsigned long long>(skipped));
  }
  std::printf("\n");
  return kExitOk;
}

}  // namespace

void AddProduceCommand(CLI::App& app, ProduceArgs* args, int* exit_code) {
  CLI::App* cmd = app.add_subcommand(
      "produce", "Produce a CSV purchase feed to a Kafka topic (protobuf PurchaseEvent records "
                 "keyed by customer id), optionally at a fixed rate");
  cmd->add_option("--brokers", args->brokers,
                  "bootstrap servers HOST:PORT[,...] (default: kafka.brokers of --config)");
  cmd->add_option("--topic", args->topic, "topic (default: kafka.input_topic of --config)");
  cmd->add_option("--input", args->input, "canonical CSV feed (.csv or .csv.gz)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--rate", args->rate, "events/s (default: as fast as possible)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--timeout", args->timeout_s,
                  "seconds to wait for a broker and the topic before giving up")
      ->check(CLI::Range(0.1, 3600.0));
  cmd->add_option("--config", args->config_path,
                  "YAML configuration: brokers, topic and kafka.producer.* client settings")
      ->check(CLI::ExistingFile);
  cmd->callback([args, exit_code] { *exit_code = RunProduceCommand(*args); });
}

}  // namespace streamrec::cli
