// Helpers shared by the subcommands.
#ifndef STREAMREC_SRC_CLI_COMMON_H_
#define STREAMREC_SRC_CLI_COMMON_H_

#include <functional>
#include <string>
#include <vector>

#include "streamrec/config.h"
#include "streamrec/replay.h"
#include "streamrec/status.h"

namespace streamrec {
class MockKafkaCluster;
}

namespace streamrec::cli {

// Loads the configuration (file may be empty) with environment overrides; prints the error and
// returns false on failure (exit code 2).
bool LoadConfigOrReport(const std::string& path, Config* config);

// Reads STREAMREC_TEST_CRASH_AT=<point>:<n> (test harnesses only) into a replay fault hook
// that SIGKILLs the process at that point.
void InstallCrashHook(ReplayOptions* options);

// Creates the configured input (with `partitions` partitions), output, dead-letter and
// segment-change topics on an embedded cluster.
Status CreateServiceTopics(MockKafkaCluster* cluster, const Config& config, int partitions);

// A fault hook from STREAMREC_TEST_CRASH_AT=<point>:<n> (test harnesses only) that SIGKILLs
// the process at that point; empty when the variable is not set.
std::function<void(const std::string&, uint64_t)> CrashHookFromEnvironment();

// Prints the segment profile table to stdout.
void PrintSegmentTable(const std::vector<SegmentProfile>& segments);

// Prints a human summary of a replay to stdout.
void PrintReplaySummary(const ReplaySummary& summary);

}  // namespace streamrec::cli

#endif  // STREAMREC_SRC_CLI_COMMON_H_
