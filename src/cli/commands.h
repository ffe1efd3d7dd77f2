// The streamrec subcommands. main.cc registers them; each Run* returns the process exit code:
// 0 success, 1 runtime failure, 2 bad configuration or usage.
#ifndef STREAMREC_SRC_CLI_COMMANDS_H_
#define STREAMREC_SRC_CLI_COMMANDS_H_

#include <CLI/CLI.hpp>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace streamrec::cli {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitConfig = 2;

// Set by SIGINT/SIGTERM; long commands stop at the next batch boundary.
std::atomic<bool>& StopFlag();

struct ReplayArgs {
  std::string config_path;
  std::string input;
  std::string state_dir;
  std::string recs_out;
  std::string summary_json;
  std::string catalog;
  // "" = the configured recommender options; cross-sell / next-purchase as in `evaluate`.
  std::string mode;
  bool quiet = false;
};
void AddReplayCommand(CLI::App& app, ReplayArgs* args, int* exit_code);

struct GenerateArgs {
  uint64_t customers = 10000;
  uint64_t events = 100000;
  uint64_t seed = 42;
  std::string out;
  std::string catalog_out;
};
void AddGenerateCommand(CLI::App& app, GenerateArgs* args, int* exit_code);

struct DemoArgs {
  std::string config_path;
  uint64_t customers = 20000;
  uint64_t events = 0;            // 0: produce the feed, then run until stopped
  uint64_t feed_events = 200000;  // feed size when --events is not given
  double rate = 0;                // events/s produced; 0: as fast as possible (default 5000
                                  // when running until stopped)
  uint64_t seed = 42;
  std::string work_dir;
  int samples = 3;
  int brokers = 3;
  int partitions = 6;
};
void AddDemoCommand(CLI::App& app, DemoArgs* args, int* exit_code);

struct BenchArgs {
  std::string config_path;
  std::string mode = "throughput";  // throughput | latency | kafka | rocksdb
  double rate = 50000;              // events/s in latency mode
  uint64_t customers = 100000;
  uint64_t events = 1000000;
  int catalog_size = 300;
  int partitions = 6;
  uint64_t seed = 42;
  // Purchases produced in the first this many seconds are left out of the steady-state
  // latency (steady_ms): the first batches meet cold caches and fit the first models.
  double warmup_seconds = 5;
  std::string work_dir;
  std::string json_out;
};
void AddBenchCommand(CLI::App& app, BenchArgs* args, int* exit_code);

struct RunArgs {
  std::string config_path;
  std::string state_dir;
  bool stop_at_end = false;
};
void AddRunCommand(CLI::App& app, RunArgs* args, int* exit_code);

struct MockKafkaArgs {
  std::string config_path;
  int brokers = 3;
  int partitions = 6;
  int port = -1;  // a fixed bootstrap port on 127.0.0.1; -1: the brokers' own ports
};
void AddMockKafkaCommand(CLI::App& app, MockKafkaArgs* args, int* exit_code);

struct ProduceArgs {
  std::string config_path;
  std::string brokers;   // "": kafka.brokers of the configuration
  std::string topic;     // "": kafka.input_topic of the configuration
  std::string input;
  double rate = 0;       // events/s; 0: as fast as possible
  double timeout_s = 30; // wait for a broker and the topic at most this long
};
void AddProduceCommand(CLI::App& app, ProduceArgs* args, int* exit_code);

struct ConfigArgs {
  bool print_defaults = false;
  std::string check;
  std::vector<std::string> pseudonym;  // customer ids whose log pseudonym to print
  std::string config;                  // --config, for --pseudonym
};
void AddConfigCommand(CLI::App& app, ConfigArgs* args, int* exit_code);

struct EvaluateArgs {
  std::string input;
  int k = 10;
  std::string mode = "cross-sell";
  std::string catalog;
  std::string recs_out;
  std::string json_out;
  std::string config_path;
  bool baselines_skip_non_recommendable = false;
  bool quiet = false;
  std::vector<std::string> strategies;  // --strategy: evaluate only these
  bool no_baselines = false;
  std::string lists = "fresh";  // fresh | on-purchase | published
};
void AddEvaluateCommand(CLI::App& app, EvaluateArgs* args, int* exit_code);

struct RefitArgs {
  std::string state_dir;
  std::string config_path;
};
void AddRefitCommand(CLI::App& app, RefitArgs* args, int* exit_code);

struct SegmentsArgs {
  std::string state_dir;
  bool json = false;
};
void AddSegmentsCommand(CLI::App& app, SegmentsArgs* args, int* exit_code);

struct FeaturesArgs {
  std::string state_dir;
  std::string out;
};
void AddFeaturesCommand(CLI::App& app, FeaturesArgs* args, int* exit_code);

struct ReportArgs {
  std::string state_dir;
  std::string out;
};
void AddReportCommand(CLI::App& app, ReportArgs* args, int* exit_code);

}  // namespace streamrec::cli

#endif  // STREAMREC_SRC_CLI_COMMANDS_H_
