// Replay: runs the pipeline over a file (CSV or JSON lines, plain or gzip) as one source
// partition, resumable: positions are stored with the state, so a killed replay run again with
// the same arguments continues where the last committed batch ended.
#ifndef STREAMREC_REPLAY_H_
#define STREAMREC_REPLAY_H_

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "streamrec/clock.h"
#include "streamrec/config.h"
#include "streamrec/state_store.h"
#include "streamrec/status.h"
#include "streamrec/v1/events.pb.h"

namespace streamrec {

struct ReplayOptions {
  Config config;             // state.path must be set
  std::string input_path;    // events file (.csv, .csv.gz, .jsonl, .jsonl.gz)
  std::string recs_out;      // JSON lines of published lists; empty: not written. Truncated on a
                             // fresh state, appended to when resuming.
  std::FILE* progress = nullptr;  // progress bar and warnings (stderr in the CLI); null: silent
  const std::atomic<bool>* stop = nullptr;  // set to stop at the next batch boundary
  // Test hook: called at "batch" (before batch n is processed), "commit" (after batch n is
  // committed, before its lists are published) and "publish" (after list n is written).
  std::function<void(const std::string& point, uint64_t n)> fault_hook;
  // Called with every list published (after it is written to recs_out); may be null.
  std::function<void(const v1::RecommendationList&)> on_list;
};

struct ReplaySummary {
  // Totals over the state (they include earlier, resumed runs).
  uint64_t events = 0;
  uint64_t invalid = 0;
  uint64_t customers = 0;
  uint64_t lists_published = 0;
  // This run.
  uint64_t resumed_from_offset = 0;  // records already applied when this run started
  uint64_t events_this_run = 0;
  uint64_t records_this_run = 0;
  double wall_seconds = 0;
  double events_per_second = 0;       // events_this_run / wall_seconds
  std::map<std::string, uint64_t> invalid_by_reason;  // this run
  std::string state_digest;
  // The recommender's co-occurrence at the end (RecommendIndex::CooccurrenceTotals): the
  // reference several instances sharing kafka.cooccurrence_topic converge to.
  uint64_t cooccurrence_buyers = 0;
  uint64_t cooccurrence_pairs = 0;
  bool stopped = false;               // stopped by request before the end of the input
  int64_t watermark_ms = 0;
};

StatusOr<ReplaySummary> RunReplay(const ReplayOptions& options, const Clock* clock);

// {"events":N,"invalid":N,"customers":N,"lists_published":N,"wall_seconds":X,
//  "events_per_second":X,"state_digest":"…", …}
std::string ReplaySummaryToJson(const ReplaySummary& summary);

struct SegmentProfile {
  int32_t cluster = -1;
  std::string segment;
  uint64_t customers = 0;
  double revenue = 0;
  double mean_recency_days = 0;   // at the store's newest event time
  double mean_frequency = 0;      // baskets
  double mean_monetary = 0;
  std::map<std::string, double> channel_mix;  // channel -> share of the segment's lines
};

// Profiles of the segments found in `store` (all partitions), in cluster order.
StatusOr<std::vector<SegmentProfile>> ProfileSegments(StateStore* store);

}  // namespace streamrec

#endif  // STREAMREC_REPLAY_H_
