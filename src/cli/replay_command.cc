#include <cstdio>
#include <fstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "streamrec/clock.h"
#include "streamrec/evaluation.h"
#include "streamrec/replay.h"

namespace streamrec::cli {

namespace {

int RunReplayCommand(const ReplayArgs& args) {
  ReplayOptions options;
  if (!LoadConfigOrReport(args.config_path, &options.config)) return kExitConfig;
  if (!args.state_dir.empty()) options.config.state.path = args.state_dir;
  if (options.config.state.path.empty()) {
    std::fprintf(stderr, "streamrec replay: no state directory (--state-dir or state.dir)\n");
    return kExitConfig;
  }
  if (!args.catalog.empty()) options.config.catalog_path = args.catalog;
  if (!args.mode.empty()) {
    // The lists `streamrec evaluate --mode` scores, published by the real pipeline.
    auto mode = ParseEvaluationMode(args.mode);
    if (!mode.ok()) {
      std::fprintf(stderr, "streamrec replay: %s\n", mode.status().message().c_str());
      return kExitConfig;
    }
    EvaluationOptions evaluation;
    evaluation.mode = *mode;
    evaluation.k = options.config.recommend.list_length;
    options.config.recommend = RecommenderOptionsForMode(options.config.recommend, evaluation);
  }
  options.input_path = args.input;
  options.recs_out = args.recs_out;
  options.progress = args.quiet ? nullptr : stderr;
  options.stop = &StopFlag();
  InstallCrashHook(&options);

  auto summary = RunReplay(options, SystemClock());
  if (!summary.ok()) {
    std::fprintf(stderr, "streamrec replay: %s\n", summary.status().ToString().c_str());
    return summary.status().IsInvalidArgument() ? kExitConfig : kExitFailure;
  }
  PrintReplaySummary(*summary);
  if (!args.summary_json.empty()) {
    std::ofstream out(args.summary_json);
    out << ReplaySummaryToJson(*summary) << "\n";
    if (!out.good()) {
      std::fprintf(stderr, "streamrec replay: cannot write %s\n", args.summary_json.c_str());
      return kExitFailure;
    }
  }
  return kExitOk;
}

}  // namespace

void AddReplayCommand(CLI::App& app, ReplayArgs* args, int* exit_code) {
  CLI::App* cmd = app.add_subcommand(
      "replay",
      "Run the pipeline over a purchases file (CSV or JSON lines, plain or gzip); resumable");
  cmd->add_option("--config", args->config_path, "YAML configuration file")->check(CLI::ExistingFile);
  cmd->add_option("--input", args->input, "events file (.csv, .csv.gz, .jsonl, .jsonl.gz)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--state-dir", args->state_dir, "RocksDB state directory (overrides state.dir)");
  cmd->add_option("--recs-out", args->recs_out, "write published lists as JSON lines here");
  cmd->add_option("--summary-json", args->summary_json, "write the run summary as JSON here");
  cmd->add_option("--catalog", args->catalog, "catalogue CSV (overrides catalog.path)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--mode", args->mode,
                  "recommender options of `evaluate --mode`: cross-sell (owned items never "
                  "offered) or next-purchase (re-offers lead); default: the configuration's")
      ->check(CLI::IsMember({"cross-sell", "next-purchase"}));
  cmd->add_flag("--quiet", args->quiet, "no progress bar");
  cmd->callback([args, exit_code] { *exit_code = RunReplayCommand(*args); });
}

}  // namespace streamrec::cli
