// streamrec: wires the subcommands; the work is done in the library and src/cli/*_command.cc.
#include <csignal>

#include "cli/commands.h"
#include "streamrec/config.h"

namespace {
extern "C" void OnSignal(int) { streamrec::cli::StopFlag().store(true); }
}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);

  CLI::App app{"streamrec: streaming customer segmentation and upsell/cross-sell recommendations"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("streamrec ") + streamrec::kStreamrecVersion);
  int exit_code = streamrec::cli::kExitOk;

  streamrec::cli::ReplayArgs replay;
  streamrec::cli::GenerateArgs generate;
  streamrec::cli::DemoArgs demo;
  streamrec::cli::ConfigArgs config;
  streamrec::cli::EvaluateArgs evaluate;
  streamrec::cli::RunArgs run;
  streamrec::cli::MockKafkaArgs mock_kafka;
  streamrec::cli::RefitArgs refit;
  streamrec::cli::SegmentsArgs segments;
  streamrec::cli::FeaturesArgs features;
  streamrec::cli::ReportArgs report;
  streamrec::cli::BenchArgs bench;
  streamrec::cli::ProduceArgs produce;
  streamrec::cli::AddReplayCommand(app, &replay, &exit_code);
  streamrec::cli::AddGenerateCommand(app, &generate, &exit_code);
  streamrec::cli::AddDemoCommand(app, &demo, &exit_code);
  streamrec::cli::AddConfigCommand(app, &config, &exit_code);
  streamrec::cli::AddEvaluateCommand(app, &evaluate, &exit_code);
  streamrec::cli::AddRunCommand(app, &run, &exit_code);
  streamrec::cli::AddMockKafkaCommand(app, &mock_kafka, &exit_code);
  streamrec::cli::AddRefitCommand(app, &refit, &exit_code);
  streamrec::cli::AddSegmentsCommand(app, &segments, &exit_code);
  streamrec::cli::AddFeaturesCommand(app, &features, &exit_code);
  streamrec::cli::AddReportCommand(app, &report, &exit_code);
  streamrec::cli::AddBenchCommand(app, &bench, &exit_code);
  streamrec::cli::AddProduceCommand(app, &produce, &exit_code);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : streamrec::cli::kExitConfig;
  }
  return exit_code;
}
