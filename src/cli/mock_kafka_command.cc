#include <chrono>
#include <cstdio>
#include <thread>

#include "cli/commands.h"
#include "cli/common.h"
#include "kafka/mock_cluster.h"

namespace streamrec::cli {

namespace {

int RunMockKafka(const MockKafkaArgs& args) {
  Config config;
  if (!LoadConfigOrReport(args.config_path, &config)) return kExitConfig;
  auto cluster = MockKafkaCluster::Start(args.brokers);
  if (!cluster.ok()) {
    std::fprintf(stderr, "streamrec mock-kafka: %s\n", cluster.status().ToString().c_str());
    return kExitFailure;
  }
  Status s = CreateServiceTopics(cluster->get(), config, args.partitions);
  if (!s.ok()) {
    std::fprintf(stderr, "streamrec mock-kafka: %s\n", s.ToString().c_str());
    return kExitFailure;
  }
  std::string bootstrap = (*cluster)->bootstrap();
  if (args.port >= 0) {
    auto address = (*cluster)->ListenOn(args.port);
    if (!address.ok()) {
      std::fprintf(stderr, "streamrec mock-kafka: %s\n", address.status().ToString().c_str());
      return kExitFailure;
    }
    bootstrap = *address;
  }
  // The first line is the bootstrap address, alone, so a harness can read it.
  std::printf("%s\n", bootstrap.c_str());
  std::fflush(stdout);
  std::fprintf(stderr,
               "embedded Kafka: %d brokers at %s; topics %s (%d partitions), %s, %s, %s\n"
               "Ctrl-C to stop\n",
               args.brokers, bootstrap.c_str(), config.kafka.input_topic.c_str(),
               args.partitions, config.kafka.output_topic.c_str(),
               config.kafka.dead_letter_topic.c_str(), config.kafka.segment_change_topic.c_str());
  std::fflush(stdout);
  while (!StopFlag().load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return kExitOk;
}

}  // namespace

void AddMockKafkaCommand(CLI::App& app, MockKafkaArgs* args, int* exit_code) {
  CLI::App* cmd = app.add_subcommand(
      "mock-kafka", "Run the embedded Kafka cluster alone, print its bootstrap address, serve "
                    "until stopped");
  cmd->add_option("--config", args->config_path, "configuration (topic names)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--brokers", args->brokers, "brokers")->check(CLI::Range(1, 16));
  cmd->add_option("--partitions", args->partitions, "partitions per topic")->check(CLI::Range(1, 1024));
  cmd->add_option("--port", args->port,
                  "accept bootstrap connections on 127.0.0.1:PORT (0: any free port)")
      ->check(CLI::Range(0, 65535));
  cmd->callback([args, exit_code] { *exit_code = RunMockKafka(*args); });
}

}  // namespace streamrec::cli
