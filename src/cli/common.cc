#include "cli/common.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cli/commands.h"
#include "kafka/mock_cluster.h"

namespace streamrec::cli {

std::atomic<bool>& StopFlag() {
  static std::atomic<bool> flag{false};
  return flag;
}

bool LoadConfigOrReport(const std::string& path, Config* config) {
  auto loaded = LoadConfig(path, ProcessEnvironment());
  if (!loaded.ok()) {
    std::fprintf(stderr, "streamrec: %s\n", loaded.status().message().c_str());
    return false;
  }
  *config = std::move(loaded).value();
  return true;
}

std::function<void(const std::string&, uint64_t)> CrashHookFromEnvironment() {
  const char* spec = std::getenv("STREAMREC_TEST_CRASH_AT");
  if (spec == nullptr || *spec == '\0') return nullptr;
  std::string s(spec);
  size_t colon = s.find(':');
  if (colon == std::string::npos) return nullptr;
  std::string point = s.substr(0, colon);
  uint64_t n = std::strtoull(s.c_str() + colon + 1, nullptr, 10);
  return [point, n](const std::string& at, uint64_t count) {
    if (at == point && count == n) {
      std::fflush(nullptr);
      std::raise(SIGKILL);
    }
  };
}

void InstallCrashHook(ReplayOptions* options) { options->fault_hook = CrashHookFromEnvironment(); }

Status CreateServiceTopics(MockKafkaCluster* cluster, const Config& config, int partitions) {
  STREAMREC_RETURN_IF_ERROR(cluster->CreateTopic(config.kafka.input_topic, partitions));
  for (const std::string* topic : {&config.kafka.output_topic, &config.kafka.dead_letter_topic,
                                   &config.kafka.segment_change_topic}) {
    STREAMREC_RETURN_IF_ERROR(cluster->CreateTopic(*topic, partitions));
  }
  if (!config.kafka.changelog_topic.empty()) {
    STREAMREC_RETURN_IF_ERROR(cluster->CreateTopic(config.kafka.changelog_topic, partitions));
  }
  for (const std::string* topic : {&config.kafka.item_stats_topic, &config.kafka.sample_topic,
                                   &config.kafka.cooccurrence_topic}) {
    if (!topic->empty()) STREAMREC_RETURN_IF_ERROR(cluster->CreateTopic(*topic, partitions));
  }
  if (!config.kafka.model_topic.empty()) {
    STREAMREC_RETURN_IF_ERROR(cluster->CreateTopic(config.kafka.model_topic, 1));
  }
  return Status::OK();
}

void PrintSegmentTable(const std::vector<SegmentProfile>& segments) {
  double total_revenue = 0;
  uint64_t total_customers = 0;
  for (const auto& s : segments) {
    total_revenue += s.revenue;
    total_customers += s.customers;
  }
  std::printf("%-8s %-20s %10s %8s %14s %8s %12s %10s %12s\n", "cluster", "segment", "customers",
              "share", "revenue", "rev%", "recency_d", "baskets", "spend/cust");
  for (const auto& s : segments) {
    std::printf("%-8d %-20s %10llu %7.1f%% %14.2f %7.1f%% %12.1f %10.2f %12.2f\n", s.cluster,
                s.segment.c_str(), static_cast<unsigned long long>(s.customers),
                total_customers ? 100.0 * s.customers / total_customers : 0.0, s.revenue,
                total_revenue > 0 ? 100.0 * s.revenue / total_revenue : 0.0, s.mean_recency_days,
                s.mean_frequency, s.mean_monetary);
  }
}

void PrintReplaySummary(const ReplaySummary& s) {
  std::printf("events           %llu\n", static_cast<unsigned long long>(s.events));
  std::printf("invalid          %llu\n", static_cast<unsigned long long>(s.invalid));
  for (const auto& [reason, n] : s.invalid_by_reason) {
    std::printf("  %-30s %llu\n", reason.c_str(), static_cast<unsigned long long>(n));
  }
  std::printf("customers        %llu\n", static_cast<unsigned long long>(s.customers));
  std::printf("lists published  %llu\n", static_cast<unsigned long long>(s.lists_published));
  if (s.resumed_from_offset > 0) {
    std::printf("resumed from     record %llu\n",
                static_cast<unsigned long long>(s.resumed_from_offset));
  }
  std::printf("wall time        %.2f s\n", s.wall_seconds);
  std::printf("events/s         %.0f\n", s.events_per_second);
  std::printf("state digest     %s\n", s.state_digest.c_str());
  if (s.stopped) std::printf("stopped on request; run the same command again to continue\n");
}

}  // namespace streamrec::cli
