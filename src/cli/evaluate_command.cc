// streamrec evaluate: prequential hit rates of streamrec and the four baselines on a purchases
// file (see include/streamrec/evaluation.h and docs/evaluation.md).
#include <cstdio>
#include <fstream>
#include <memory>
#include <vector>

#include "cli/commands.h"
#include "cli/common.h"
#include "file_io.h"
#include "streamrec/blended_recommender.h"
#include "streamrec/catalog.h"
#include "streamrec/evaluation.h"
#include "streamrec/pipeline.h"
#include "streamrec/time_util.h"

namespace streamrec::cli {

namespace {

void PrintEvaluationTable(const EvaluationReport& report, const std::string& input) {
  std::printf("prequential evaluation of %s\n", input.c_str());
  std::printf(
      "mode %s, k %d: %llu events (%llu invalid skipped), %llu customers, %llu items, "
      "%llu baskets, %llu of returning customers scored\n",
      EvaluationModeName(report.mode), report.k, static_cast<unsigned long long>(report.events),
      static_cast<unsigned long long>(report.invalid),
      static_cast<unsigned long long>(report.customers),
      static_cast<unsigned long long>(report.items),
      static_cast<unsigned long long>(report.baskets),
      static_cast<unsigned long long>(report.baskets_scored));
  if (report.events > 0) {
    std::printf("event time %s .. %s%s\n", FormatIso8601(report.first_time_ms).c_str(),
                FormatIso8601(report.last_time_ms).c_str(),
                report.stopped ? " (stopped before the end of the input)" : "");
  }
  std::printf("\n%-24s %8s %8s %9s %10s %9s\n", "provider", "hr_all", "hr_new", "baskets",
              "mean_len", "seconds");
  for (const ProviderReport& p : report.providers) {
    std::printf("%-24s %8.3f %8.3f %9llu %10.2f %9.2f\n", p.name.c_str(), p.hr_all, p.hr_new,
                static_cast<unsigned long long>(p.baskets_scored), p.mean_list_length, p.seconds);
  }
  std::printf("\nwall time %.1f s\n", report.wall_seconds);
}

int RunEvaluateCommand(const EvaluateArgs& args) {
  Config config;
  if (!LoadConfigOrReport(args.config_path, &config)) return kExitConfig;
  auto mode = ParseEvaluationMode(args.mode);
  if (!mode.ok()) {
    std::fprintf(stderr, "streamrec evaluate: %s\n", mode.status().message().c_str());
    return kExitConfig;
  }

  const std::string catalog_path = args.catalog.empty() ? config.catalog_path : args.catalog;
  Catalog catalog;
  if (!catalog_path.empty()) {
    auto loaded = Catalog::LoadCsv(catalog_path);
    if (!loaded.ok()) {
      std::fprintf(stderr, "streamrec evaluate: %s\n", loaded.status().ToString().c_str());
      return kExitConfig;
    }
    catalog = std::move(loaded).value();
  }

  EvaluationOptions options;
  options.k = args.k;
  options.mode = *mode;
  options.catalog = &catalog;
  options.baselines_skip_non_recommendable = args.baselines_skip_non_recommendable;
  options.format = config.input.format;
  options.decoder = config.input.decoder;
  options.log_ids = CustomerIdsInLogs::FromConfig(config.log);
  options.stop = &StopFlag();
  if (Status s = ValidateEvaluationOptions(options); !s.ok()) {
    std::fprintf(stderr, "streamrec evaluate: %s\n", s.message().c_str());
    return kExitConfig;
  }

  // streamrec as deployed: the configured recommender, in the evaluated mode.
  RecommenderOptions recommend = RecommenderOptionsForMode(config.recommend, options);
  std::vector<std::unique_ptr<Strategy>> strategies;
  std::string provider_name = "streamrec";
  for (const std::string& name : args.strategies) {
    auto strategy = NewStrategyByName(name, recommend, &catalog);
    if (!strategy.ok()) {
      std::fprintf(stderr, "streamrec evaluate: --strategy: %s\n",
                   strategy.status().message().c_str());
      return kExitConfig;
    }
    strategies.push_back(std::move(strategy).value());
  }
  if (!args.strategies.empty()) {
    // Only the named strategies, weighed equally in every segment.
    recommend.weights.clear();
    for (const std::string& name : args.strategies) {
      recommend.weights += (recommend.weights.empty() ? "" : ",") + name + "=1";
      provider_name += (provider_name == "streamrec" ? ":" : "+") + name;
    }
    recommend.segment_weights.clear();
  }
  auto recommender_or = args.strategies.empty()
                            ? NewBlendedRecommender(recommend, &catalog)
                            : NewBlendedRecommender(recommend, &catalog, std::move(strategies));
  if (!recommender_or.ok()) {
    std::fprintf(stderr, "streamrec evaluate: %s\n", recommender_or.status().message().c_str());
    return kExitConfig;
  }
  std::unique_ptr<Recommender> recommender = std::move(recommender_or).value();
  auto segmenter_or = NewSegmenter(config, /*store=*/nullptr);
  if (!segmenter_or.ok()) {
    std::fprintf(stderr, "streamrec evaluate: %s\n", segmenter_or.status().ToString().c_str());
    return kExitConfig;
  }
  std::unique_ptr<Segmenter> segmenter = std::move(segmenter_or).value();
  StreamrecListProviderOptions streamrec_options;
  streamrec_options.features = config.features;
  streamrec_options.catalog = &catalog;
  streamrec_options.control_share = config.recommend.control_share;
  streamrec_options.refit_every_events = config.recommend.als_refit_every_events;
  streamrec_options.name = provider_name;
  streamrec_options.lists = args.lists == "on-purchase" ? StreamrecListProviderOptions::Lists::kOnPurchase
                            : args.lists == "published" ? StreamrecListProviderOptions::Lists::kPublished
                                                        : StreamrecListProviderOptions::Lists::kFresh;
  streamrec_options.refresh_after_days = config.recommend.refresh_after_days;
  std::vector<std::unique_ptr<ListProvider>> owned;
  owned.push_back(NewStreamrecListProvider(streamrec_options, recommender.get(), segmenter.get()));
  if (!args.no_baselines) {
    for (auto& baseline : NewBaselineProviders(options)) owned.push_back(std::move(baseline));
  }
  std::vector<ListProvider*> providers;
  for (auto& p : owned) providers.push_back(p.get());

  std::unique_ptr<LineWriter> recs;
  ListSink sink;
  if (!args.recs_out.empty()) {
    auto w = LineWriter::Open(args.recs_out);
    if (!w.ok()) {
      std::fprintf(stderr, "streamrec evaluate: %s\n", w.status().ToString().c_str());
      return kExitFailure;
    }
    recs = std::move(w).value();
    sink = [&recs](const v1::RecommendationList& list) {
      return recs->Write(RecommendationListToJson(list));
    };
  }

  auto report = RunEvaluation(options, args.input, providers, sink, args.quiet ? nullptr : stderr);
  if (!report.ok()) {
    std::fprintf(stderr, "streamrec evaluate: %s\n", report.status().ToString().c_str());
    return report.status().IsInvalidArgument() ? kExitConfig : kExitFailure;
  }
  if (recs != nullptr) {
    if (Status s = recs->Close(); !s.ok()) {
      std::fprintf(stderr, "streamrec evaluate: %s\n", s.ToString().c_str());
      return kExitFailure;
    }
  }
  PrintEvaluationTable(*report, args.input);
  if (!args.json_out.empty()) {
    std::ofstream out(args.json_out);
    out << EvaluationReportToJson(*report) << "\n";
    if (!out.good()) {
      std::fprintf(stderr, "streamrec evaluate: cannot write %s\n", args.json_out.c_str());
      return kExitFailure;
    }
  }
  return kExitOk;
}

}  // namespace

void AddEvaluateCommand(CLI::App& app, EvaluateArgs* args, int* exit_code) {
  CLI::App* cmd = app.add_subcommand(
      "evaluate",
      "Prequential hit rates of streamrec and four baselines on a purchases file in time order");
  cmd->add_option("--input", args->input, "events file (.csv, .csv.gz, .jsonl, .jsonl.gz)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--k", args->k, "list length scored")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cmd->add_option("--mode", args->mode,
                  "cross-sell (streamrec lists leave owned items out) or next-purchase "
                  "(re-offers allowed)")
      ->check(CLI::IsMember({"cross-sell", "next-purchase"}))
      ->capture_default_str();
  cmd->add_option("--catalog", args->catalog, "catalogue CSV (overrides catalog.path)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--recs-out", args->recs_out,
                  "write every streamrec list scored as JSON lines here (.gz: compressed)");
  cmd->add_option("--json", args->json_out, "write the report as JSON here");
  cmd->add_option("--config", args->config_path, "YAML configuration file")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--baselines-skip-non-recommendable", args->baselines_skip_non_recommendable,
                "leave items the catalogue marks not recommendable out of the baseline lists too "
                "(the reference figures keep them)");
  cmd->add_flag("--quiet", args->quiet, "no progress bar");
  cmd->add_option("--strategy", args->strategies,
                  "evaluate only these strategies (repeat; equal weights): " 
                  "cooccurrence, similar, als, popularity, upsell, reoffer");
  cmd->add_flag("--no-baselines", args->no_baselines, "score streamrec only (faster)");
  cmd->add_option("--lists", args->lists,
                  "the streamrec list a basket is scored against: fresh (recomputed just before "
                  "it), on-purchase (computed at the customer's previous purchase, never "
                  "refreshed), published (on-purchase plus the freshness sweep of lists older "
                  "than recommend.refresh_after_days)")
      ->check(CLI::IsMember({"fresh", "on-purchase", "published"}))
      ->capture_default_str();
  cmd->callback([args, exit_code] { *exit_code = RunEvaluateCommand(*args); });
}

}  // namespace streamrec::cli
