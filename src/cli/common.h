// Helpers shared by the subcommands.
#ifndef STREAMREC_SRC_CLI_COMMON_H_
#define STREAMREC_SRC_CLI_COMMON_H_

#include <string>
#include <vector>

#include "streamrec/config.h"
#include "streamrec/replay.h"

namespace streamrec::cli {

// Loads the configuration (file may be empty) with environment overrides; prints the error and
// returns false on failure (exit code 2).
bool LoadConfigOrReport(const std::string& path, Config* config);

// Reads STREAMREC_TEST_CRASH_AT=<point>:<n> (test harnesses only) into a replay fault hook
// that SIGKILLs the process at that point.
void InstallCrashHook(ReplayOptions* options);

// Prints the segment profile table to stdout.
void PrintSegmentTable(const std::vector<SegmentProfile>& segments);

// Prints a human summary of a replay to stdout.
void PrintReplaySummary(const ReplaySummary& summary);

}  // namespace streamrec::cli

#endif  // STREAMREC_SRC_CLI_COMMON_H_
