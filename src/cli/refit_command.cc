#include <cstdio>

#include "cli/commands.h"
#include "cli/common.h"
#include "streamrec/clock.h"
#include "streamrec/kmeans_segmenter.h"

namespace streamrec::cli {

namespace {

int RunRefitCommand(const RefitArgs& args) {
  Config config;
  if (!LoadConfigOrReport(args.config_path, &config)) return kExitConfig;
  config.state.path = args.state_dir;
  auto store = OpenRocksStateStore(config.state);
  if (!store.ok()) {
    std::fprintf(stderr, "streamrec refit: %s\n", store.status().ToString().c_str());
    return kExitFailure;
  }
  KMeansSegmenterOptions options;
  options.config = config.segments;
  options.log_ids = CustomerIdsInLogs::FromConfig(config.log);
  auto segmenter = KMeansSegmenter::Create(options, store->get());
  if (!segmenter.ok()) {
    std::fprintf(stderr, "streamrec refit: %s\n", segmenter.status().ToString().c_str());
    return segmenter.status().IsInvalidArgument() ? kExitConfig : kExitFailure;
  }
  const int64_t start_us = SystemClock()->NowMicros();
  auto report = (*segmenter)->Refit(store->get());
  const double seconds = (SystemClock()->NowMicros() - start_us) / 1e6;
  if (!report.ok()) {
    std::fprintf(stderr, "streamrec refit: %s\n", report.status().ToString().c_str());
    return report.status().IsInvalidArgument() ? kExitConfig : kExitFailure;
  }
  const SegmentModelVersion& m = *report->model;
  std::printf("model version    %llu\n", static_cast<unsigned long long>(m.version));
  std::printf("customers        %lld (trained on %lld)\n", static_cast<long long>(report->customers),
              static_cast<long long>(report->trained));
  std::printf("k                %d\n", m.k);
  std::printf("objective        %.6f\n", m.proto.objective());
  if (report->previous_objective > 0) {
    std::printf("previous centres %.6f (the replaced model's current online centres on the same "
                "matrix; ratio %.4f)\n",
                report->previous_objective, report->previous_objective / m.proto.objective());
  }
  std::printf("silhouette       %.4f\n", m.proto.silhouette());
  std::printf("iterations       %d\n", m.proto.fit_iterations());
  if (report->k_scores.size() > 1) {
    std::printf("k scores (silhouette on a sample, Calinski-Harabasz):\n");
    for (const KScore& s : report->k_scores) {
      std::printf("  k=%-3d objective %14.4f  silhouette %.4f  CH %.1f\n", s.k, s.objective,
                  s.silhouette, s.calinski_harabasz);
    }
  }
  std::printf("moved            %llu of %llu customers\n",
              static_cast<unsigned long long>(report->moved),
              static_cast<unsigned long long>(report->reassigned));
  std::printf("births %zu, deaths %zu\n", report->births.size(), report->deaths.size());
  std::printf("%-8s %-20s %10s  %s\n", "cluster", "segment", "size", "RFM");
  for (const v1::SegmentCluster& c : m.proto.clusters()) {
    std::printf("%-8d %-20s %10llu  %u%u%u\n", c.id(), c.name().c_str(),
                static_cast<unsigned long long>(c.size()), c.r_score(), c.f_score(), c.m_score());
  }
  std::printf("wall time        %.2f s\n", seconds);
  return kExitOk;
}

}  // namespace

void AddRefitCommand(CLI::App& app, RefitArgs* args, int* exit_code) {
  CLI::App* cmd = app.add_subcommand(
      "refit", "Full K-Means re-fit of a stored state; reassigns every customer");
  cmd->add_option("--state-dir", args->state_dir, "RocksDB state directory")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--config", args->config_path, "YAML configuration file")->check(CLI::ExistingFile);
  cmd->callback([args, exit_code] { *exit_code = RunRefitCommand(*args); });
}

}  // namespace streamrec::cli
